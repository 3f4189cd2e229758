"""Lane status with Last Will, commands, ACL rejections, one instance per lane, local tail."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from edge.cli import main
from edge.config import load_config
from edge.devtools.localbroker import LocalBroker, free_port
from edge.lane import open_outbox
from tests.conftest import lane_yaml
from tests.integration.support import (
    CMD,
    ROOT,
    Agent,
    Consumer,
    replies,
    send_command,
    wait_until,
)
from tests.integration.test_delivery import stats, write_config

STATUS = "border/KZ-TEST/T1/status"


def retained_status(port: int) -> str | None:
    """What a consumer connecting now is told about the lane."""
    consumer = Consumer(port, topic=STATUS)
    try:
        consumer.wait_subscribed()
        time.sleep(0.3)
        bodies = consumer.bodies("/status")
        return str(bodies[-1]["state"]) if bodies else None
    finally:
        consumer.close()


def test_last_will_offline_on_kill_stopped_on_clean_stop(
    broker: LocalBroker, tmp_path: Path
) -> None:
    config = write_config(tmp_path, broker.port, vehicles=0)
    agent = Agent(config).start()
    wait_until(lambda: retained_status(broker.port) == "online", 20, "status online")
    agent.kill()
    wait_until(lambda: retained_status(broker.port) == "offline", 20, "Last Will offline")
    with Agent(config) as agent:
        wait_until(lambda: retained_status(broker.port) == "online", 20, "online again")
        assert agent.stop() == 0, agent.output()[-8000:]
    assert retained_status(broker.port) == "stopped"


def test_commands_reply_with_correlation_retained_and_expired_ignored(
    tmp_path: Path,
) -> None:
    port = free_port()
    broker = LocalBroker(port=port, persistent=True, workdir=tmp_path / "broker").start()
    consumer = Consumer(port, topic="#")
    consumer.wait_subscribed()
    config = write_config(tmp_path, port, vehicles=0)
    # The integrator's own reply prefix is allowed by configuration.
    config.write_text(config.read_text().replace("mqtt:\n", "mqtt:\n  reply_topics: [replies/#]\n"))
    try:
        # A first run creates the lane's persistent session, then the lane is away.
        with Agent(config) as agent:
            wait_until(lambda: retained_status(port) == "online", 20, "online")
            assert agent.stop() == 0, agent.output()[-8000:]
        send_command(port, "ping", b"retained", retain=True)
        send_command(port, "ping", b"expired", expiry_s=1)
        send_command(port, "ping", b"queued", expiry_s=300)
        time.sleep(2.0)
        with Agent(config) as agent:
            wait_until(lambda: b"queued" in replies(consumer), 20, "queued command answered")
            send_command(port, "ping", b"live", response_topic="replies/integrator")
            send_command(port, "nonsense", b"unknown")
            wait_until(lambda: {b"live", b"unknown"} <= set(replies(consumer)), 20, "replies")
            time.sleep(0.5)
            got = replies(consumer)
            assert got[b"queued"]["ok"] is True
            assert got[b"queued"]["topic"] == f"{CMD}/ping/reply"
            assert got[b"live"]["topic"] == "replies/integrator"
            assert got[b"live"]["result"]["pong"] is True  # type: ignore[index]
            assert got[b"unknown"]["ok"] is False
            assert b"retained" not in got, "a retained command was executed"
            assert b"expired" not in got, "an expired command was executed"
            assert agent.stop() == 0, agent.output()[-8000:]
    finally:
        consumer.close()
        broker.stop()


def test_replay_sends_a_missed_range_again_with_the_same_event_ids(
    broker: LocalBroker, tmp_path: Path
) -> None:
    config = write_config(tmp_path, broker.port, vehicles=30, interval_ms=2)  # 60 events
    with Agent(config) as agent:
        # Nobody subscribed while the lane published: the broker dropped all 60 events.
        wait_until(lambda: stats(config).last_lane_seq == 60, 30, "60 events produced")
        wait_until(lambda: stats(config).pending_crossings == 0, 30, "60 events published")
        consumer = Consumer(broker.port, topic="#")
        try:
            consumer.wait_subscribed()
            send_command(broker.port, "replay", b"gap", payload=b'{"from_seq": 11, "to_seq": 70}')
            send_command(broker.port, "replay", b"bad", payload=b'{"from_seq": "one"}')
            send_command(broker.port, "replay", b"big", payload=b'{"from_seq": 1, "to_seq": 20000}')
            wait_until(lambda: len(consumer.crossings()) >= 50, 20, "events 11..60 again")
            wait_until(lambda: {b"gap", b"bad", b"big"} <= set(replies(consumer)), 10, "replies")
            got = replies(consumer)
            assert got[b"gap"]["ok"] is True
            assert got[b"gap"]["result"] == {"queued": 50, "pending": 0, "not_kept": [[61, 70]]}
            assert got[b"bad"]["ok"] is False and "from_seq" in str(got[b"bad"]["error"])
            assert got[b"big"]["ok"] is False and "at most 10000" in str(got[b"big"]["error"])
            time.sleep(0.5)
            events = consumer.crossings()
            seqs = sorted(int(e["lane_seq"]) for e in events)  # type: ignore[call-overload]
            assert seqs == list(range(11, 61))
            assert all(e["historical"] is True for e in events)
            kept = {e["lane_seq"]: e for e in local_events(config)}
            for event in events:
                assert event == {**kept[event["lane_seq"]], "historical": True}
        finally:
            consumer.close()
        assert agent.stop() == 0, agent.output()[-8000:]
    assert "command replay refused" in agent.output()
    assert "Traceback" not in agent.output()


def local_events(config: Path) -> list[dict[str, object]]:
    """The lane's own history of its crossing events (`lane events tail`)."""
    outbox = open_outbox(load_config(config))
    try:
        events = outbox.reader.latest_crossings(1000)
    finally:
        outbox.close()
    for event in events:
        del event["_delivery"]
    return events


