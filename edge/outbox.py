"""The durable outbox: every message the lane publishes is committed here first.

SQLite in WAL mode with ``synchronous=FULL``: a crossing is on disk before it is published.
A row leaves the outbox only after the broker's PUBACK with a success reason code; a row the
broker rejects (reason code >= 0x80) is kept, marked ``rejected`` and counted.

Send order, highest first: control (status, command replies) > live crossings > backlog
crossings (rate-limited by the publisher) > evidence > telemetry. A crossing is *live* while
it is younger than ``storage.live_window_s``; older pending crossings are *backlog* and are
published with ``historical: true``.

Capacity (``storage.max_rows`` / ``storage.max_bytes``): telemetry is evicted first; crossings
are never dropped. Past ``alarm_fill`` of the bound the lane raises ``outbox_high``; at the
bound with nothing left to evict it raises ``outbox_full`` and still stores every crossing.

One connection, one lock: the agent's producer and the publisher thread share this object.

A write that fails at run time (disk full, I/O error, locked past ``busy_timeout_s``) raises
:class:`edge.errors.StorageError` and leaves the store and its counters as they were; the
agent holds crossings in memory and retries (``edge.writer``, docs/delivery.md).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from edge.errors import OutboxError, StorageError
from edge.events import CrossingEvent
from edge.topics import (
    PRIORITY_CONTROL,
    PRIORITY_CROSSING,
    PRIORITY_EVIDENCE,
    PRIORITY_TELEMETRY,
)

log = logging.getLogger(__name__)

SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS outbox (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    kind TEXT NOT NULL,
    priority INTEGER NOT NULL,
    topic TEXT NOT NULL,
    payload BLOB NOT NULL,
    retain INTEGER NOT NULL DEFAULT 0,
    properties TEXT,
    event_id TEXT UNIQUE,
    lane_seq INTEGER,
    created_ns INTEGER NOT NULL,
    expires_ns INTEGER,
    state TEXT NOT NULL DEFAULT 'pending' CHECK (state IN ('pending', 'rejected')),
    attempts INTEGER NOT NULL DEFAULT 0,
    reason_code INTEGER,
    last_error TEXT
);
CREATE INDEX IF NOT EXISTS outbox_send_order ON outbox (state, priority, id);
CREATE INDEX IF NOT EXISTS outbox_age ON outbox (priority, created_ns);
CREATE INDEX IF NOT EXISTS outbox_expiry ON outbox (expires_ns) WHERE expires_ns IS NOT NULL;
CREATE TABLE IF NOT EXISTS crossing_traces (
    crossing_id TEXT PRIMARY KEY,
    saved_ns INTEGER NOT NULL,
    trace TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS crossings (
    lane_seq INTEGER PRIMARY KEY,
    event_id TEXT NOT NULL,
    crossing_id TEXT NOT NULL,
    type TEXT NOT NULL,
    produced_ns INTEGER NOT NULL,
    payload BLOB NOT NULL
);
"""

KINDS_REPLACED_BY_TOPIC = ("status",)
_EXPORT_KEYS = (
    "id", "kind", "topic", "event_id", "lane_seq", "created_ns", "state", "attempts",
    "reason_code", "last_error", "retain",
)  # fmt: skip


def disk_full(directory: Path) -> bool:
    """No space left for us on the filesystem of ``directory`` (SQLite may only say I/O error)."""
    try:
        return os.statvfs(directory).f_bavail == 0
    except OSError:
        return False


def storage_error(path: Path, exc: sqlite3.Error, *, doing: str = "write") -> StorageError:
    """A failed write as the lane reports it: one line, the alarm it raises."""
    code = getattr(exc, "sqlite_errorcode", None)
    full = (code is not None and code & 0xFF == sqlite3.SQLITE_FULL) or disk_full(path.parent)
    hint = f" (the disk of {path.parent} is full: free space there)" if full else ""
    return StorageError(f"cannot {doing} the outbox {path}: {exc}{hint}", full=full)


