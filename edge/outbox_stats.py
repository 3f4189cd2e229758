"""The outbox's figures: what it holds, how full it is against its bounds, its alarms.

Bounds: ``storage.max_rows`` / ``storage.max_bytes``. Past ``alarm_fill`` of either the lane
raises ``outbox_high``; at the bound ``outbox_full`` (crossings are still stored: only
telemetry and evidence rows are evicted); a row the broker refused raises
``outbox_rejected``. Entering high or full is logged once, not on every write.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Literal

log = logging.getLogger("edge.outbox")  # the store's own lines, under its name as before

Fill = Literal["ok", "high", "full"]


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
class Bounds:
    max_rows: int
    max_bytes: int
    alarm_fill: float

    def fill(self, rows: int, size: int) -> Fill:
        if rows >= self.max_rows or size >= self.max_bytes:
            return "full"
        if rows >= self.max_rows * self.alarm_fill or size >= self.max_bytes * self.alarm_fill:
            return "high"
        return "ok"

    def alarms(self, rows: int, size: int, rejected: int) -> tuple[str, ...]:
        fill = self.fill(rows, size)
        alarms = [] if fill == "ok" else [f"outbox_{fill}"]
        if rejected:
            alarms.append("outbox_rejected")
        return tuple(alarms)


class FillLog:
    """One log line each time the outbox becomes high or full (again)."""

    def __init__(self) -> None:
        self._last: Fill = "ok"

    def note(self, bounds: Bounds, rows: int, size: int) -> None:
        fill = bounds.fill(rows, size)
        if fill == "full" and self._last != "full":
            log.error(
                "outbox FULL (%d rows, %d bytes; bound %d rows, %d bytes): crossings are still "
                "stored, nothing is dropped, but the broker has not taken messages for a long "
                "time: check the broker connection",
                rows,
                size,
                bounds.max_rows,
                bounds.max_bytes,
            )
        elif fill == "high" and self._last == "ok":
            log.warning(
                "outbox above %d%% of its bound (%d rows): the broker is not keeping up",
                int(bounds.alarm_fill * 100),
                rows,
            )
        self._last = fill
