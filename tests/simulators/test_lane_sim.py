"""`lane sim`: the real command starts a simulated lane and prints a config the agent accepts."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from edge.config import load_config

TINY = """
seed: 3
speedup: 10
start_delay_s: 1
lane:
  weighbridge: {protocol: sics}
  rpm: {protocol: aspect}
  thermal: {map: infiray, regions: 4}
  laneio: {map: adam6050}
  cameras: {roles: [front, rear], fps: 2, width: 320, height: 180, rtsp: true}
vehicles:
  - {class: truck, front: {country: KG}, gap_s: 1}
  - {class: car, front: {country: EU}, gap_s: 1}
"""


def test_lane_sim_prints_endpoints_and_a_valid_config(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY)
    config_path = tmp_path / "sim-lane.yaml"
    truth = tmp_path / "truth.jsonl"
    result = subprocess.run(
        [sys.executable, "-m", "edge", "sim", "--scenario", str(scenario),
         "--config-out", str(config_path), "--truth", str(truth)],
        capture_output=True, text=True, timeout=60, cwd=Path(__file__).parents[2],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    out = result.stdout
    for name in ("weighbridge", "rpm", "thermal", "laneio", "camera.front", "camera.rear.rtsp"):
        assert f"#   {name}" in out
    config = load_config(config_path)  # validates every device against the driver registry
    kinds = sorted(d.kind for d in config.devices)
    assert kinds == sorted([
        "weighbridge.sics", "rpm.aspect", "thermal.modbus", "laneio.modbus",
        "anpr.stream", "anpr.stream",
    ])  # fmt: skip
    cameras = [d for d in config.devices if d.kind == "anpr.stream"]
    assert all(str(d.model_extra["url"]).startswith("rtsp://") for d in cameras)
    raw = yaml.safe_load(config_path.read_text())
    assert all(isinstance(d.get("password", {}), dict) for d in raw["devices"])  # never inline
    # The simulator knows where it stamps its date/name: the mask comes with the config.
    assert all(d["plate_area"][1] > 0 for d in raw["devices"] if d["kind"] == "anpr.stream")
    assert raw["mqtt"] == {"host": "127.0.0.1", "port": 1883}
    # The scale's pty is named by a link the sim owned, gone now that it stopped.
    (scale,) = [d for d in raw["devices"] if d["id"] == "scale"]
    assert Path(scale["url"]).parent == (tmp_path / "sim-lane.run").absolute()
    assert not Path(scale["url"]).exists() and not Path(scale["url"]).is_symlink()
    lines = [json.loads(line) for line in truth.read_text().splitlines()]
    assert [v["index"] for v in lines] == [1, 2]
    assert lines[0]["plates"]["front"]["country"] == "KG"


def test_lane_sim_plan_and_bad_scenario(tmp_path: Path) -> None:
    scenario = tmp_path / "tiny.yaml"
    scenario.write_text(TINY)
    plan = subprocess.run(
        [sys.executable, "-m", "edge", "sim", "--scenario", str(scenario), "--plan"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert plan.returncode == 0
    assert len(plan.stdout.splitlines()) == 2
    bad = tmp_path / "bad.yaml"
    bad.write_text("speedup: -1\n")
    result = subprocess.run(
        [sys.executable, "-m", "edge", "sim", "--scenario", str(bad)],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert result.returncode == 2 and "speedup" in result.stderr
