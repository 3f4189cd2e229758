"""The outbox's SQLite file: its tables, its connections, one write transaction, and what a
failed write means.

The one place the schema is written down. SQLite in WAL mode with ``synchronous=FULL``: a
committed crossing is on disk before it is published, and readers (the publisher, the tools)
read while a write waits for its fsync. ``edge.outbox`` writes through :func:`open_writer`;
``edge.outbox.Outbox`` and ``edge.outbox_read.OutboxReader`` read through
:func:`open_reader`.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections.abc import Iterator
from pathlib import Path

from edge.errors import OutboxError, StorageError

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


@contextlib.contextmanager
def opening(path: Path) -> Iterator[None]:
    """Opening the file: a storage fault is a StorageError (exit 4), anything else an
    OutboxError naming the file."""
    try:
        yield
    except sqlite3.OperationalError as exc:
        raise storage_error(path, exc, doing="open") from None
    except sqlite3.Error as exc:
        raise OutboxError(f"outbox {path}: {exc}") from exc


def open_writer(path: Path, *, busy_timeout_s: float) -> sqlite3.Connection:
    """The write connection: creates the file and its tables, WAL, every commit fsync'd.

    Autocommit (``isolation_level=None``): :class:`Transaction` opens each write explicitly.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=FULL")
    db.executescript(SCHEMA)
    db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    return db


def open_reader(path: Path, *, busy_timeout_s: float, read_only: bool) -> sqlite3.Connection:
    """A connection for reads beside the writer (WAL: a read never waits on an fsync).

    ``read_only`` opens the file as it is (``mode=ro``, for tools that look while the agent
    may be running); it must exist. Shared between threads: its user holds a lock per query.
    """
    if read_only:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False)
    else:
        db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
    db.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
    return db


class Transaction:
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
