"""Packages: the agent's, plus models/ (ONNX weights and manifests) as `lane_agent_models`.

``LANE_AGENT_WHEEL=runtime pip wheel .`` builds the controller's wheel: the same distribution
without the developer tooling (``edge.devtools``: harness, demo, score, the simulated
checkpoint, the test subscriber, synthetic plates; ``simulators``), which `lane run` never
imports. The default (``full``) carries both, so `lane demo`, `lane score`, `lane sim` and
`lane checkpoint` work from it (docs/operations.md, "A runtime-only install").
"""

import os

from setuptools import find_packages, setup

PROFILES = {
    "full": [],
    "runtime": ["edge.devtools", "edge.devtools.*", "simulators", "simulators.*"],
}

profile = os.environ.get("LANE_AGENT_WHEEL", "full")
if profile not in PROFILES:
    raise SystemExit(f"LANE_AGENT_WHEEL={profile!r}: one of {', '.join(PROFILES)}")

setup(
    packages=[
        *find_packages(include=["edge*", "drivers*", "simulators*"], exclude=PROFILES[profile]),
        "lane_agent_models",
    ],
    package_dir={"lane_agent_models": "models"},
    # Its own build directory: setuptools copies from build/lib, where a full build's
    # devtools would otherwise still lie.
    options={"build": {"build_base": f"build/setuptools-{profile}"}},
)
