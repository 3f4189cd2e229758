"""Delivery never loses a crossing: real Mosquitto processes, the agent as a real process."""

from __future__ import annotations

import json
import time
from pathlib import Path

from edge.config import load_config
from edge.devtools.localbroker import LocalBroker, free_port
from edge.lane import open_outbox
from edge.outbox import OutboxStats
from tests.conftest import lane_yaml
from tests.integration.support import (
    Agent,
    Consumer,
    check_delivery,
    missing_seqs,
    send_command,
    wait_until,
)


def write_config(tmp_path: Path, port: int, *, vehicles: int, interval_ms: float = 0) -> Path:
    path = tmp_path / "lane.yaml"
    path.write_text(
        lane_yaml(
            tmp_path / "state",
            port,
            extra=f"scripted:\n  vehicles: {vehicles}\n  interval_ms: {interval_ms}\n",
        )
    )
    return path


def stats(config: Path) -> OutboxStats:
    outbox = open_outbox(load_config(config))
    try:
        return outbox.stats()
    finally:
        outbox.close()


def test_broker_absent_at_start_then_everything_arrives(tmp_path: Path) -> None:
    port = free_port()
    broker = LocalBroker(port=port, persistent=True, workdir=tmp_path / "broker").start()
    # The integrator's consumer has a persistent session from before the outage.
    consumer = Consumer(port, client_id="integrator", persistent=True)
    consumer.wait_subscribed()
    consumer.close()
    broker.stop()

    config = write_config(tmp_path, port, vehicles=250)  # 500 crossing events
    config.write_text(config.read_text().replace("storage:\n", "storage:\n  live_window_s: 0.5\n"))
    with Agent(config) as agent:
        wait_until(lambda: stats(config).last_lane_seq == 500, 60, "500 events buffered")
        assert stats(config).pending_crossings == 500
        time.sleep(0.6)  # every buffered event is now older than the live window

        broker.start()
        consumer = Consumer(port, client_id="integrator", persistent=True)
        try:
            wait_until(lambda: len(consumer.crossings()) >= 500, 60, "500 events delivered")
            wait_until(lambda: stats(config).pending_crossings == 0, 30, "outbox drained")
            events = consumer.crossings()
            check_delivery(events, 500)
            # Sent after the outage: marked historical, not live.
            assert all(e["historical"] for e in events)
            assert agent.stop() == 0, agent.output()[-8000:]
        finally:
            consumer.close()
            broker.stop()


def test_broker_killed_and_restarted_mid_stream_loses_nothing(tmp_path: Path) -> None:
    port = free_port()
    broker = LocalBroker(port=port, persistent=True, workdir=tmp_path / "broker").start()
    consumer = Consumer(port, client_id="integrator", persistent=True)
    consumer.wait_subscribed()
    config = write_config(tmp_path, port, vehicles=1000, interval_ms=2)  # 2,000 events
    try:
        with Agent(config) as agent:
            wait_until(lambda: len(consumer.crossings()) >= 600, 60, "600 events delivered")
            broker.kill()
            time.sleep(1.5)
            broker.start()
            wait_until(lambda: stats(config).last_lane_seq == 2000, 120, "all events produced")
            wait_until(lambda: stats(config).pending_crossings == 0, 60, "outbox drained")
            time.sleep(1.0)
            # Mosquitto acknowledges before it saves: a SIGKILL can lose what it had taken
            # but not yet handed on. The gap shows in lane_seq; a replay request fills it.
            missing = missing_seqs(consumer.crossings(), 2000)
            if missing:
                replay = json.dumps({"from_seq": missing[0], "to_seq": missing[-1]})
                send_command(port, "replay", b"gap", payload=replay.encode())
                wait_until(
                    lambda: not missing_seqs(consumer.crossings(), 2000), 30, "the gap filled"
                )
            check_delivery(consumer.crossings(), 2000)
            assert "MQTT connection lost" in agent.output()
            assert agent.stop() == 0, agent.output()[-8000:]
    finally:
        consumer.close()
        broker.stop()


def test_agent_killed_mid_burst_restarts_without_a_gap(broker: LocalBroker, tmp_path: Path) -> None:
    consumer = Consumer(broker.port)
    consumer.wait_subscribed()
    config = write_config(tmp_path, broker.port, vehicles=3000)
    try:
        first = Agent(config).start()
        wait_until(lambda: len(consumer.crossings()) >= 300, 60, "300 events delivered")
        first.kill()
        killed_at = stats(config).last_lane_seq
        assert killed_at < 6000, "the burst ended before the kill"
        outbox = open_outbox(load_config(config), read_only=True)
        try:  # a crossing the kill left open is ended on restart (end_reason interrupted)
            left_open = [json.loads(p)["crossing_id"] for p in outbox.reader.unfinished_crossings()]
        finally:
            outbox.close()
        assert len(left_open) <= 1

        config.write_text(config.read_text().replace("vehicles: 3000", "vehicles: 20"))
        with Agent(config) as second:
            expected = killed_at + len(left_open) + 40
            wait_until(lambda: stats(config).last_lane_seq == expected, 60, "restart produced")
            wait_until(lambda: stats(config).pending_crossings == 0, 60, "outbox drained")
            wait_until(
                lambda: len({e["lane_seq"] for e in consumer.crossings()}) >= expected,
                30,
                "every lane_seq delivered",
            )
            assert second.stop() == 0
        events = consumer.crossings()
        check_delivery(events, expected)
        boots = {int(e["lane_seq"]): int(e["boot_seq"]) for e in events}
        assert boots[1] == 1
        assert boots[expected] == 2, "events made after the restart carry the new boot_seq"
        interrupted = [e for e in events if e.get("end_reason") == "interrupted"]
        assert [e["crossing_id"] for e in interrupted] == left_open
        assert all(int(e["lane_seq"]) == killed_at + 1 for e in interrupted)  # type: ignore[call-overload]
    finally:
        consumer.close()
