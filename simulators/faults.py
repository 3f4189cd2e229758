"""Fault injection shared by the simulators: what is active now, and for how long."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

FAULTS = {
    "disconnect",  # drop the connection (TCP) now
    "garbage",  # random bytes between frames
    "bad_checksum",  # the next N frames carry a wrong checksum
    "truncated",  # the next N frames are cut short
    "stall",  # connected but silent for duration_s
    "freeze",  # repeat the last frame/value for duration_s
    "unstable",  # weight wobbles without the motion flag for duration_s
    "no_reply",  # ignore the next N commands
    "missing_gx",  # an RPM occupancy ends without its GX line
    "detector",  # detector fault (RPM GH/GL/NH lines, thermal invalid regions)
    "clock_skew",  # the device's clock is off by offset_s
    "exception",  # Modbus exception replies for duration_s
    "chatter",  # a loop input toggles rapidly for duration_s
    "unauthorized",  # a camera answers 401 to everything for duration_s
    "content_type",  # a camera sends the next N snapshots with a wrong Content-Type
    "slow",  # a camera delays every JPEG by delay_s for duration_s
    "locked_on",  # a loop input stays on for duration_s
    "bomb",  # a camera serves a 631-byte JPEG declaring 16000x16000 px for duration_s
}


@dataclass
class FaultState:
    """Counts and deadlines of injected faults (monotonic clock)."""

    counts: dict[str, int] = field(default_factory=dict)
    until: dict[str, float] = field(default_factory=dict)
    params: dict[str, dict[str, float | str]] = field(default_factory=dict)
    injected: list[str] = field(default_factory=list)

    def inject(
        self, kind: str, *, count: int = 1, duration_s: float = 0.0, **params: float | str
    ) -> None:
        if kind not in FAULTS:
            raise ValueError(f"unknown fault {kind!r}; known: {', '.join(sorted(FAULTS))}")
        self.injected.append(kind)
        self.params[kind] = dict(params)
        if duration_s > 0:
            self.until[kind] = time.monotonic() + duration_s
        else:
            self.counts[kind] = self.counts.get(kind, 0) + count

    def active(self, kind: str) -> bool:
        return time.monotonic() < self.until.get(kind, 0.0)

    def take(self, kind: str) -> bool:
        """Consume one occurrence of a counted fault."""
        n = self.counts.get(kind, 0)
        if n <= 0:
            return False
        self.counts[kind] = n - 1
        return True

    def param(self, kind: str, name: str, default: float) -> float:
        return float(self.params.get(kind, {}).get(name, default))
