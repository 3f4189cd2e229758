"""The state directory: the outbox's bounds, the local crossing history, evidence on disk."""

from __future__ import annotations

import os
from pathlib import Path

from pydantic import Field

from edge.config.base import StrictModel


class StorageConfig(StrictModel):
    state_dir: Path | None = Field(
        None, description="Outbox and lock live here. Default: $STATE_DIRECTORY, else ./state."
    )
    max_rows: int = Field(500_000, ge=100, description="Outbox bound (rows).")
    max_bytes: int = Field(1 << 30, ge=1 << 20, description="Outbox bound (payload bytes).")
    alarm_fill: float = Field(
        0.8, gt=0, lt=1, description="Fill ratio at which the lane reports outbox_high."
    )
    live_window_s: float = Field(
        5.0, gt=0, description="A crossing younger than this is live; older ones are backlog."
    )
    backlog_rate_per_s: float = Field(
        100.0,
        gt=0,
        description="Most backlog messages sent per second while draining. The lanes of a "
        "checkpoint drain at once into one register: keep lanes x rate well below its drain "
        "rate (docs/site.md), or live events queue behind the backlog.",
    )
    keep_crossings: int = Field(
        10_000,
        ge=0,
        description="Crossing events kept locally for `lane events tail` and `cmd/replay`.",
    )
    held_events: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Crossing events held in memory while the outbox cannot be written (disk "
        "full); one more and the agent exits 4.",
    )
    evidence_max_bytes: int = Field(
        2 << 30, ge=0, description="Evidence JPEGs on disk (<state_dir>/evidence), at most."
    )
    evidence_days: float = Field(30.0, gt=0, description="Evidence older than this is removed.")

    def resolved_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return Path(env.split(":")[0])
        return Path("state")
