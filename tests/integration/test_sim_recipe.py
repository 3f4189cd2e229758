"""The by-hand recipe of docs/drivers.md, as a person runs it, at 8 vehicles.

Real processes: a Mosquitto, ``lane sim --wait-for-agent --broker``, ``lane run -c`` on the
config the sim wrote, a subscriber. The config's ``plate_area`` masks are taken out first:
the agent must learn the cameras' date/name stamps by itself. The crossings are scored
against the sim's ground truth (edge/devtools/score.py): every vehicle once, nothing else, and no
plate made of the stamp's text.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from edge.devtools.localbroker import LocalBroker
from edge.devtools.score import match_crossings, score
from edge.devtools.subscriber import Subscriber

ROOT = Path(__file__).resolve().parents[2]
VEHICLES = 8
DEADLINE_S = 1200  # generous: the machine may be loaded; nothing below waits on a clock


def _scenario(tmp_path: Path) -> Path:
    """The default scenario at 8 vehicles: its 6 scripted ones and 2 drawn from the seed."""
    data = yaml.safe_load((ROOT / "simulators/scenarios/default.yaml").read_text())
    data["random_vehicles"]["count"] = VEHICLES - len(data["vehicles"])
    data["faults"] = []  # faults are other tests' business; this one is the first hour's
    path = tmp_path / "eight.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def _wait(condition: Any, deadline: float, step: float = 0.5) -> bool:
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(step)
    return False


def _until(what: str, condition: Any, deadline: float, step: float = 0.5) -> None:
    if not _wait(condition, deadline, step):
        pytest.fail(f"gave up waiting: {what}")


@pytest.mark.slow
@pytest.mark.timeout(DEADLINE_S + 300)
def test_the_documented_sim_and_run_recipe_at_8_vehicles(tmp_path: Path) -> None:
    deadline = time.monotonic() + DEADLINE_S
    broker = LocalBroker(workdir=tmp_path / "broker").start()
    config_path = tmp_path / "sim-lane.yaml"
    truth_path = tmp_path / "sim-truth.jsonl"
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    sim_log = (tmp_path / "sim.log").open("wb")
    agent_log = (tmp_path / "agent.log").open("wb")
    sim = subprocess.Popen(
        [sys.executable, "-m", "edge", "sim", "--scenario", str(_scenario(tmp_path)),
         "--config-out", str(config_path), "--truth", str(truth_path),
         "--wait-for-agent", "--broker", f"127.0.0.1:{broker.port}"],
        cwd=tmp_path, stdout=sim_log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        env=env,
    )  # fmt: skip
    agent: subprocess.Popen[bytes] | None = None
    subscriber: Subscriber | None = None
    ends: list[tuple[dict[str, Any], float]] = []
    try:
        _until("the sim's config", lambda: "devices:" in _text(config_path), deadline)
        time.sleep(0.5)  # written in one go; read it once it is complete
        config = yaml.safe_load(config_path.read_text())
        assert config["mqtt"] == {"host": "127.0.0.1", "port": broker.port}
        cameras = [d for d in config["devices"] if d["kind"].startswith("anpr.")]
        assert cameras and all("plate_area" in d for d in cameras)
        for device in cameras:
            del device["plate_area"]  # no hand-set mask: the stamps must be learned
        config_path.write_text(yaml.safe_dump(config, sort_keys=False))
        base = f"border/{config['checkpoint']}/{config['lane']}"
        subscriber = Subscriber("127.0.0.1", broker.port, [f"{base}/#"])
        assert subscriber.wait_ready()
        time.sleep(3)  # the sim waits for the agent: no vehicle comes meanwhile
        assert not truth_path.exists() or not truth_path.read_text()
        agent = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "-c", str(config_path)],
            cwd=tmp_path, stdout=agent_log, stderr=subprocess.STDOUT, env=env,
        )  # fmt: skip

        def drain() -> None:
            while True:
                try:
                    msg = subscriber.messages.get_nowait()  # type: ignore[union-attr]
                except queue.Empty:
                    return
                if not msg.payload or "/evidence/" in msg.topic:
                    continue
                body = json.loads(msg.payload)
                fresh = all(body.get("event_id") != e["event_id"] for e, _ in ends)
                if msg.topic.endswith("/crossing") and body.get("type") == "end" and fresh:
                    ends.append((body, time.time()))

        def sim_done() -> bool:
            drain()
            assert agent is not None and agent.poll() is None, _tail(tmp_path / "agent.log")
            return sim.poll() is not None

        _until("the sim's last vehicle", sim_done, deadline)
        assert sim.returncode == 0, _tail(tmp_path / "sim.log")
        assert "the agent's devices are UP: the vehicles start now" in _text(tmp_path / "sim.log")
        truth = [json.loads(line) for line in truth_path.read_text().splitlines()]
        assert len(truth) == VEHICLES

        def all_ended() -> bool:
            drain()
            return len(truth) - 1 in match_crossings(truth, ends).matches

        # The last vehicle's end, unless the agent never ends it (then the score says what).
        _wait(all_ended, min(deadline, time.monotonic() + 180))

        # The learned stamps, as `lane diag camera overlay` shows them.
        shown = subprocess.run(
            [sys.executable, "-m", "edge", "diag", "camera", "overlay", "-c", str(config_path),
             "--json"],
            cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env,
        )  # fmt: skip
        assert shown.returncode == 0, shown.stdout + shown.stderr
        overlay = {c["camera"]: c for c in json.loads(shown.stdout)["cameras"]}
        front = overlay["cam_front"]
        assert front["plate_area"] is None
        assert any(r["box"][1] < 0.05 for r in front["regions"]), front  # the top stamp

        # The sim stopped: its pty link is gone, and `lane diag status` says so plainly.
        scale_url = next(d["url"] for d in config["devices"] if d["id"] == "scale")
        assert not os.path.lexists(scale_url)

        def scale_down() -> bool:
            shown = subprocess.run(
                [sys.executable, "-m", "edge", "diag", "status", "-c", str(config_path), "--json"],
                cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env,
            )  # fmt: skip
            devices = {d["id"]: d for d in json.loads(shown.stdout)["devices"]}
            reason = devices["scale"]["last_error"] or ""
            return devices["scale"]["state"] == "DOWN" and (
                "does not exist" in reason or "which is gone" in reason
            )

        _until("the scale DOWN with a clear reason", scale_down, deadline, step=2)
    finally:
        if agent is not None and agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            agent.wait(60)
        if sim.poll() is None:
            sim.send_signal(signal.SIGTERM)
            sim.wait(60)
        if subscriber is not None:
            subscriber.close()
        broker.stop()
        sim_log.close()
        agent_log.close()
        with (tmp_path / "ends.jsonl").open("w") as f:  # for whoever reads a failure
            f.writelines(json.dumps(e) + "\n" for e, _ in ends)
    result = score(truth, ends)
    detail = json.dumps(result, indent=1, default=str)
    stamp_year = truth[0]["start"][:4]
    plates = [p["text"] for e, _ in ends for p in e.get("plates", [])]
    stamped = [t for t in plates if t.startswith(("FRON", "REAR")) or stamp_year in t]
    assert not stamped, f"the cameras' stamps read as plates: {stamped}\n{detail}"
    assert result["missed"] == 0, detail
    assert result["split"] == 0, detail
    assert result["phantom"] == 0, detail
    assert result["merged"] == 0, detail


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _tail(path: Path) -> str:
    return _text(path)[-4000:]
