"""The agent under a fake systemd: READY, STATUS, WATCHDOG only while healthy, STOPPING."""

from __future__ import annotations

import itertools
import re
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.devtools.localbroker import LocalBroker
from tests.conftest import lane_yaml
from tests.ops.support import AgentProcess, NotifyListener

WATCHDOG_S = 1.0


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


def test_ready_status_pings_and_stopping(
    broker: LocalBroker, notify: NotifyListener, tmp_path: Path
) -> None:
    config = tmp_path / "lane.yaml"
    config.write_text(lane_yaml(tmp_path / "state", broker.port))
    agent = AgentProcess(config, notify=notify, watchdog_s=WATCHDOG_S, log_path=tmp_path / "log")
    try:
        ready = notify.wait_for(lambda m: m.has("READY", "1"), 20)
        first = notify.snapshot()[0]
        assert first.has("READY", "1"), "READY=1 must come before any ping"
        # The `online` status may already be queued if the broker answered that fast.
        assert re.search(r"outbox \d+ pending", ready.fields["STATUS"]), ready.fields
        notify.wait_for(lambda m: "mqtt connected" in m.fields.get("STATUS", ""), 10)
        time.sleep(2.5)
        pings = notify.pings(ready.at)
        # The agent pings every quarter period; systemd needs one per period.
        assert len(pings) >= 6, pings
        gaps = [b - a for a, b in itertools.pairwise(pings)]
        assert max(gaps) < WATCHDOG_S, gaps
    finally:
        assert agent.stop() == 0, agent.log()
    stopping = notify.wait_for(lambda m: m.has("STOPPING", "1"), 1)
    assert "stopping" in stopping.fields["STATUS"]
    assert notify.pings(stopping.at) == [], "no pings after STOPPING=1"


def test_a_stalled_stage_withholds_pings_until_it_recovers(
    broker: LocalBroker, notify: NotifyListener, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    config = tmp_path / "lane.yaml"
    scripted = "scripted:\n  vehicles: 100000\n  interval_ms: 100\n"
    config.write_text(lane_yaml(state, broker.port, extra=scripted))
    agent = AgentProcess(config, notify=notify, watchdog_s=WATCHDOG_S, log_path=tmp_path / "log")
    try:
        ready = notify.wait_for(lambda m: m.has("READY", "1"), 20)
        notify.wait_for(lambda m: "mqtt connected" in m.fields.get("STATUS", ""), 10)
        time.sleep(1.0)
        assert len(notify.pings(ready.at)) >= 3
        # A stuck disk, as the agent sees it: another process holds the outbox's write lock.
        # Crossing writes wait on it (stage outbox-writer); so does the publisher thread
        # (stage publisher) as soon as it has a PUBACK to record.
        db = sqlite3.connect(state / "outbox.db", timeout=10, isolation_level=None)
        db.execute("BEGIN EXCLUSIVE")
        locked_at = time.monotonic()
        time.sleep(3.5)
        db.execute("ROLLBACK")
        released_at = time.monotonic()
        db.close()
        # One period of silence is allowed before the stage counts as stalled.
        assert notify.pings(locked_at + 2 * WATCHDOG_S, released_at) == [], agent.log()
        stalled = notify.wait_for(
            lambda m: "STALLED: " in m.fields.get("STATUS", ""), 0, after=locked_at
        )
        assert stalled.at < released_at
        notify.wait_for(lambda m: m.has("WATCHDOG", "1"), 5, after=released_at)
        agent.wait_log("lane healthy again", 5)
        log = agent.log()
        assert re.search(r"withholding watchdog pings: .*(outbox-writer|publisher) silent", log)
        # A line when stages newly stall, never one per tick: at most one per stage. With the
        # store locked, whatever reads it stalls too (the writer, the publisher, and the
        # parts that read figures from it: refresh, alarms, telemetry).
        lines = [line for line in log.splitlines() if "withholding watchdog pings" in line]
        stages = set(re.findall(r"([\w:-]+) silent for", "\n".join(lines)))
        assert 1 <= len(lines) <= len(stages), log
        assert stages <= {"outbox-writer", "publisher", "refresh", "alarms", "telemetry"}, log
        assert log.count("lane healthy again") == 1, log
    finally:
        assert agent.stop() == 0, agent.log()
