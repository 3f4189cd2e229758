"""`lane diag` against a running agent: everything goes through its control socket."""

from __future__ import annotations

import fcntl
import json
import socket
import stat
import time
from pathlib import Path
from typing import Any

import pytest

from edge.devtools.localbroker import LocalBroker
from edge.diag.models import (
    ActionOutput,
    ExplainOutput,
    ProbeOutput,
    StatusOutput,
    WatchSample,
)
from edge.outbox import Outbox
from tests.diag.support import diag, diag_process, write_lane
from tests.integration.support import Agent, wait_until


def drive(sims: dict[str, Any], kg: float) -> None:
    loop, scale, io = sims["loop"], sims["scale"], sims["io"]
    loop.call(lambda: io.set_input("entry_loop", True))
    loop.call(lambda: scale.set_weight(kg))
    time.sleep(1.5)
    loop.call(lambda: io.set_input("entry_loop", False))
    loop.call(lambda: io.set_input("exit_loop", True))
    loop.call(lambda: scale.set_weight(0))
    time.sleep(0.4)
    loop.call(lambda: io.set_input("exit_loop", False))


def test_running_agent(
    capsys: pytest.CaptureFixture[str],
    broker: LocalBroker,
    lane_sims: dict[str, Any],
    tmp_path: Path,
) -> None:
    sims = lane_sims
    config = write_lane(tmp_path, broker.port, sims["devices"])
    sock = tmp_path / "state" / "control.sock"
    with Agent(config) as agent:
        wait_until(sock.exists, 30, "the control socket")
        assert stat.S_IMODE(sock.stat().st_mode) == 0o600  # owner only

        def up() -> bool:
            report = StatusOutput.model_validate_json(
                diag(capsys, "status", "-c", config, "--json").out
            )
            states = {d.id: d.state for d in report.devices}
            return states.get("scale") == "UP" and states.get("io") == "UP"

        wait_until(up, 20, "scale and io UP in the agent")
        for garbage in (b"not json\n", b"[1, 2]\n", b'{"op": "reboot"}\n'):
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(5)
                client.connect(str(sock))
                client.sendall(garbage)
                assert json.loads(client.makefile().readline())["kind"] == "bad_request"
        result = diag(capsys, "status", "-c", config, "--json")
        status = StatusOutput.model_validate_json(result.out)
        assert result.code == 10  # the rpm is down
        assert status.agent.running and status.agent.source == "control socket"
        assert agent.process is not None and status.agent.pid == agent.process.pid
        assert status.agent.boot_seq == 1 and (status.agent.uptime_s or 0) > 0
        assert status.broker is not None and status.broker.connected
        assert status.outbox is not None and status.outbox.rejected == 0
        rpm = {d.id: d for d in status.devices}["rpm"]
        assert rpm.state == "DOWN" and rpm.faults.get("connection", 0) >= 1
        assert status.problems == [f"device rpm is DOWN: {rpm.last_error}"]

        human = diag(capsys, "status", "-c", config)
        assert f"RUNNING (pid {agent.process.pid})" in human.out and "rpm is DOWN" in human.out

        # The scale's port belongs to the agent: probe, watch and tare go through it.
        sims["loop"].call(lambda: sims["scale"].set_weight(3_000))
        probe = ProbeOutput.model_validate_json(
            diag(capsys, "probe", "scale", "-c", config, "--json").out
        )
        assert probe.source == "control socket" and probe.raw_frames
        watched = diag(
            capsys, "watch", "scale", "-c", config, "--count", "2", "--json", "--interval", "0.3"
        )
        samples = [WatchSample.model_validate(s) for s in watched.lines()]
        assert len(samples) == 2 and samples[-1].state == "UP"
        assert "gross_kg 3,000" in samples[-1].summary
        tare = diag(capsys, "scale", "tare", "-c", config, "--yes", "--json")
        assert ActionOutput.model_validate_json(tare.out).via == "control socket"
        wait_until(lambda: sims["scale"].tare_kg == 3_000, 5, "the indicator tared")
        sims["loop"].call(lambda: setattr(sims["scale"], "tare_kg", 0.0))
        barrier = diag_process("barrier", "open", "-c", config)  # a real process, no terminal
        assert barrier.code == 12 and sims["io"].output("barrier") is False
        assert diag(capsys, "barrier", "open", "-c", config, "--yes").code == 0
        assert sims["io"].output("barrier") is True

        drive(sims, 24_000)
        outbox = Outbox(tmp_path / "state" / "outbox.db", read_only=True)
        try:
            wait_until(
                lambda: any(e["type"] == "end" for e in outbox.reader.latest_crossings(10)),
                30,
                "the crossing's end event",
            )
            crossing = outbox.reader.latest_crossings(1)[0]["crossing_id"]
        finally:
            outbox.close()
        assert agent.stop() == 0, agent.output()[-8000:]
    assert not sock.exists()  # removed on shutdown

    explained = diag(capsys, "explain", str(crossing), "-c", config, "--json")
    assert explained.code == 0, explained.err
    story = ExplainOutput.model_validate_json(explained.out)
    assert [e["type"] for e in story.events][-1] == "end"
    assert story.source == "trace"  # the correlator's own story, not only the events
    steps = [step["what"] for step in story.trace]
    assert "presence" in steps and "end" in steps
    assert any(s["what"] == "weight" and s["kg"] == 24_000 for s in story.trace)
    human = diag(capsys, "explain", str(crossing), "-c", config)
    assert "24,000" in human.out  # the weight behind the crossing
    for part in (str(crossing)[:13], str(crossing)[-8:]):  # a unique start or end of the id
        short = diag(capsys, "explain", part, "-c", config, "--json")
        assert ExplainOutput.model_validate_json(short.out).crossing_id == crossing
    missing = diag(capsys, "explain", "no-such-crossing", "-c", config)
    assert missing.code == 11