PRUNE_EVERY = 500  # lane_seq steps between prunes of the local crossing history
MAX_REPLAY = 10_000  # events per replay request


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
        body = json.loads(self.payload)
        body["historical"] = True
        return json.dumps(body, separators=(",", ":")).encode()


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    pending_crossings: int
    rejected: int
    bytes: int
    oldest_pending_age_s: float | None
    boot_seq: int
    last_lane_seq: int
    max_rows: int
    max_bytes: int
    telemetry_evicted: int
    alarms: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "pending": self.pending,
            "pending_crossings": self.pending_crossings,
            "rejected": self.rejected,
            "bytes": self.bytes,
            "oldest_pending_age_s": self.oldest_pending_age_s,
            "boot_seq": self.boot_seq,
            "last_lane_seq": self.last_lane_seq,
            "max_rows": self.max_rows,
            "max_bytes": self.max_bytes,
            "telemetry_evicted": self.telemetry_evicted,
            "alarms": list(self.alarms),
        }


@dataclass(frozen=True, slots=True)
class Replay:
    """What a replay request queued: see :meth:`Outbox.replay`."""

    queued: int
    pending: int
    not_kept: list[tuple[int, int]]

    def as_dict(self) -> dict[str, object]:
        return {
            "queued": self.queued,
            "pending": self.pending,
            "not_kept": [list(span) for span in self.not_kept],
        }


def _spans(seqs: Iterable[int]) -> list[tuple[int, int]]:
    """Sorted integers as inclusive runs: 1, 2, 3, 7 -> (1, 3), (7, 7)."""
    spans: list[tuple[int, int]] = []
    for seq in sorted(seqs):
        if spans and seq == spans[-1][1] + 1:
            spans[-1] = (spans[-1][0], seq)
        else:
            spans.append((seq, seq))
    return spans