def test_publish_denied_by_acl_is_kept_as_rejected(tmp_path: Path) -> None:
    acl = "topic readwrite border/+/+/status\ntopic readwrite border/+/+/telemetry\ntopic read #\n"
    broker = LocalBroker(acl=acl, workdir=tmp_path / "broker").start()
    config = write_config(tmp_path, broker.port, vehicles=3)
    try:
        with Agent(config) as agent:
            wait_until(lambda: stats(config).rejected == 6, 30, "6 rejected crossing events")
            s = stats(config)
            assert s.pending_crossings == 0 and "outbox_rejected" in s.alarms
            wait_until(lambda: "rejected" in agent.output(), 5, "a log line")
            assert "Not authorized" in agent.output()
            assert agent.stop() == 0, agent.output()[-8000:]
    finally:
        broker.stop()
    # Still there after the agent stopped; a technician sees them.
    assert main(["outbox", "stats", "--config", str(config), "--json"]) == 0
    assert stats(config).rejected == 6


def test_second_instance_exits_with_a_clear_message(broker: LocalBroker, tmp_path: Path) -> None:
    config = write_config(tmp_path, broker.port, vehicles=0)
    with Agent(config) as first:
        wait_until(lambda: retained_status(broker.port) == "online", 20, "online")
        second = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--config", str(config)],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert second.returncode == 3
        assert "another lane agent" in second.stderr and str(first.process.pid) in second.stderr
        assert first.stop() == 0


def test_events_tail_reads_the_local_store_without_a_broker(tmp_path: Path, capsys) -> None:  # type: ignore[no-untyped-def]
    config = tmp_path / "lane.yaml"
    config.write_text(
        lane_yaml(
            tmp_path / "state", free_port(), extra="scripted:\n  vehicles: 4\n  interval_ms: 0\n"
        )
    )
    with Agent(config) as agent:
        wait_until(lambda: stats(config).last_lane_seq == 8, 30, "8 events stored")
        assert agent.stop() == 0, agent.output()[-8000:]
    capsys.readouterr()
    assert main(["events", "tail", "--config", str(config), "-n", "5"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 5 and all("[pending]" in line for line in lines)
    assert main(["events", "tail", "--config", str(config), "--json"]) == 0
    events = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    # Each line names its crossing, so a technician can `lane diag explain` it.
    assert lines[-1].endswith(str(events[-1]["crossing_id"]))
    assert [e["lane_seq"] for e in events] == list(range(1, 9))
    ends = [e for e in events if e["type"] == "end"]
    assert len(ends) == 4 and all(e["plates"] for e in ends)


def test_mqtt311_delivers_and_sets_the_will(broker: LocalBroker, tmp_path: Path) -> None:
    consumer = Consumer(broker.port)
    consumer.wait_subscribed()
    config = tmp_path / "lane.yaml"
    config.write_text(
        lane_yaml(
            tmp_path / "state",
            broker.port,
            mqtt_extra="  protocol: mqtt311\n",
            extra="scripted:\n  vehicles: 5\n  interval_ms: 0\n",
        )
    )
    try:
        agent = Agent(config).start()
        wait_until(lambda: len(consumer.crossings()) >= 10, 20, "10 events over MQTT 3.1.1")
        agent.kill()
        wait_until(lambda: retained_status(broker.port) == "offline", 20, "Last Will offline")
    finally:
        consumer.close()
