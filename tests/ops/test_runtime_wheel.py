"""The controller's wheel (``LANE_AGENT_WHEEL=runtime``, setup.py) carries no developer tooling
and runs a lane without it (issue 21 item 9).

The wheel is built as `make wheelhouse` builds it, then installed with ``--no-deps`` into a
fresh venv whose third-party dependencies come from this checkout's venv (a ``.pth`` line:
the point here is which of *our* modules the wheel carries, not pip's resolver, which
tests/ops/test_offline_install.py covers); the checkout itself is not on its path. From a
directory outside the checkout, that install checks a config, reads the shipped sample plates,
publishes scripted crossings to a real Mosquitto, and `lane demo` says it is left out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from edge.devtools.localbroker import LocalBroker
from edge.devtools.subscriber import Received, Subscriber
from tests.conftest import lane_yaml
from tests.ops.support import REPO, collect, payloads

pytestmark = pytest.mark.slow

VEHICLES = 3


def run(args: list[str], cwd: Path, timeout: float, **env: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return subprocess.run(
        args,
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**clean, **env},
        check=False,
    )


def build_wheel(into: Path, **env: str) -> set[str]:
    """Build the wheel into ``into``; its file names (the dist-info left out)."""
    built = run(
        [sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(into),
         str(REPO)],
        into.parent, 600, **env,
    )  # fmt: skip
    assert built.returncode == 0, (built.stdout + built.stderr)[-4000:]
    names = zipfile.ZipFile(next(into.glob("lane_agent-*.whl"))).namelist()
    return {n for n in names if ".dist-info/" not in n}


def test_the_runtime_wheel_leaves_the_tooling_out_and_runs_a_lane(
    broker: LocalBroker, tmp_path: Path
) -> None:
    # The full wheel first, as `make wheelhouse` builds it: it leaves edge/devtools listed in
    # the checkout's egg-info, which the runtime build must not carry along.
    full = build_wheel(tmp_path / "full")
    assert {"edge/devtools/harness.py", "simulators/scenarios/default.yaml"} <= full
    names = build_wheel(tmp_path / "runtime", LANE_AGENT_WHEEL="runtime")
    assert not [n for n in names if n.startswith(("edge/devtools/", "simulators/", "tests/"))]
    assert names == {n for n in full if not n.startswith(("edge/devtools/", "simulators/"))}
    wheel = next((tmp_path / "runtime").glob("lane_agent-*.whl"))
    for shipped in (
        "edge/lane.py",
        "edge/publish.py",
        "edge/site/ingest.py",
        "drivers/base.py",
        "lane_agent_models/plate_rec_ppocrv4.onnx",
        "edge/recognize/samples/kz_1row_905GXB11.png",
    ):
        assert shipped in names, f"{shipped} not in the runtime wheel"

    venv = tmp_path / "venv"
    made = run([sys.executable, "-m", "venv", str(venv)], tmp_path, 300)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    purelib = run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                  tmp_path, 60).stdout.strip()  # fmt: skip
    # The dependencies (numpy, onnxruntime, paho ...), not the checkout: a .pth line adds a
    # directory, it does not run that directory's .pth files (the editable install's finder);
    # --ignore-installed: pip leaves the lane-agent it sees there (this checkout) alone.
    Path(purelib, "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    installed = run(
        [str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--no-index",
         "--ignore-installed", str(wheel)],
        tmp_path, 300,
    )  # fmt: skip
    assert installed.returncode == 0, installed.stdout + installed.stderr
    lane = str(venv / "bin" / "lane")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()

    where = run([str(python), "-c", "import edge; print(edge.__file__)"], elsewhere, 60)
    assert where.stdout.startswith(purelib), where.stdout + where.stderr
    for package in ("edge.devtools", "simulators"):
        absent = run([str(python), "-c", f"import {package}"], elsewhere, 60)
        assert absent.returncode == 1 and "ModuleNotFoundError" in absent.stderr, package

    demo = run([lane, "demo", "--vehicles", "1"], elsewhere, 120)
    assert demo.returncode == 1, demo.stdout + demo.stderr
    assert "`lane demo` is developer tooling that this install leaves out" in demo.stderr

    samples = run([lane, "recognize", "--samples"], elsewhere, 300)
    assert samples.returncode == 0, samples.stdout + samples.stderr
    assert "905GXB11" in samples.stdout

    config = elsewhere / "lane.yaml"
    scripted = f"scripted:\n  vehicles: {VEHICLES}\n  interval_ms: 100\n"
    config.write_text(lane_yaml(elsewhere / "state", broker.port, extra=scripted))
    checked = run([lane, "config", "check", str(config)], elsewhere, 120)
    assert checked.returncode == 0, checked.stdout + checked.stderr

    subscriber = Subscriber("127.0.0.1", broker.port, ["border/KZ-TEST/T1/#"])
    assert subscriber.wait_ready()
    log = (elsewhere / "agent.log").open("w")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    agent = subprocess.Popen(
        [lane, "run", "--config", str(config)],
        cwd=elsewhere, stdout=log, stderr=subprocess.STDOUT, env=env,
    )  # fmt: skip
    received: list[Received] = []
    try:

        def ended(got: list[Received]) -> bool:
            return len([c for c in payloads(got, "/crossing") if c["type"] == "end"]) >= VEHICLES

        collect(subscriber, ended, 60, received)
    finally:
        agent.terminate()
        code = agent.wait(timeout=30)
        subscriber.close()
        log.close()
    text = (elsewhere / "agent.log").read_text()
    assert code == 0, text[-4000:]
    assert "Traceback" not in text, text[-4000:]
    ends = [c for c in payloads(received, "/crossing") if c["type"] == "end"]
    assert len({c["crossing_id"] for c in ends}) == VEHICLES, json.dumps(ends)[:2000]
