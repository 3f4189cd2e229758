"""What the outbox holds, for people and tools: rows by state, an export, the local crossing
history and each finished crossing's trace.

Reads only, through a connection of its own (WAL: a read never waits on the writer's fsync
and never holds up the publisher); one lock per query, so any thread may call it. The agent's
store carries one (:attr:`edge.outbox.Outbox.reader`: the crossings a crash left without an
``end``, found at start); a tool that only looks opens one on the file, read-only
(``lane diag outbox``, ``lane diag explain``; ``lane events tail`` and the diagnostics bundle
through a read-only ``Outbox``). The tables are in :mod:`edge.outbox_db`.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from types import TracebackType

from edge.outbox_db import open_reader, opening

_LISTING_KEYS = (
    "id", "kind", "topic", "event_id", "lane_seq", "created_ns", "state", "attempts",
    "reason_code", "last_error", "bytes",
)  # fmt: skip
_EXPORT_KEYS = (
    "id", "kind", "topic", "event_id", "lane_seq", "created_ns", "state", "attempts",
    "reason_code", "last_error", "retain",
)  # fmt: skip


class OutboxReader:
    """Read-only views of one outbox file; ``read_only`` opens it as it is (it must exist)."""

    def __init__(self, path: Path, *, busy_timeout_s: float = 5.0, read_only: bool = True) -> None:
        self.path = Path(path)
        self._lock = threading.Lock()
        with opening(self.path):
            self._db = open_reader(self.path, busy_timeout_s=busy_timeout_s, read_only=read_only)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> OutboxReader:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    # --- rows waiting to be sent, or kept after the broker refused them -----------------

    def rejected(self, limit: int = 100) -> list[dict[str, object]]:
        return self._listing("state = 'rejected'", limit)

    def pending(self, limit: int = 100) -> list[dict[str, object]]:
        return self._listing("state = 'pending'", limit)

    def export_rows(
        self, state: str | None = None, *, batch: int = 1000
    ) -> Iterator[dict[str, object]]:
        """Every row (or those in ``state``) with its payload, oldest first, a batch at a time.

        A JSON payload is given as ``payload``; any other as ``payload_hex``.
        """
        where = "state = ?" if state is not None else "1"
        last = 0
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT id, kind, topic, event_id, lane_seq, created_ns, state, attempts,"
                    " reason_code, last_error, retain, payload FROM outbox"
                    f" WHERE id > ? AND {where}"
                    " ORDER BY id LIMIT ?",
                    (last, *([state] if state is not None else []), batch),
                ).fetchall()
            if not rows:
                return
            for r in rows:
                out: dict[str, object] = dict(zip(_EXPORT_KEYS, r[:11], strict=True))
                out["retain"] = bool(r[10])
                try:
                    out["payload"] = json.loads(r[11])
                except ValueError:
                    out["payload_hex"] = bytes(r[11]).hex()
                yield out
            last = rows[-1][0]

    # --- the local crossing history (``storage.keep_crossings`` events) -----------------

    def latest_crossings(self, limit: int = 20) -> list[dict[str, object]]:
        """The newest crossing events, oldest first, each with its ``_delivery`` state."""
        with self._lock:
            rows = self._db.execute(
                "SELECT c.payload, o.state FROM crossings c LEFT JOIN outbox o"
                " ON o.event_id = c.event_id ORDER BY c.lane_seq DESC LIMIT ?",
                (limit,),
            ).fetchall()
        out = []
        for payload, state in reversed(rows):
            event = json.loads(payload)
            event["_delivery"] = state or "published"
            out.append(event)
        return out

    def crossing_events(self, crossing_id: str) -> list[dict[str, object]]:
        """The events of one crossing still in the local store, in lane_seq order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT payload FROM crossings WHERE crossing_id = ? ORDER BY lane_seq",
                (crossing_id,),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def crossing_trace(self, crossing_id: str) -> list[dict[str, object]] | None:
        """Every reading, plate vote and decision behind a crossing, or None if unknown."""
        with self._lock:
            row = self._db.execute(
                "SELECT trace FROM crossing_traces WHERE crossing_id = ?", (crossing_id,)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def unfinished_crossings(self) -> list[bytes]:
        """The newest stored event of each crossing that has a ``new`` and no ``end``.

        After a crash (``kill -9``, power loss) these crossings were never ended; the agent
        ends them on start with ``end_reason: interrupted``. Oldest crossing first.
        """
        with self._lock:
            rows = self._db.execute(
                "SELECT c.payload FROM crossings c JOIN ("
                " SELECT crossing_id, max(lane_seq) AS last FROM crossings GROUP BY crossing_id"
                " HAVING sum(type = 'new') > 0 AND sum(type = 'end') = 0"
                ") u ON c.lane_seq = u.last ORDER BY c.lane_seq"
            ).fetchall()
        return [bytes(r[0]) for r in rows]

    def _listing(self, where: str, limit: int) -> list[dict[str, object]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, topic, event_id, lane_seq, created_ns, state, attempts,"
                f" reason_code, last_error, length(payload) FROM outbox WHERE {where}"
                " ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        return [dict(zip(_LISTING_KEYS, r, strict=True)) for r in rows]
