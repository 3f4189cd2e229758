"""One message from the network must not silence a lane (issue 22, findings 1 and 2).

Each test runs the real agent against a real Mosquitto, sends the hostile message, then proves
the publisher thread still works: a later command is answered and crossings still arrive.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.config import load_config
from edge.devtools.localbroker import LocalBroker
from edge.lane import open_outbox
from edge.topics import PRIORITY_CONTROL
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


def test_a_wildcard_or_foreign_reply_topic_is_refused_and_the_lane_keeps_publishing(
    broker: LocalBroker, tmp_path: Path
) -> None:
    config = write_config(tmp_path, broker.port, vehicles=0)
    consumer = Consumer(broker.port, topic="#")
    consumer.wait_subscribed()
    try:
        with Agent(config) as agent:
            wait_until(lambda: stats(config).boot_seq >= 1, 20, "the agent started")
            wait_until(lambda: bool(consumer.bodies("/status")), 20, "lane online")
            send_command(broker.port, "ping", b"wild", response_topic="replies/#")
            send_command(broker.port, "ping", b"plus", response_topic="replies/+/x")
            send_command(broker.port, "ping", b"sys", response_topic="$SYS/broker/x")
            send_command(
                broker.port, "ping", b"foreign", response_topic="border/KZ-TEST/T2/crossing"
            )
            send_command(broker.port, "ping", b"after")
            wanted = {b"wild", b"plus", b"sys", b"foreign", b"after"}
            wait_until(lambda: wanted <= set(replies(consumer)), 20, "every reply")
            got = replies(consumer)
            for key in (b"wild", b"plus", b"sys", b"foreign"):
                assert got[key]["ok"] is False, got[key]
                assert got[key]["topic"] == f"{CMD}/ping/reply", "refusal on the lane's own topic"
            assert "wildcard" in str(got[b"wild"]["error"])
            assert "$ system topic" in str(got[b"sys"]["error"])
            assert "outside" in str(got[b"foreign"]["error"])
            assert got[b"after"]["ok"] is True
            assert not [m for m in consumer.messages if m[0] == "border/KZ-TEST/T2/crossing"]
            assert agent.process is not None and agent.process.poll() is None
            assert agent.stop() == 0, agent.output()[-8000:]
        assert "Traceback" not in agent.output()
        assert stats(config).rejected == 0  # refused before the outbox, nothing poisoned
    finally:
        consumer.close()


def test_a_row_that_can_never_be_published_is_rejected_with_its_reason(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """A poison row left in the store (an older version queued a wildcard reply) is rejected
    once, visibly, and everything behind it is still sent."""
    config = write_config(tmp_path, broker.port, vehicles=3)
    outbox = open_outbox(load_config(config))
    try:
        outbox.add_message(
            kind="reply", topic="replies/#", payload=b"{}", priority=PRIORITY_CONTROL
        )
    finally:
        outbox.close()
    consumer = Consumer(broker.port, topic="border/#")
    consumer.wait_subscribed()
    try:
        with Agent(config) as agent:
            wait_until(lambda: len(consumer.crossings()) >= 6, 30, "6 crossing events")
            wait_until(lambda: stats(config).rejected == 1, 10, "the poison row rejected")
            assert "outbox_rejected" in stats(config).alarms
            assert agent.stop() == 0, agent.output()[-8000:]
        assert "Traceback" not in agent.output()
    finally:
        consumer.close()
    listing = subprocess.run(
        [sys.executable, "-m", "edge", "diag", "outbox", "list", "--rejected", "--json",
         "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert listing.returncode == 0, listing.stderr
    rows = json.loads(listing.stdout)["rows"]
    assert len(rows) == 1 and rows[0]["topic"] == "replies/#"
    assert "cannot be published" in rows[0]["last_error"]
    out = subprocess.run(
        [sys.executable, "-m", "edge", "outbox", "stats", "--config", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert "rejected      1" in out.stdout


def test_deep_or_huge_commands_are_refused_and_the_lane_keeps_publishing(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """The neighbour-lane half of this finding runs with real devices in
    tests/integration/test_neighbour_lane.py (a lane without devices reads no neighbours)."""
    config = write_config(tmp_path, broker.port, vehicles=0)
    consumer = Consumer(broker.port, topic="border/KZ-TEST/T1/#")
    consumer.wait_subscribed()
    try:
        with Agent(config) as agent:
            wait_until(lambda: bool(consumer.bodies("/status")), 20, "lane online")
            send_command(broker.port, "replay", b"deep", payload=b"[" * 60_000)
            send_command(broker.port, "replay", b"huge", payload=b" " * 70_000 + b"{}")
            send_command(broker.port, "replay", b"array", payload=b"[1, 2]")
            send_command(broker.port, "ping", b"after")
            wanted = {b"deep", b"huge", b"array", b"after"}
            wait_until(lambda: wanted <= set(replies(consumer)), 20, "every reply")
            got = replies(consumer)
            assert got[b"deep"]["ok"] is False and "nested deeper" in str(got[b"deep"]["error"])
            assert got[b"huge"]["ok"] is False and "over the limit" in str(got[b"huge"]["error"])
            assert got[b"array"]["ok"] is False and "JSON object" in str(got[b"array"]["error"])
            assert got[b"after"]["ok"] is True
            assert agent.process is not None and agent.process.poll() is None
            assert agent.stop() == 0, agent.output()[-8000:]
        assert "Traceback" not in agent.output()
    finally:
        consumer.close()


def test_a_command_flood_is_cut_and_crossings_still_flow(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """Finding 10: 3,000 commands at once are admitted at the configured rate (the rest are
    dropped unanswered and counted), crossings keep being delivered, and the lane answers a
    person's command after the flood."""
    config = write_config(tmp_path, broker.port, vehicles=40, interval_ms=100)
    config.write_text(
        config.read_text().replace(
            "mqtt:\n", "mqtt:\n  command_rate_per_s: 2\n  command_burst: 20\n"
        )
    )
    consumer = Consumer(broker.port, topic="border/KZ-TEST/T1/#")
    consumer.wait_subscribed()
    flood = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
    flood.connect("127.0.0.1", broker.port)
    flood.loop_start()
    try:
        with Agent(config) as agent:
            wait_until(lambda: bool(consumer.bodies("/status")), 20, "lane online")
            started = time.monotonic()
            infos = [flood.publish(f"{CMD}/ping", b"{}", qos=1) for _ in range(3000)]
            for info in infos:
                info.wait_for_publish(30)
            flood_s = time.monotonic() - started
            wait_until(lambda: "dropped unanswered" in agent.output(), 20, "drops logged")
            wait_until(lambda: len(consumer.crossings()) >= 80, 60, "all 80 crossing events")
            time.sleep(1.5)  # the bucket refills: a person's command is answered again
            send_command(broker.port, "ping", b"person")
            wait_until(lambda: b"person" in replies(consumer), 20, "the person's reply")
            answered = len([m for m in consumer.messages if m[0] == f"{CMD}/ping/reply"])
            elapsed = time.monotonic() - started
            # The burst plus the rate over the whole run, with room for the person's command.
            assert answered <= 20 + 2 * elapsed + 2, (answered, flood_s, elapsed)
            assert answered < 3000 / 4
            assert agent.stop() == 0, agent.output()[-8000:]
        assert "Traceback" not in agent.output()
    finally:
        flood.disconnect()
        flood.loop_stop()
        consumer.close()