def test_agent_holding_the_lock_without_a_socket(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    """An agent that runs but does not answer (hung, or an old version) is named as such."""
    config = write_lane(tmp_path, 1, "")
    (tmp_path / "state").mkdir()
    with (tmp_path / "state" / "lane.lock").open("a+") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        lock.write("4242")
        lock.flush()
        result = diag(capsys, "status", "-c", config, "--json")
    status = StatusOutput.model_validate_json(result.out)
    assert result.code == 10 and status.agent.running and status.agent.pid == 4242
    assert any("runs but does not answer" in p for p in status.problems)
    probe = diag(capsys, "probe", "x", "-c", config)
    assert probe.code == 11


def test_running_agent_refused_by_the_broker_with_a_full_outbox(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from edge.devtools.localbroker import LocalBroker
    from tests.diag.test_outbox_mqtt import fill

    secret = tmp_path / "mqtt.password"
    secret.write_text("wrong\n")
    (tmp_path / "state").mkdir()
    fill(tmp_path / "state", 120, rejected=0)
    with LocalBroker(passwords={"lane": "right"}, workdir=tmp_path / "b") as broker:
        config = write_lane(
            tmp_path,
            broker.port,
            "",
            extra="  max_rows: 100\n",
            mqtt_extra=f"  username: lane\n  password: {{file: {secret}}}\n",
        )
        with Agent(config) as agent:
            wait_until((tmp_path / "state" / "control.sock").exists, 30, "the control socket")

            def refused() -> StatusOutput:
                return StatusOutput.model_validate_json(
                    diag(capsys, "status", "-c", config, "--json").out
                )

            wait_until(lambda: refused().broker.last_error is not None, 15, "a refusal")  # type: ignore[union-attr]
            status = refused()
            assert status.agent.running and status.broker is not None
            assert not status.broker.connected and "refused" in (status.broker.last_error or "")
            assert status.outbox is not None and "outbox_full" in status.outbox.alarms
            text = " ".join(status.problems)
            assert "no broker connection" in text and "outbox FULL" in text
            human = diag(capsys, "status", "-c", config)
            assert "NOT CONNECTED" in human.out and "outbox_full" in human.out
            assert agent.stop() == 0, agent.output()[-8000:]
