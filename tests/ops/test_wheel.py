"""The built wheel alone runs the agent: models, scenario and samples inside, no checkout.

A wheelhouse of the agent and its dependencies is built once (`make wheelhouse` does the same),
then installed into a fresh venv with `--no-index` (no registry, as on a controller) and run
from a directory that is not the checkout (issue 21, packaging).
"""

from __future__ import annotations

import os
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.ops.support import REPO

pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def test_a_wheel_installed_offline_reads_plates_and_runs_the_demo(tmp_path: Path) -> None:
    wheelhouse = tmp_path / "wheelhouse"
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--wheel-dir", str(wheelhouse), "."],
        REPO,
        900,
    )
    assert built.returncode == 0, built.stderr[-4000:]
    wheel = next(wheelhouse.glob("lane_agent-*.whl"))
    names = subprocess.run(
        [sys.executable, "-m", "zipfile", "-l", str(wheel)], capture_output=True, text=True
    ).stdout
    for shipped in (
        "lane_agent_models/plate_rec_ppocrv4.onnx",
        "lane_agent_models/plate_det_ppocrv4.json",
        "simulators/scenarios/default.yaml",
        "edge/recognize/samples/kz_1row_905GXB11.png",
    ):
        assert shipped in names, f"{shipped} not in the wheel"
    assert "models/training" not in names and "tests/" not in names

    env_dir = tmp_path / "venv"
    venv.create(env_dir, with_pip=True)
    py = env_dir / "bin" / "python"
    installed = run(
        [str(py), "-m", "pip", "install", "--quiet", "--no-index", "--find-links",
         str(wheelhouse), "lane-agent"],
        tmp_path, 900,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stderr[-4000:]
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    lane = str(env_dir / "bin" / "lane")

    samples = run([lane, "recognize", "--samples"], elsewhere, 300)
    assert samples.returncode == 0, samples.stdout + samples.stderr
    assert "905GXB11" in samples.stdout and str(REPO) not in samples.stdout

    demo = run([lane, "demo", "--vehicles", "2", "--speedup", "4"], elsewhere, 600)
    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-4000:]
    assert "ground truth (2 vehicles)" in demo.stdout, demo.stdout[-2000:]