def test_replays_are_bounded_per_minute_and_the_reply_names_the_refused_range(
    broker: LocalBroker, tmp_path: Path
) -> None:
    """Finding 10: a replay's cost per minute is bounded; the reply says what it refused."""
    config = write_config(tmp_path, broker.port, vehicles=30, interval_ms=2)  # 60 events
    config.write_text(
        config.read_text().replace("mqtt:\n", "mqtt:\n  replay_events_per_minute: 50\n")
    )
    with Agent(config) as agent:
        wait_until(lambda: stats(config).last_lane_seq == 60, 30, "60 events produced")
        wait_until(lambda: stats(config).pending_crossings == 0, 30, "60 events published")
        consumer = Consumer(broker.port, topic="border/KZ-TEST/T1/#")
        try:
            consumer.wait_subscribed()
            send_command(broker.port, "replay", b"one", payload=b'{"from_seq": 1, "to_seq": 60}')
            wait_until(lambda: b"one" in replies(consumer), 20, "first reply")
            send_command(broker.port, "replay", b"two", payload=b'{"from_seq": 1, "to_seq": 5}')
            wait_until(lambda: b"two" in replies(consumer), 20, "second reply")
            got = replies(consumer)
            first, second = got[b"one"]["result"], got[b"two"]["result"]
            assert first["queued"] == 50 and first["refused"] == [[51, 60]], first  # type: ignore[index]
            assert first["retry_after_s"] > 0  # type: ignore[index]
            assert second["queued"] == 0 and second["refused"] == [[1, 5]], second  # type: ignore[index]
            wait_until(lambda: len(consumer.crossings()) >= 50, 20, "50 events again")
            time.sleep(0.5)
            assert sorted(int(e["lane_seq"]) for e in consumer.crossings()) == list(range(1, 51))  # type: ignore[call-overload]
        finally:
            consumer.close()
        assert agent.stop() == 0, agent.output()[-8000:]
