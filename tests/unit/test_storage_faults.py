"""Storage faults keep every crossing: the outbox's failed writes and the held-event queue.

The fault here is real: a second SQLite connection holds the write lock past the outbox's busy
timeout ("database is locked"), as a backup tool or a stuck `sqlite3` shell would.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.crossing import CrossingRecord, LaneIdentity, interrupted_end, make_event
from edge.errors import OutboxError, StorageError
from edge.events import CrossingEvent, EventType, PlateRead
from edge.outbox import Outbox
from edge.topics import PRIORITY_TELEMETRY
from edge.writer import CrossingWriter, WriteThread

TOPIC = "border/KZ-TEST/T1/crossing"
LANE = LaneIdentity("KZ-TEST", "T1", "entry", 1)


def event(record: CrossingRecord, kind: EventType) -> CrossingEvent:
    return make_event(record, kind, LANE, 1)


@contextmanager
def write_locked(path: Path) -> Iterator[None]:
    """Another process's write transaction on the outbox file, held until the block ends."""
    other = sqlite3.connect(path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    try:
        yield
    finally:
        other.execute("ROLLBACK")
        other.close()


@pytest.fixture
def outbox(tmp_path: Path) -> Iterator[Outbox]:
    box = Outbox(tmp_path / "outbox.db", busy_timeout_s=0.05)
    yield box
    box.close()


def test_a_locked_store_raises_storage_error_and_changes_nothing(outbox: Outbox) -> None:
    record = CrossingRecord.begin()
    outbox.add_crossing(lambda seq: make_event(record, EventType.NEW, LANE, seq), TOPIC)
    before = outbox.stats()
    with write_locked(outbox.path):
        with pytest.raises(StorageError) as caught:
            outbox.add_crossing(lambda seq: make_event(record, EventType.END, LANE, seq), TOPIC)
        with pytest.raises(StorageError):
            outbox.add_message(kind="telemetry", topic="t", payload=b"{}", priority=9)
    assert caught.value.alarm == "storage.error" and not caught.value.full
    assert isinstance(caught.value, OutboxError) and caught.value.exit_code == 4
    assert "database is locked" in str(caught.value)
    after = outbox.stats()
    assert (after.pending, after.bytes, after.last_lane_seq) == (
        before.pending,
        before.bytes,
        before.last_lane_seq,
    )
    # The connection is usable again at once: the next lane_seq follows without a gap.
    (end,) = outbox.add_crossings([lambda seq: make_event(record, EventType.END, LANE, seq)], TOPIC)
    assert end.lane_seq == before.last_lane_seq + 1


class Calls:
    def __init__(self) -> None:
        self.faults: list[str | None] = []
        self.committed: list[list[CrossingEvent]] = []
        self.overflows: list[int] = []
        self.errors: list[BaseException] = []

    def writer(self, outbox: Outbox, *, limit: int = 100) -> CrossingWriter:
        writes = WriteThread(on_error=self.errors.append)
        outbox.write_thread = writes.thread
        return CrossingWriter(
            outbox,
            writes,
            TOPIC,
            limit=limit,
            on_fault=lambda exc: self.faults.append(exc.alarm if exc else None),
            on_committed=self.committed.append,
            on_overflow=self.overflows.append,
        )


def test_a_write_from_another_thread_than_the_writer_is_refused(outbox: Outbox) -> None:
    writer = Calls().writer(outbox)
    with pytest.raises(OutboxError, match="written from thread MainThread"):
        outbox.add_message(kind="telemetry", topic="t", payload=b"{}", priority=9)
    writer.writes.call(
        outbox.add_message, kind="telemetry", topic="t", payload=b"{}", priority=PRIORITY_TELEMETRY
    )
    assert outbox.size == 1
    # Reads stay open to every thread: the send queue, the figures and the tools' reader.
    assert [row.kind for row in outbox.next_batch(limit=5)] == ["telemetry"]
    assert outbox.stats().pending == 1
    assert [row["kind"] for row in outbox.reader.pending()] == ["telemetry"]
    with pytest.raises(OutboxError, match="written from thread MainThread"):
        outbox.save_trace("c1", [])


def test_held_events_are_committed_in_production_order_with_contiguous_lane_seq(
    outbox: Outbox,
) -> None:
    calls = Calls()
    first, second = CrossingRecord.begin(), CrossingRecord.begin()

    async def scenario() -> None:
        writer = calls.writer(outbox)
        assert await writer.put(event(first, EventType.NEW))  # lane_seq 1, straight through
        produced = [
            event(first, EventType.UPDATE),
            event(first, EventType.END),
            event(second, EventType.NEW),
        ]
        with write_locked(outbox.path):
            for e in produced:
                assert not await writer.put(e)  # held
            assert writer.held == 3 and writer.held_crossings() == 2
            assert not await writer.flush()  # still locked: still held, nothing reordered
            assert writer.held == 3
        last = event(second, EventType.END)
        assert not await writer.put(last)  # behind the held ones, though the store is free
        assert await writer.flush()
        assert writer.held == 0 and writer.fault is None
        stored = outbox.reader.crossing_events(first.crossing_id) + outbox.reader.crossing_events(
            second.crossing_id
        )
        by_seq = sorted((int(e["lane_seq"]), str(e["event_id"])) for e in stored)  # type: ignore[call-overload]
        assert [seq for seq, _ in by_seq] == [1, 2, 3, 4, 5]
        assert [eid for _, eid in by_seq] == [
            e.event_id for e in [*calls.committed[0], *produced, last]
        ]

    asyncio.run(scenario())
    # One alarm when the store failed (not one per held event or retry), one clear.
    assert calls.faults == ["storage.error", None]
    assert [[e.lane_seq for e in batch] for batch in calls.committed] == [[1], [2, 3, 4, 5]]


def test_an_event_put_while_a_retry_waits_on_the_store_is_held_behind_it(
    tmp_path: Path,
) -> None:
    # Long enough that the retry is still waiting on the lock when the next event comes.
    outbox = Outbox(tmp_path / "outbox.db", busy_timeout_s=2.0)
    calls = Calls()
    record = CrossingRecord.begin()
    produced = [event(record, kind) for kind in (EventType.NEW, EventType.UPDATE)]
    later = event(record, EventType.END)

    async def scenario() -> CrossingWriter:
        writer = calls.writer(outbox)
        other = sqlite3.connect(outbox.path, isolation_level=None)
        other.execute("BEGIN IMMEDIATE")
        for e in produced:
            assert not await writer.put(e)  # the first waits out the timeout, then held
        retry = asyncio.create_task(writer.flush())
        async with asyncio.timeout(60):
            while writer.writes.busy_since is None:
                await asyncio.sleep(0.01)
        assert not await writer.put(later)  # held at once, behind the batch being committed
        assert not retry.done()  # the put did not wait for the retry's commit
        other.execute("ROLLBACK")
        other.close()
        while writer.held:  # the retry (and, had it timed out, one more) commits them
            await retry
            retry = asyncio.create_task(writer.flush())
        await retry
        return writer

    try:
        writer = asyncio.run(scenario())
    finally:
        outbox.close()
    assert writer.held == 0
    committed = [e for batch in calls.committed for e in batch]
    assert [e.event_id for e in committed] == [e.event_id for e in [*produced, later]]
    assert [e.lane_seq for e in committed] == [1, 2, 3]
    stored = outbox_events(tmp_path / "outbox.db", record.crossing_id)
    assert [(e["lane_seq"], e["type"]) for e in stored] == [(1, "new"), (2, "update"), (3, "end")]


def outbox_events(path: Path, crossing_id: str) -> list[dict[str, object]]:
    box = Outbox(path, read_only=True)
    try:
        return box.reader.crossing_events(crossing_id)
    finally:
        box.close()


def test_a_held_event_is_frozen_when_produced(outbox: Outbox) -> None:
    record = CrossingRecord.begin()
    calls = Calls()

    async def scenario() -> None:
        writer = calls.writer(outbox)
        with write_locked(outbox.path):
            await writer.put(event(record, EventType.NEW))
            record.plates.append(
                PlateRead(position="front", text="A123BC", confidence=0.9, camera="front")
            )
            await writer.put(event(record, EventType.UPDATE))
        assert await writer.flush()

    asyncio.run(scenario())
    new, update = outbox.reader.crossing_events(record.crossing_id)
    assert new["plates"] == [] and new["identified"] is False
    assert [p["text"] for p in update["plates"]] == ["A123BC"]  # type: ignore[index, union-attr]


def test_past_the_bound_overflow_is_reported_once_and_nothing_is_dropped(
    outbox: Outbox,
) -> None:
    calls = Calls()

    async def scenario() -> CrossingWriter:
        writer = calls.writer(outbox, limit=2)
        with write_locked(outbox.path):
            for _ in range(4):
                await writer.put(event(CrossingRecord.begin(), EventType.NEW))
        return writer

    writer = asyncio.run(scenario())
    assert calls.overflows == [3]
    assert writer.held == 4 and writer.overflowed


def test_the_retry_task_commits_once_the_store_is_free(outbox: Outbox) -> None:
    calls = Calls()
    record = CrossingRecord.begin()

    async def scenario() -> None:
        writer = calls.writer(outbox)
        retry = asyncio.create_task(writer.run())
        with write_locked(outbox.path):
            await writer.put(event(record, EventType.NEW))
            await writer.put(event(record, EventType.END))
        async with asyncio.timeout(60):
            while writer.held:
                await asyncio.sleep(0.05)
        retry.cancel()

    asyncio.run(scenario())
    assert [e["type"] for e in outbox.reader.crossing_events(record.crossing_id)] == ["new", "end"]
    assert calls.faults == ["storage.error", None]


def test_another_writes_failure_raises_the_alarm_and_a_probe_clears_it(outbox: Outbox) -> None:
    calls = Calls()

    async def scenario() -> None:
        writer = calls.writer(outbox)
        with write_locked(outbox.path):
            with pytest.raises(StorageError) as caught:
                await writer.writes.run(
                    outbox.add_message, kind="telemetry", topic="t", payload=b"{}", priority=9
                )
            writer.failed(caught.value)
            writer.failed(caught.value)  # the same alarm again: no second report
            assert not await writer.flush()  # the probe is refused too
        assert await writer.flush()

    asyncio.run(scenario())
    assert calls.faults == ["storage.error", None]


def test_unfinished_crossings_are_ended_interrupted_with_what_was_known(outbox: Outbox) -> None:
    open_one, finished = CrossingRecord.begin(), CrossingRecord.begin()
    outbox.add_crossing(lambda seq: make_event(open_one, EventType.NEW, LANE, seq), TOPIC)
    outbox.add_crossing(lambda seq: make_event(finished, EventType.NEW, LANE, seq), TOPIC)
    open_one.plates.append(
        PlateRead(position="front", text="777KZA02", confidence=0.8, camera="front")
    )
    last = outbox.add_crossing(lambda seq: make_event(open_one, EventType.UPDATE, LANE, seq), TOPIC)
    finished.end, finished.end_reason = datetime.now(UTC), "exit"
    outbox.add_crossing(lambda seq: make_event(finished, EventType.END, LANE, seq), TOPIC)

    (stored,) = outbox.reader.unfinished_crossings()
    end = interrupted_end(CrossingEvent.model_validate_json(stored), boot_seq=2)
    assert end.type == EventType.END and end.end_reason == "interrupted"
    assert end.crossing_id == open_one.crossing_id and end.event_id != last.event_id
    assert end.boot_seq == 2 and end.end is not None
    assert abs(end.end - last.produced) < timedelta(milliseconds=1)  # as stored: to the ms
    assert [p.text for p in end.plates] == ["777KZA02"]
    assert any(n.startswith("interrupted:") for n in end.coverage.notes)

    outbox.add_crossing(lambda seq: end.model_copy(update={"lane_seq": seq}), TOPIC)
    assert outbox.reader.unfinished_crossings() == []  # ended once: a later start ends nothing
