"""One message from the network must not silence a lane (issue 22, findings 1 and 2).

Each test runs the real agent against a real Mosquitto, sends the hostile message, then proves
the publisher thread still works: a later command is answered and crossings still arrive.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from edge.config import load_config
from edge.lane import open_outbox
from edge.localbroker import LocalBroker
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
