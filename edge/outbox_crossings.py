"""Crossing events in the store: each one queued for sending *and* kept in the local history.

The history (the ``crossings`` table, ``storage.keep_crossings`` events, and each finished
crossing's trace) is what ``cmd/replay`` queues again, what ``lane events tail`` and
``lane diag explain`` show (``edge.outbox_read``) and where the agent finds crossings a crash
left without an ``end``. These functions run inside the caller's write transaction
(``Outbox``: its lock, its writer thread); they return what they added so the caller keeps
its row and byte counts.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from edge.events import CrossingEvent
from edge.topics import PRIORITY_CROSSING

PRUNE_EVERY = 500  # lane_seq steps between prunes of the local crossing history
MAX_REPLAY = 10_000  # events per replay request

_QUEUE = (
    "INSERT INTO outbox (kind, priority, topic, payload, event_id, lane_seq, created_ns)"
    " VALUES ('crossing', ?, ?, ?, ?, ?, ?)"
)


@dataclass(frozen=True, slots=True)
class Replay:
    """What a replay request queued: see :meth:`edge.outbox.Outbox.replay`."""

    queued: int
    pending: int
    not_kept: list[tuple[int, int]]

    def as_dict(self) -> dict[str, object]:
        return {
            "queued": self.queued,
            "pending": self.pending,
            "not_kept": [list(span) for span in self.not_kept],
        }


def insert(
    db: sqlite3.Connection,
    makers: Iterable[Callable[[int], CrossingEvent]],
    topic: str,
    *,
    after_seq: int,
) -> tuple[list[CrossingEvent], int]:
    """Give each maker the next lane_seq after ``after_seq``; queue and keep each event.

    Returns the events and their payload bytes."""
    events: list[CrossingEvent] = []
    size = 0
    now = time.time_ns()
    seq = after_seq
    for make in makers:
        seq += 1
        event = make(seq)
        payload = event.to_json()
        db.execute(_QUEUE, (PRIORITY_CROSSING, topic, payload, event.event_id, seq, now))
        db.execute(
            "INSERT INTO crossings (lane_seq, event_id, crossing_id, type, produced_ns,"
            " payload) VALUES (?, ?, ?, ?, ?, ?)",
            (seq, event.event_id, event.crossing_id, event.type, now, payload),
        )
        size += len(payload)
        events.append(event)
    return events, size


def check_range(first_seq: int, last_seq: int) -> None:
    if not 1 <= first_seq <= last_seq:
        raise ValueError(f"a lane_seq range runs from 1 up: got {first_seq}..{last_seq}")
    if last_seq - first_seq >= MAX_REPLAY:
        raise ValueError(f"at most {MAX_REPLAY} events per replay: ask for smaller ranges")


def requeue(
    db: sqlite3.Connection, first_seq: int, last_seq: int, topic: str, *, backlog_ns: int
) -> tuple[Replay, int]:
    """Queue the kept events ``first_seq..last_seq`` that are not pending again, as backlog
    (created no later than ``backlog_ns``). Returns what was done and the bytes queued."""
    queued = pending = size = 0
    rows = db.execute(
        "SELECT c.lane_seq, c.event_id, c.produced_ns, c.payload, o.id FROM crossings c"
        " LEFT JOIN outbox o ON o.event_id = c.event_id"
        " WHERE c.lane_seq BETWEEN ? AND ? ORDER BY c.lane_seq",
        (first_seq, last_seq),
    ).fetchall()
    for seq, event_id, produced_ns, payload, outbox_id in rows:
        if outbox_id is not None:
            pending += 1
            continue
        db.execute(
            _QUEUE,
            (PRIORITY_CROSSING, topic, payload, event_id, seq, min(produced_ns, backlog_ns)),
        )
        size += len(payload)
        queued += 1
    kept = {row[0] for row in rows}
    missing = (seq for seq in range(first_seq, last_seq + 1) if seq not in kept)
    return Replay(queued=queued, pending=pending, not_kept=spans(missing)), size


def save_trace(db: sqlite3.Connection, crossing_id: str, trace: list[dict[str, object]]) -> None:
    db.execute(
        "INSERT OR REPLACE INTO crossing_traces (crossing_id, saved_ns, trace) VALUES (?, ?, ?)",
        (crossing_id, time.time_ns(), json.dumps(trace, default=str)),
    )


def prune_due(last_seq: int, added: int) -> bool:
    """The history is pruned each time lane_seq passes a multiple of PRUNE_EVERY."""
    return last_seq // PRUNE_EVERY != (last_seq - added) // PRUNE_EVERY


def prune(db: sqlite3.Connection, keep: int) -> None:
    """Keep the newest ``keep`` events (and their traces) for tail, explain and replay."""
    db.execute(
        "DELETE FROM crossings WHERE lane_seq <= (SELECT max(lane_seq) FROM crossings) - ?",
        (keep,),
    )
    db.execute(
        "DELETE FROM crossing_traces WHERE crossing_id NOT IN (SELECT crossing_id FROM crossings)"
    )


def spans(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted integers as inclusive runs: 1, 2, 3, 7 -> (1, 3), (7, 7)."""
    out: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if out and seq == out[-1][1] + 1:
            out[-1] = (out[-1][0], seq)
        else:
            out.append((seq, seq))
    return out
