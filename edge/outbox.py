"""The durable outbox: every message the lane publishes is committed here first.

A crossing is on disk before it is published (``synchronous=FULL``; the tables and
connections are in :mod:`edge.outbox_db`). A row leaves the outbox only after the broker's
PUBACK with a success reason code; a row the broker rejects (reason code >= 0x80) is kept,
marked ``rejected`` and counted. Which rows go out next is :mod:`edge.outbox_send`; what the
tools list, export and explain is :mod:`edge.outbox_read`.

Capacity (``storage.max_rows`` / ``storage.max_bytes``): telemetry is evicted first; crossings
are never dropped. Past ``alarm_fill`` of the bound the lane raises ``outbox_high``; at the
bound with nothing left to evict it raises ``outbox_full`` and still stores every crossing.

Threads: every write runs on the agent's one writer thread (:attr:`Outbox.write_thread`,
``edge.writer.WriteThread``): a write from any other thread raises. Writes and the figures
(``stats``, ``alarms``) share the write connection and its lock; the send queue and the
reader each read through a connection of their own.

A write that fails at run time (disk full, I/O error, locked past ``busy_timeout_s``) raises
:class:`edge.errors.StorageError` and leaves the store and its counters as they were; the
agent holds crossings in memory and retries (``edge.writer``, docs/delivery.md).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

from edge import outbox_crossings as crossings
from edge.errors import OutboxError, StorageError
from edge.events import CrossingEvent
from edge.outbox_crossings import Replay
from edge.outbox_db import Transaction, open_reader, open_writer, opening, storage_error
from edge.outbox_read import OutboxReader
from edge.outbox_send import OutboxRow, SendQueue
from edge.outbox_stats import Bounds, FillLog, OutboxStats
from edge.topics import PRIORITY_EVIDENCE, PRIORITY_TELEMETRY

KINDS_REPLACED_BY_TOPIC = ("status",)


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
        # The agent's outbox-writer thread (edge.writer.WriteThread): once set, a write from
        # any other thread is a bug and raises instead of waiting on an fsync there.
        self.write_thread: threading.Thread | None = None
        self._telemetry_evicted = 0
        self._expired_at = 0
        self._read_only = read_only
        self._fill_log = FillLog()
        with opening(self.path):
            if read_only:
                self._db = open_reader(self.path, busy_timeout_s=busy_timeout_s, read_only=True)
            else:
                self._db = open_writer(self.path, busy_timeout_s=busy_timeout_s)
            self._rows, self._bytes = self._db.execute(
                "SELECT count(*), coalesce(sum(length(payload)), 0) FROM outbox"
            ).fetchone()
        # The publisher's reads (the send queue) and the tools' (the reader) have connections
        # of their own: WAL lets them read while a write waits for its fsync.
        try:
            self._queue = SendQueue(self.path, busy_timeout_s=busy_timeout_s, read_only=read_only)
            self.reader = OutboxReader(
                self.path, busy_timeout_s=busy_timeout_s, read_only=read_only
            )
        except BaseException:
            self._db.close()
            raise

    # --- lifecycle ----------------------------------------------------------------------

    def start_boot(self) -> int:
        """Count one more agent start and return the new boot_seq."""
        with self._lock, self._writing():
            boot = self._meta("boot_seq") + 1
            self._set_meta("boot_seq", boot)
        return boot

    def close(self) -> None:
        self._queue.close()
        self.reader.close()
        with self._lock:
            with contextlib.suppress(sqlite3.Error):
                self._db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
            self._db.close()

    # --- writing ------------------------------------------------------------------------

    def add_crossings(
        self, makers: Iterable[Callable[[int], CrossingEvent]], topic: str
    ) -> list[CrossingEvent]:
        """Give each maker the next lane_seq and commit all events durably in one transaction."""
        with self._lock, self._writing():
            last = self._meta("last_lane_seq")
            events, size = crossings.insert(self._db, makers, topic, after_seq=last)
            self._rows += len(events)
            self._bytes += size
            self._set_meta("last_lane_seq", last + len(events))
            self._make_room()
            if crossings.prune_due(last + len(events), len(events)):
                crossings.prune(self._db, self.keep_crossings)
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
        crossings.check_range(first_seq, last_seq)
        backlog_ns = time.time_ns() - self.live_window_ns - 1  # sent as backlog, not live
        with self._lock, self._writing():
            replay, size = crossings.requeue(
                self._db, first_seq, last_seq, topic, backlog_ns=backlog_ns
            )
            self._rows += replay.queued
            self._bytes += size
            self._make_room()
        return replay

    def save_trace(self, crossing_id: str, trace: list[dict[str, object]]) -> None:
        """Keep the story of a finished crossing for `lane diag explain` (not a delivery)."""
        with self._lock:
            self._db.execute("PRAGMA synchronous=NORMAL")
            try:
                with self._writing():
                    crossings.save_trace(self._db, crossing_id, trace)
            finally:
                self._db.execute("PRAGMA synchronous=FULL")

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
        return self._queue.next_batch(
            limit=limit,
            exclude=exclude,
            backlog_budget=backlog_budget,
            live_window_ns=self.live_window_ns,
        )

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
            pending, pending_crossings, rejected, oldest = self._db.execute(
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
            pending_crossings=pending_crossings or 0,
            rejected=rejected or 0,
            bytes=size,
            oldest_pending_age_s=age,
            boot_seq=boot,
            last_lane_seq=last,
            max_rows=self.max_rows,
            max_bytes=self.max_bytes,
            telemetry_evicted=self._telemetry_evicted,
            alarms=self._bounds.alarms(rows, size, rejected or 0),
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
            return self._bounds.alarms(self._rows, self._bytes, rejected)

    # --- internals ----------------------------------------------------------------------

    def _tx(self) -> Transaction:
        return Transaction(self._db)

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

    def _meta(self, key: str) -> int:
        row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return int(row[0]) if row else 0

    def _set_meta(self, key: str, value: int) -> None:
        self._db.execute(
            "INSERT INTO meta (key, value) VALUES (?, ?)"
            " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
            (key, value),
        )

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
        self._fill_log.note(self._bounds, self._rows, self._bytes)

    @property
    def _bounds(self) -> Bounds:  # a SIGHUP may change them (the agent sets them)
        return Bounds(self.max_rows, self.max_bytes, self.alarm_fill)
