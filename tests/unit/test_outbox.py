"""The durable outbox: sequence numbers, priorities, capacity, ack and reject."""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

import pytest

from edge.crossing import CrossingRecord, LaneIdentity, make_event
from edge.events import EventType
from edge.outbox import Outbox
from edge.outbox_send import OutboxRow
from edge.topics import PRIORITY_CONTROL, PRIORITY_TELEMETRY


def add(outbox: Outbox, n: int = 1, boot: int = 1) -> list[int]:
    ident = LaneIdentity("KZ-1", "T1", "entry", boot)
    seqs = []
    for _ in range(n):
        record = CrossingRecord.begin()
        event = outbox.add_crossing(
            lambda s, r=record: make_event(r, EventType.END, ident, s), "b/KZ-1/T1/crossing"
        )
        seqs.append(event.lane_seq)
    return seqs


def telemetry(outbox: Outbox, size: int = 100) -> int | None:
    return outbox.add_message(
        kind="telemetry", topic="t", payload=b"x" * size, priority=PRIORITY_TELEMETRY
    )


def test_lane_seq_and_boot_seq_survive_reopen(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    assert outbox.start_boot() == 1
    assert add(outbox, 3) == [1, 2, 3]
    outbox.close()
    outbox = Outbox(tmp_path / "o.db")
    assert outbox.start_boot() == 2
    assert add(outbox, 2) == [4, 5]
    assert outbox.stats().pending_crossings == 5


def test_batch_is_one_transaction_with_consecutive_seqs(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    ident = LaneIdentity("KZ-1", "T1", "entry", 1)
    records = [CrossingRecord.begin() for _ in range(4)]
    events = outbox.add_crossings(
        [lambda s, r=r: make_event(r, EventType.NEW, ident, s) for r in records], "t"
    )
    assert [e.lane_seq for e in events] == [1, 2, 3, 4]


def test_control_before_live_crossings_before_telemetry(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    telemetry(outbox)
    add(outbox, 2)
    outbox.add_message(kind="status", topic="s", payload=b"{}", priority=PRIORITY_CONTROL)
    kinds = [r.kind for r in outbox.next_batch(limit=10)]
    assert kinds == ["status", "crossing", "crossing", "telemetry"]


def test_backlog_is_rate_limited_and_marked_historical(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", live_window_s=0.05)
    add(outbox, 5)
    time.sleep(0.1)
    add(outbox, 1)  # live
    batch = outbox.next_batch(limit=10, backlog_budget=2)
    assert [r.lane_seq for r in batch] == [6, 1, 2]
    live, old = batch[0], batch[1]
    assert not live.historical and json.loads(live.wire_payload())["historical"] is False
    assert old.historical and json.loads(old.wire_payload())["historical"] is True
    assert outbox.next_batch(limit=10, backlog_budget=0) == [live]


@pytest.mark.parametrize(
    "body",
    [
        {"lane_seq": 1, "historical": False, "note": '"historical":false'},  # in a string too
        {"lane_seq": 2},  # no key: a row written by something else
        {"lane_seq": 3, "nested": {"historical": False}, "historical": False},
    ],
)
def test_a_backlog_payload_is_marked_historical_and_nothing_else_changes(
    body: dict[str, object],
) -> None:
    payload = json.dumps(body, separators=(",", ":")).encode()
    row = OutboxRow(1, "crossing", 1, "t", payload, False, None, None, 1, 0, 0, historical=True)
    assert json.loads(row.wire_payload()) == {**body, "historical": True}


def test_in_flight_rows_are_skipped(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    add(outbox, 3)
    first = outbox.next_batch(limit=2)
    rest = outbox.next_batch(limit=10, exclude=[r.id for r in first])
    assert [r.lane_seq for r in rest] == [3]


def test_ack_removes_reject_keeps(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    add(outbox, 2)
    a, b = outbox.next_batch(limit=2)
    assert outbox.ack([a.id]) == 1
    outbox.reject(b.id, 0x87, "Not authorized")
    stats = outbox.stats()
    assert stats.pending == 0 and stats.rejected == 1
    assert "outbox_rejected" in stats.alarms
    (row,) = outbox.reader.rejected()
    assert row["reason_code"] == 0x87 and row["lane_seq"] == 2
    assert outbox.next_batch(limit=10) == []
    assert outbox.requeue_rejected() == 1
    assert [r.lane_seq for r in outbox.next_batch(limit=10)] == [2]


def test_newer_status_replaces_pending_older(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    for state in (b"online", b"stopped", b"online2"):
        outbox.add_message(kind="status", topic="s", payload=state, priority=PRIORITY_CONTROL)
    assert [r.payload for r in outbox.next_batch(limit=10)] == [b"online2"]


def test_expired_messages_are_dropped(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    outbox.add_message(
        kind="reply", topic="r", payload=b"{}", priority=PRIORITY_CONTROL, expires_in_s=0.01
    )
    time.sleep(0.05)
    assert outbox.next_batch(limit=10) == []
    assert outbox.stats().pending == 0


def test_telemetry_is_evicted_first_crossings_never_dropped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "o.db", max_rows=100, alarm_fill=0.8)
    for _ in range(60):
        telemetry(outbox)
    add(outbox, 70)
    stats = outbox.stats()
    assert stats.pending_crossings == 70
    assert stats.pending == 100  # 30 telemetry rows were evicted to make room
    assert stats.telemetry_evicted == 30
    add(outbox, 20)  # evicts 20 more telemetry rows
    assert outbox.stats().telemetry_evicted == 50
    assert telemetry(outbox) is not None  # new telemetry replaces the oldest telemetry
    assert outbox.stats().telemetry_evicted == 51


def test_full_outbox_still_stores_crossings(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    outbox = Outbox(tmp_path / "o.db", max_rows=100)
    add(outbox, 120)  # past the bound with nothing to evict: every crossing is kept
    stats = outbox.stats()
    assert stats.pending_crossings == 120
    assert "outbox_full" in stats.alarms
    assert sum("outbox FULL" in r.message for r in caplog.records) == 1
    assert telemetry(outbox) is None  # telemetry that does not fit is refused, counted
    assert outbox.stats().telemetry_evicted == 1


def test_high_watermark_alarm(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    outbox = Outbox(tmp_path / "o.db", max_rows=100, alarm_fill=0.5)
    add(outbox, 49)
    assert outbox.alarms() == ()
    add(outbox, 1)
    assert outbox.alarms() == ("outbox_high",)
    assert sum("outbox above 50%" in r.message for r in caplog.records) == 1


def test_latest_crossings_shows_delivery_state(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    add(outbox, 3)
    (first, *_rest) = outbox.next_batch(limit=1)
    outbox.ack([first.id])
    events = outbox.reader.latest_crossings(10)
    assert [e["lane_seq"] for e in events] == [1, 2, 3]
    assert [e["_delivery"] for e in events] == ["published", "pending", "pending"]


def test_wal_and_full_sync(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    db = outbox._db
    assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def test_reads_do_not_wait_for_a_write_in_progress(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", busy_timeout_s=0.05)
    add(outbox, 2)
    other = sqlite3.connect(outbox.path, isolation_level=None)  # a writer mid-transaction
    other.execute("BEGIN IMMEDIATE")
    other.execute("DELETE FROM crossings")
    try:
        assert [e["lane_seq"] for e in outbox.reader.latest_crossings()] == [1, 2]
        assert [r.lane_seq for r in outbox.next_batch(limit=10)] == [1, 2]
    finally:
        other.execute("ROLLBACK")
        other.close()
        outbox.close()


def test_history_is_pruned_to_keep_crossings(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", keep_crossings=100)
    add(outbox, 520)
    events = outbox.reader.latest_crossings(1000)
    # Pruned when lane_seq reached 500, to the newest 100; then 20 more arrived.
    assert [e["lane_seq"] for e in events] == list(range(401, 521))


def test_trace_is_kept_for_explain(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db")
    assert outbox.reader.crossing_trace("nope") is None
    outbox.save_trace("c1", [{"t": 0.0, "what": "presence"}, {"t": 3.2, "what": "end"}])
    assert [e["what"] for e in outbox.reader.crossing_trace("c1") or []] == ["presence", "end"]


def test_replay_queues_published_events_again_as_they_were(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", keep_crossings=100)
    add(outbox, 520)  # history pruned at 500 to 401..500, then 501..520
    sent = {r.lane_seq: r for r in outbox.next_batch(limit=1000, backlog_budget=1000)}
    assert outbox.ack([sent[seq].id for seq in range(1, 511)]) == 510  # 511..520 pending

    replay = outbox.replay(395, 515, "b/KZ-1/T1/crossing")
    assert replay.queued == 110 and replay.pending == 5  # 401..510 again; 511..515 anyway
    assert replay.not_kept == [(395, 400)]  # pruned from the history
    assert outbox.replay(519, 530, "t").not_kept == [(521, 530)]  # not produced yet

    again = outbox.next_batch(limit=1000, backlog_budget=1000)
    by_seq = {r.lane_seq: r for r in again}
    assert sorted(by_seq) == list(range(401, 521))
    for seq in (401, 510):
        row = by_seq[seq]
        assert row.historical and row.event_id == sent[seq].event_id
        body = json.loads(row.wire_payload())
        assert body["historical"] is True and body["lane_seq"] == seq
        assert body == {**json.loads(sent[seq].payload), "historical": True}
    assert outbox.stats().pending_crossings == 120


@pytest.mark.parametrize(("first", "last"), [(0, 5), (9, 3), (1, 10_001)])
def test_replay_refuses_a_bad_range(tmp_path: Path, first: int, last: int) -> None:
    outbox = Outbox(tmp_path / "o.db")
    add(outbox, 3)
    with pytest.raises(ValueError, match=r"lane_seq range|at most"):
        outbox.replay(first, last, "t")
    assert outbox.stats().pending_crossings == 3
