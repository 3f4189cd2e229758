"""Packages: the agent's, plus models/ (ONNX weights and manifests) as `lane_agent_models`.

``LANE_AGENT_WHEEL=runtime pip wheel .`` builds the controller's wheel: the same distribution
without the developer tooling (``edge.devtools``: harness, demo, score, the simulated
checkpoint, the test subscriber, synthetic plates; ``simulators``), which `lane run` never
imports. The default (``full``) carries both, so `lane demo`, `lane score`, `lane sim` and
`lane checkpoint` work from it (docs/operations.md, "A runtime-only install").
"""

import os
import shutil

from setuptools import find_packages, setup

PROFILES = {
    "full": [],
    "runtime": ["edge.devtools", "edge.devtools.*", "simulators", "simulators.*"],
}
# A former full build's lane_agent.egg-info/SOURCES.txt still lists edge/devtools/*.py, and
# setuptools would carry them as package data of `edge`: excluded by name too.
EXCLUDED_DATA = {"full": {}, "runtime": {"edge": ["devtools/*"]}}

profile = os.environ.get("LANE_AGENT_WHEEL", "full")
if profile not in PROFILES:
    raise SystemExit(f"LANE_AGENT_WHEEL={profile!r}: one of {', '.join(PROFILES)}")

# Its own build directory, emptied first: setuptools copies whatever lies in build/lib into the
# wheel, so a former build's modules (a full build's devtools, a moved file) would ship too.
BUILD_BASE = f"build/setuptools-{profile}"
shutil.rmtree(f"{BUILD_BASE}/lib", ignore_errors=True)

setup(
    packages=[
        *find_packages(include=["edge*", "drivers*", "simulators*"], exclude=PROFILES[profile]),
        "lane_agent_models",
    ],
    package_dir={"lane_agent_models": "models"},
    exclude_package_data=EXCLUDED_DATA[profile],
    options={"build": {"build_base": BUILD_BASE}},
)
