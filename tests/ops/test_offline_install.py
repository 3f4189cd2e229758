"""The bundle a technician carries installs offline and runs with no checkout (issue 24 item 9,
issue 21 packaging).

`make bundle` builds the one tarball (source tree + wheelhouse); it is unpacked elsewhere and
installed with `python3 -m edge.install --wheelhouse` (pip with `--no-index`: no registry) into
a staging root; the installed `lane` then checks a config, reads the shipped sample plates and
runs the demo from a directory that is not the checkout, and `systemd-analyze verify` accepts
the installed unit.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

from tests.conftest import lane_yaml
from tests.ops.support import REPO

pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def test_the_bundle_installs_offline_and_runs_without_the_checkout(tmp_path: Path) -> None:
    build = tmp_path / "build"
    made = run(["make", "--no-print-directory", "bundle", f"BUILD={build}"], REPO, 1200)
    assert made.returncode == 0, (made.stdout + made.stderr)[-4000:]
    bundles = list(build.glob("*.tar.gz"))
    assert [b.name for b in bundles] == ["lane-agent-bundle.tar.gz"]

    wheel = next((build / "wheelhouse").glob("lane_agent-*.whl"))
    names = set(zipfile.ZipFile(wheel).namelist())
    for shipped in (
        "lane_agent_models/plate_rec_ppocrv4.onnx",
        "lane_agent_models/plate_det_ppocrv4.json",
        "simulators/scenarios/default.yaml",
        "edge/recognize/samples/kz_1row_905GXB11.png",
    ):
        assert shipped in names, f"{shipped} not in the wheel"
    assert not any(n.startswith(("models/", "tests/")) for n in names)

    carried = tmp_path / "controller"
    with tarfile.open(bundles[0]) as tar:
        tar.extractall(carried, filter="data")
    source = carried / "lane-agent"
    root = tmp_path / "root"
    installed = run(
        [sys.executable, "-m", "edge.install", "--root", str(root),
         "--wheelhouse", "build/wheelhouse"],
        source, 1200,
    )  # fmt: skip
    assert installed.returncode == 0, (installed.stdout + installed.stderr)[-4000:]
    lane = str(root / "opt/lane-agent/venv/bin/lane")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    version = run([lane, "--version"], elsewhere, 60)
    assert version.returncode == 0 and version.stdout.startswith("lane "), version.stderr
    config = elsewhere / "lane.yaml"
    config.write_text(lane_yaml(elsewhere / "state", 1883))
    checked = run([lane, "config", "check", str(config)], elsewhere, 120)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    # The example the installer put under /etc, checked as its header says.
    example = root / "etc/lane-agent/lane.example.yaml"
    assert "lane config check --secrets skip" in example.read_text()
    checked = run([lane, "config", "check", "--secrets", "skip", str(example)], elsewhere, 120)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    samples = run([lane, "recognize", "--samples"], elsewhere, 300)
    assert samples.returncode == 0, samples.stdout + samples.stderr
    assert "905GXB11" in samples.stdout and str(REPO) not in samples.stdout + samples.stderr

    demo = run([lane, "demo", "--vehicles", "2", "--speedup", "4"], elsewhere, 600)
    assert demo.returncode == 0, (demo.stdout + demo.stderr)[-4000:]
    assert "ground truth (2 vehicles)" in demo.stdout, demo.stdout[-2000:]

    analyze = shutil.which("systemd-analyze")
    assert analyze is not None, "systemd-analyze is not installed; `make system-deps` does it"
    # The installed unit, as instance lane@T1 of this host, pointing at the staged venv
    # (verify checks that ExecStart's binary exists and runs).
    unit = (root / "etc/systemd/system/lane@.service").read_text()
    assert "ExecStart=/opt/lane-agent/venv/bin/lane run" in unit
    instance = tmp_path / "lane@T1.service"
    instance.write_text(unit.replace("/opt/lane-agent/venv/bin/lane", lane))
    verified = run([analyze, "verify", str(instance)], elsewhere, 120)
    assert verified.returncode == 0, verified.stdout + verified.stderr
    assert verified.stdout.strip() == "" and verified.stderr.strip() == "", verified.stderr
