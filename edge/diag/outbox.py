"""`lane diag outbox`: list, requeue and export rows of the lane's outbox file."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from edge.config import LaneConfig
from edge.diag.models import OutboxActionOutput, OutboxListOutput, OutboxRow
from edge.errors import OutboxError
from edge.outbox import Outbox
from edge.outbox_read import OutboxReader


def _existing(config: LaneConfig) -> Path:
    path = config.storage.resolved_state_dir() / "outbox.db"
    if not path.exists():
        raise OutboxError(f"no outbox at {path}: the agent has not run with this config yet")
    return path


def read_existing(config: LaneConfig) -> OutboxReader:
    """The lane's outbox file, read-only: safe while the agent runs."""
    return OutboxReader(_existing(config))


def open_existing(config: LaneConfig, *, read_only: bool = True) -> Outbox:
    s = config.storage
    path = _existing(config)
    return Outbox(
        path,
        max_rows=s.max_rows,
        max_bytes=s.max_bytes,
        alarm_fill=s.alarm_fill,
        keep_crossings=s.keep_crossings,
        read_only=read_only,
    )


def listing(config: LaneConfig, *, rejected: bool, limit: int) -> OutboxListOutput:
    with read_existing(config) as reader:
        rows = reader.rejected(limit) if rejected else reader.pending(limit)
    return OutboxListOutput(
        state="rejected" if rejected else "pending",
        rows=[OutboxRow(**row) for row in rows],
    )


def requeue(config: LaneConfig) -> OutboxActionOutput:
    """Rejected rows back to pending; safe while the agent runs (SQLite WAL, one row update)."""
    outbox = open_existing(config, read_only=False)
    try:
        count = outbox.requeue_rejected()
    finally:
        outbox.close()
    return OutboxActionOutput(action="requeue", rows=count)


def export(config: LaneConfig, out: Path, *, state: str | None) -> OutboxActionOutput:
    reader = read_existing(config)
    count = 0
    try:
        handle = sys.stdout if str(out) == "-" else out.open("w", encoding="utf-8")
        try:
            for row in reader.export_rows(state):
                handle.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
                count += 1
        finally:
            if handle is not sys.stdout:
                handle.close()
    except OSError as exc:
        raise OutboxError(f"cannot write {out}: {exc.strerror or exc}") from None
    finally:
        reader.close()
    return OutboxActionOutput(action="export", rows=count, path=str(out))
