"""The outbox's send order: the stored rows the publisher sends next.

Send order, highest first: control (status, command replies) > live crossings > backlog
crossings (rate-limited by the publisher) > evidence > telemetry. A crossing is *live* while
it is younger than ``storage.live_window_s``; older pending crossings are *backlog* and are
published with ``historical: true``. Rows past their expiry are never sent (the writer deletes
them later).

Reads only, on the publisher's own connection (WAL: it reads while a crossing's insert waits
for its fsync); rows leave the outbox through the writer (``Outbox.ack``), never here.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from edge.outbox_db import open_reader, opening
from edge.topics import PRIORITY_CONTROL, PRIORITY_CROSSING, PRIORITY_TELEMETRY

_LIVE = b'"historical":false'
_HISTORICAL = b'"historical":true'


@dataclass(frozen=True, slots=True)
class OutboxRow:
    id: int
    kind: str
    priority: int
    topic: str
    payload: bytes
    retain: bool
    properties: dict[str, object] | None
    event_id: str | None
    lane_seq: int | None
    created_ns: int
    attempts: int
    historical: bool = False

    def wire_payload(self) -> bytes:
        """The payload as sent: a backlog crossing is marked historical."""
        if not self.historical:
            return self.payload
        # The agent's own events carry the key once, as pydantic writes it: flip it in place
        # (a quote inside a JSON string is escaped, so this can only be the key). Anything
        # else (no key, a row written otherwise) is decoded and written again.
        if self.payload.count(_LIVE) == 1:
            return self.payload.replace(_LIVE, _HISTORICAL)
        body = json.loads(self.payload)
        body["historical"] = True
        return json.dumps(body, separators=(",", ":")).encode()


class SendQueue:
    """The rows to send next, read through a connection of its own (one lock: any thread)."""

    def __init__(self, path: Path, *, busy_timeout_s: float, read_only: bool) -> None:
        self._lock = threading.Lock()
        with opening(path):
            self._db = open_reader(path, busy_timeout_s=busy_timeout_s, read_only=read_only)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def next_batch(
        self,
        *,
        limit: int,
        exclude: Iterable[int] = (),
        backlog_budget: int = 0,
        live_window_ns: int,
    ) -> list[OutboxRow]:
        """The next rows to send, in priority order, skipping rows already in flight."""
        if limit <= 0:
            return []
        skip = frozenset(exclude)
        now = time.time_ns()
        live_cutoff = now - live_window_ns
        out: list[OutboxRow] = []
        with self._lock:
            out += self._select(PRIORITY_CONTROL, skip, limit, now)
            out += self._select(
                PRIORITY_CROSSING, skip, limit - len(out), now, since_ns=live_cutoff
            )
            out += self._select(
                PRIORITY_CROSSING,
                skip,
                min(limit - len(out), backlog_budget),
                now,
                before_ns=live_cutoff,
            )
            for priority in range(PRIORITY_CROSSING + 1, PRIORITY_TELEMETRY + 1):
                if len(out) >= limit:
                    break
                out += self._select(priority, skip, limit - len(out), now)
        return out

    def _select(
        self,
        priority: int,
        skip: frozenset[int],
        limit: int,
        now: int,
        *,
        since_ns: int | None = None,
        before_ns: int | None = None,
    ) -> list[OutboxRow]:
        """Unexpired pending rows of one priority, oldest first, optionally by age; rows
        older than ``before_ns`` (the backlog) are marked historical."""
        if limit <= 0:
            return []
        where = "state = 'pending' AND priority = ? AND (expires_ns IS NULL OR expires_ns >= ?)"
        params: list[object] = [priority, now]
        # Crossings are split by age into live and backlog: walk the age index in its own
        # order (created_ns, then id), so either query stops after ``limit`` rows whether
        # 100 or 100,000 wait (ORDER BY id would sort every row of the range first). The
        # other priorities walk the send-order index.
        by_age = since_ns is not None or before_ns is not None
        index = " INDEXED BY outbox_age" if by_age else " INDEXED BY outbox_send_order"
        order = "created_ns, id" if by_age else "id"
        if since_ns is not None:
            where += " AND created_ns >= ?"
            params.append(since_ns)
        if before_ns is not None:
            where += " AND created_ns < ?"
            params.append(before_ns)
        # Rows in flight are skipped here rather than with NOT IN (?, ...) in SQL: one
        # statement text per query shape stays in sqlite3's statement cache (re-preparing a
        # statement cost more than the rest of a publish).
        rows = self._db.execute(
            "SELECT id, kind, priority, topic, payload, retain, properties, event_id, lane_seq,"
            f" created_ns, attempts FROM outbox{index} WHERE {where} ORDER BY {order} LIMIT ?",
            (*params, limit + len(skip)),
        ).fetchall()
        if skip:
            rows = [r for r in rows if r[0] not in skip][:limit]
        return [
            OutboxRow(
                id=r[0],
                kind=r[1],
                priority=r[2],
                topic=r[3],
                payload=bytes(r[4]),
                retain=bool(r[5]),
                properties=json.loads(r[6]) if r[6] else None,
                event_id=r[7],
                lane_seq=r[8],
                created_ns=r[9],
                attempts=r[10],
                historical=before_ns is not None,
            )
            for r in rows
        ]