class Outbox:
    def __init__(
        self,
        path: Path,
        *,
        max_rows: int = 500_000,
        max_bytes: int = 1 << 30,
        alarm_fill: float = 0.8,
        live_window_s: float = 5.0,
        keep_crossings: int = 10_000,
        read_only: bool = False,
        busy_timeout_s: float = 5.0,
    ) -> None:
        self.path = Path(path)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.alarm_fill = alarm_fill
        self.live_window_ns = int(live_window_s * 1e9)
        self.keep_crossings = keep_crossings
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()
        # The agent's outbox-writer thread (edge.writer.WriteThread): once set, a write from
        # any other thread is a bug and raises instead of waiting on an fsync there.
        self.write_thread: threading.Thread | None = None
        self._telemetry_evicted = 0
        self._expired_at = 0
        self._read_only = read_only
        self._full_logged = False
        self._high_logged = False
        try:
            if read_only:
                uri = f"file:{self.path}?mode=ro"
                self._db = sqlite3.connect(uri, uri=True, check_same_thread=False)
            else:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(SCHEMA)
            busy_ms = int(busy_timeout_s * 1000)
            self._db.execute(f"PRAGMA busy_timeout={busy_ms}")
            # The publisher reads through its own connection: WAL lets it read while the
            # producer's insert waits for its fsync.
            self._reader = (
                self._db
                if read_only
                else sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            )
            self._reader.execute(f"PRAGMA busy_timeout={busy_ms}")
            self._rows, self._bytes = self._db.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox"
            ).fetchone()
        except sqlite3.OperationalError as exc:
            raise storage_error(self.path, exc, doing="open") from None
        except sqlite3.Error as exc:
            raise OutboxError(f"outbox {self.path}: {exc}") from exc

    # --- lifecycle ----------------------------------------------------------------------

    def start_boot(self) -> int:
        """Count one more agent start and return the new boot_seq."""
        with self._lock, self._writing():
            boot = self._meta("boot_seq") + 1
            self._set_meta("boot_seq", boot)
        return boot

    def close(self) -> None:
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            if self._reader is not self._db:
                self._reader.close()
            self._db.close()

    # --- writing ------------------------------------------------------------------------

    def add_crossings(
        self, makers: Iterable[Callable[[int], CrossingEvent]], topic: str
    ) -> list[CrossingEvent]:
        """Give each maker the next lane_seq and commit all events durably in one transaction."""
        events: list[CrossingEvent] = []
        now = time.time_ns()
        with self._lock, self._writing():
            seq = self._meta("last_lane_seq")
            for make in makers:
                seq += 1
                event = make(seq)
                payload = event.to_json()
                self._db.execute(
                    "INSERT INTO outbox (kind, priority, topic, payload, event_id, lane_seq,"
                    " created_ns) VALUES ('crossing', ?, ?, ?, ?, ?, ?)",
                    (PRIORITY_CROSSING, topic, payload, event.event_id, seq, now),
                )
                self._db.execute(
                    "INSERT INTO crossings (lane_seq, event_id, crossing_id, type, produced_ns,"
                    " payload) VALUES (?, ?, ?, ?, ?, ?)",
                    (seq, event.event_id, event.crossing_id, event.type, now, payload),
                )
                self._rows += 1
                self._bytes += len(payload)
                events.append(event)
            self._set_meta("last_lane_seq", seq)
            self._make_room()
            if seq // PRUNE_EVERY != (seq - len(events)) // PRUNE_EVERY:
                self._prune_crossings()
        return events

    def add_crossing(self, make: Callable[[int], CrossingEvent], topic: str) -> CrossingEvent:
        return self.add_crossings([make], topic)[0]

    def replay(self, first_seq: int, last_seq: int, topic: str) -> Replay:
        """Queue crossing events ``first_seq..last_seq`` again from the local history.

        A broker that acknowledged an event and then crashed before it saved or delivered it
        loses it: the consumer sees a ``lane_seq`` gap and asks for the range. Each event goes
        out with its own ``event_id`` and payload, as backlog (``historical: true``). Events
        still pending are left alone (they go out anyway); those pruned from the history
        (``storage.keep_crossings``) or not produced yet are reported as ``not_kept``.
        """
        if not 1 <= first_seq <= last_seq:
            raise ValueError(f"a lane_seq range runs from 1 up: got {first_seq}..{last_seq}")
        if last_seq - first_seq >= MAX_REPLAY:
            raise ValueError(f"at most {MAX_REPLAY} events per replay: ask for smaller ranges")
        queued = pending = 0
        backlog_ns = time.time_ns() - self.live_window_ns - 1  # sent as backlog, not live
        with self._lock, self._writing():
            rows = self._db.execute(
                "SELECT c.lane_seq, c.event_id, c.produced_ns, c.payload, o.id FROM crossings c"
                " LEFT JOIN outbox o ON o.event_id = c.event_id"
                " WHERE c.lane_seq BETWEEN ? AND ? ORDER BY c.lane_seq",
                (first_seq, last_seq),
            ).fetchall()
            for seq, event_id, produced_ns, payload, outbox_id in rows:
                if outbox_id is not None:
                    pending += 1
                    continue
                self._db.execute(
                    "INSERT INTO outbox (kind, priority, topic, payload, event_id, lane_seq,"
                    " created_ns) VALUES ('crossing', ?, ?, ?, ?, ?, ?)",
                    (
                        PRIORITY_CROSSING,
                        topic,
                        payload,
                        event_id,
                        seq,
                        min(produced_ns, backlog_ns),
                    ),
                )
                self._rows += 1
                self._bytes += len(payload)
                queued += 1
            self._make_room()
        kept = {row[0] for row in rows}
        missing = (seq for seq in range(first_seq, last_seq + 1) if seq not in kept)
        return Replay(queued=queued, pending=pending, not_kept=_spans(missing))

    def add_message(
        self,
        *,
        kind: str,
        topic: str,
        payload: bytes,
        priority: int,
        retain: bool = False,
        properties: dict[str, object] | None = None,
        expires_in_s: float | None = None,
    ) -> int | None:
        """Queue a status, reply, evidence or telemetry message. Returns its row id.

        A newer status for the same topic replaces a pending older one (retained state:
        only the latest matters). Telemetry that does not fit is dropped and counted.
        """
        now = time.time_ns()
        expires = now + int(expires_in_s * 1e9) if expires_in_s is not None else None
        with self._lock, self._writing():
            self._expire(now)
            if kind in KINDS_REPLACED_BY_TOPIC:
                self._delete_where("state = 'pending' AND kind = ? AND topic = ?", (kind, topic))
            if priority >= PRIORITY_TELEMETRY and not self._room_for(len(payload)):
                self._evict_telemetry(1)
                if not self._room_for(len(payload)):
                    self._telemetry_evicted += 1
                    return None
            cursor = self._db.execute(
                "INSERT INTO outbox (kind, priority, topic, payload, retain, properties,"
                " created_ns, expires_ns) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    kind,
                    priority,
                    topic,
                    payload,
                    int(retain),
                    json.dumps(properties) if properties else None,
                    now,
                    expires,
                ),
            )
            self._rows += 1
            self._bytes += len(payload)
            if priority < PRIORITY_TELEMETRY:
                self._make_room()
            return cursor.lastrowid

    # --- sending ------------------------------------------------------------------------

    def next_batch(
        self, *, limit: int, exclude: Iterable[int] = (), backlog_budget: int = 0
    ) -> list[OutboxRow]:
        """The next rows to send, in priority order, skipping rows already in flight."""
        if limit <= 0:
            return []
        skip = frozenset(exclude)
        now = time.time_ns()
        live_cutoff = now - self.live_window_ns
        out: list[OutboxRow] = []
        with self._read_lock:
            out += self._select(PRIORITY_CONTROL, skip, limit, now)
            out += self._select(
                PRIORITY_CROSSING, skip, limit - len(out), now, since_ns=live_cutoff
            )
            backlog = self._select(
                PRIORITY_CROSSING,
                skip,
                min(limit - len(out), backlog_budget),
                now,
                before_ns=live_cutoff,
            )
            out += [dataclasses.replace(r, historical=True) for r in backlog]
            for priority in range(PRIORITY_CROSSING + 1, PRIORITY_TELEMETRY + 1):
                if len(out) >= limit:
                    break
                out += self._select(priority, skip, limit - len(out), now)
        return out

    def ack(self, ids: Iterable[int]) -> int:
        """Remove rows the broker acknowledged with success; the number removed."""
        ids = list(ids)
        if not ids:
            return 0
        with self._lock:
            # A lost delete only means a duplicate after power loss (consumers dedupe on
            # event_id), so acks skip the fsync that every insert pays.
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._writing():
                    self._expire(time.time_ns())
                    return self._delete_where(f"id IN ({','.join('?' * len(ids))})", tuple(ids))
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def reject(self, row_id: int, reason_code: int | None, reason: str) -> None:
        """Keep a row the broker refused (its reason code) or that can never be sent (None),
        marked rejected, for a technician to look at."""
        with self._lock, self._writing():
            self._db.execute(
                "UPDATE outbox SET state = 'rejected', reason_code = ?, last_error = ?,"
                " attempts = attempts + 1 WHERE id = ?",
                (reason_code, reason, row_id),
            )

    def requeue_rejected(self) -> int:
        with self._lock, self._writing():
            cursor = self._db.execute(
                "UPDATE outbox SET state = 'pending', reason_code = NULL WHERE state = 'rejected'"
            )
            return cursor.rowcount

    # --- reading ------------------------------------------------------------------------

    def stats(self) -> OutboxStats:
        # A read: rows past their expiry count as gone (the writes delete them).
        with self._lock:
            pending, crossings, rejected, oldest = self._db.execute(
                "SELECT sum(live), sum(live AND kind = 'crossing'), sum(state = 'rejected'),"
                " min(CASE WHEN live THEN created_ns END) FROM (SELECT *, state = 'pending'"
                " AND (expires_ns IS NULL OR expires_ns >= ?) AS live FROM outbox)",
                (time.time_ns(),),
            ).fetchone()
            boot = self._meta("boot_seq")
            last = self._meta("last_lane_seq")
            rows, size = self._rows, self._bytes
        age = (time.time_ns() - oldest) / 1e9 if oldest is not None else None
        return OutboxStats(
            pending=pending or 0,
            pending_crossings=crossings or 0,
            rejected=rejected or 0,
            bytes=size,
            oldest_pending_age_s=age,
            boot_seq=boot,
            last_lane_seq=last,
            max_rows=self.max_rows,
            max_bytes=self.max_bytes,
            telemetry_evicted=self._telemetry_evicted,
            alarms=self._alarms(rows, size, rejected or 0),
        )

    @property
    def size(self) -> int:
        """Rows held (pending and rejected), without touching the database."""
        return self._rows

    def alarms(self) -> tuple[str, ...]:
        with self._lock:
            (rejected,) = self._db.execute(
                "SELECT count(*) FROM outbox WHERE state = 'rejected'"
            ).fetchone()
            return self._alarms(self._rows, self._bytes, rejected)

    def rejected(self, limit: int = 100) -> list[dict[str, object]]:
        return self._listing("state = 'rejected'", limit)

    def pending(self, limit: int = 100) -> list[dict[str, object]]:
        return self._listing("state = 'pending'", limit)

    def latest_crossings(self, limit: int = 20) -> list[dict[str, object]]:
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

    # --- internals ----------------------------------------------------------------------

    def _tx(self) -> _Transaction:
        return _Transaction(self._db)

    @contextlib.contextmanager
    def _writing(self) -> Iterator[None]:
        """One write transaction (the caller holds the lock); a failure changes nothing.

        SQLite rolls the transaction back; the row and byte counters are put back too, and
        the error becomes a :class:`StorageError` naming its alarm.
        """
        owner = self.write_thread
        if owner is not None and threading.current_thread() is not owner:
            raise OutboxError(
                f"outbox {self.path} written from thread {threading.current_thread().name}: "
                f"its writes belong to {owner.name} (a bug)"
            )
        if self._db.in_transaction:  # joined an outer write: it restores and classifies
            yield
            return
        counters = self._rows, self._bytes, self._telemetry_evicted
        try:
            with self._tx():
                yield
        except sqlite3.OperationalError as exc:
            self._rows, self._bytes, self._telemetry_evicted = counters
            raise storage_error(self.path, exc) from exc

    def probe(self) -> None:
        """A small durable write: does the store take writes again?"""
        with self._lock, self._writing():
            self._set_meta("probed_ns", time.time_ns())

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

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

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
        """Unexpired pending rows of one priority, oldest first, optionally by age."""
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
        rows = self._reader.execute(
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
            )
            for r in rows
        ]

    def _delete_where(self, where: str, params: tuple[object, ...]) -> int:
        count, size = self._db.execute(
            f"SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox WHERE {where}",
            params,
        ).fetchone()
        if count:
            self._db.execute(f"DELETE FROM outbox WHERE {where}", params)
            self._rows -= count
            self._bytes -= size
        return int(count)

    def _expire(self, now: int) -> None:
        if self._read_only or now - self._expired_at < 1_000_000_000:
            return  # a read-only handle (diagnostics) never deletes; reads skip expired rows
        self._expired_at = now
        # Best effort: on a full disk the delete fails, and reads skip expired rows anyway.
        with contextlib.suppress(StorageError), self._writing():
            self._delete_where("expires_ns IS NOT NULL AND expires_ns < ?", (now,))

    def _room_for(self, size: int) -> bool:
        return self._rows + 1 <= self.max_rows and self._bytes + size <= self.max_bytes

    def _evict_telemetry(self, at_least: int) -> int:
        ids = [
            r[0]
            # Telemetry first, then evidence images (they stay on disk): never a crossing.
            for r in self._db.execute(
                "SELECT id FROM outbox WHERE priority >= ? ORDER BY priority DESC, id LIMIT ?",
                (PRIORITY_EVIDENCE, at_least),
            ).fetchall()
        ]
        if not ids:
            return 0
        evicted = self._delete_where(f"id IN ({','.join('?' * len(ids))})", tuple(ids))
        self._telemetry_evicted += evicted
        return evicted

    def _make_room(self) -> None:
        """After a crossing or status insert: evict telemetry first, never a crossing."""
        while (self._rows > self.max_rows or self._bytes > self.max_bytes) and (
            self._evict_telemetry(max(1, self._rows - self.max_rows))
        ):
            pass
        full = self._rows >= self.max_rows or self._bytes >= self.max_bytes
        high = self._rows >= self.max_rows * self.alarm_fill or (
            self._bytes >= self.max_bytes * self.alarm_fill
        )
        if full and not self._full_logged:
            log.error(
                "outbox FULL (%d rows, %d bytes; bound %d rows, %d bytes): crossings are still "
                "stored, nothing is dropped, but the broker has not taken messages for a long "
                "time: check the broker connection",
                self._rows,
                self._bytes,
                self.max_rows,
                self.max_bytes,
            )
        elif high and not self._high_logged:
            log.warning(
                "outbox above %d%% of its bound (%d rows): the broker is not keeping up",
                int(self.alarm_fill * 100),
                self._rows,
            )
        self._full_logged = full
        self._high_logged = high

    def _alarms(self, rows: int, size: int, rejected: int) -> tuple[str, ...]:
        alarms = []
        if rows >= self.max_rows or size >= self.max_bytes:
            alarms.append("outbox_full")
        elif rows >= self.max_rows * self.alarm_fill or size >= self.max_bytes * self.alarm_fill:
            alarms.append("outbox_high")
        if rejected:
            alarms.append("outbox_rejected")
        return tuple(alarms)

    def _listing(self, where: str, limit: int) -> list[dict[str, object]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT id, kind, topic, event_id, lane_seq, created_ns, state, attempts,"
                f" reason_code, last_error, length(payload) FROM outbox WHERE {where}"
                " ORDER BY id LIMIT ?",
                (limit,),
            ).fetchall()
        keys = (
            "id",
            "kind",
            "topic",
            "event_id",
            "lane_seq",
            "created_ns",
            "state",
            "attempts",
            "reason_code",
            "last_error",
            "bytes",
        )
        return [dict(zip(keys, r, strict=True)) for r in rows]

    def save_trace(self, crossing_id: str, trace: list[dict[str, object]]) -> None:
        """Keep the story of a finished crossing for `lane diag explain` (not a delivery)."""
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._writing():
                    self._db.execute(
                        "INSERT OR REPLACE INTO crossing_traces (crossing_id, saved_ns, trace)"
                        " VALUES (?, ?, ?)",
                        (crossing_id, time.time_ns(), json.dumps(trace, default=str)),
                    )
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

    def crossing_trace(self, crossing_id: str) -> list[dict[str, object]] | None:
        """Every reading, plate vote and decision behind a crossing, or None if unknown."""
        with self._lock:
            row = self._db.execute(
                "SELECT trace FROM crossing_traces WHERE crossing_id = ?", (crossing_id,)
            ).fetchone()
        return json.loads(row[0]) if row else None

    def crossing_events(self, crossing_id: str) -> list[dict[str, object]]:
        """The events of one crossing still in the local store, in lane_seq order."""
        with self._lock:
            rows = self._db.execute(
                "SELECT payload FROM crossings WHERE crossing_id = ? ORDER BY lane_seq",
                (crossing_id,),
            ).fetchall()
        return [json.loads(r[0]) for r in rows]

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

    def _prune_crossings(self) -> None:
        """Keep the newest ``keep_crossings`` events (and their traces) for tail and explain."""
        self._db.execute(
            "DELETE FROM crossings WHERE lane_seq <= (SELECT max(lane_seq) FROM crossings) - ?",
            (self.keep_crossings,),
        )
        self._db.execute(
            "DELETE FROM crossing_traces WHERE crossing_id NOT IN"
            " (SELECT crossing_id FROM crossings)"
        )


class _Transaction:
    """BEGIN IMMEDIATE ... COMMIT, nesting-safe (an inner block joins the outer one)."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db
        self._outer = False

    def __enter__(self) -> None:
        if not self._db.in_transaction:
            self._db.execute("BEGIN IMMEDIATE")
            self._outer = True

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if not self._outer:
            return
        if exc_type is None:
            try:
                self._db.execute("COMMIT")
            except sqlite3.Error:
                # A COMMIT that fails (a full disk at the WAL append) can leave the transaction
                # open: end it, or the next write would join it and never commit.
                if self._db.in_transaction:
                    with contextlib.suppress(sqlite3.Error):
                        self._db.execute("ROLLBACK")
                raise
        elif self._db.in_transaction:
            # SQLite has already rolled back after some errors (SQLITE_FULL, SQLITE_IOERR);
            # a failing ROLLBACK must not hide the error that caused it.
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
