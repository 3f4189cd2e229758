"""A device's health at the driver boundary: the one word for it, from the driver to the wire.

``Driver.health()`` (drivers.base) computes a :class:`Health`; the agent turns it into device
status, crossing coverage, telemetry and metrics with the same :class:`SensorState`, whose
values are the wire's (``lane.device-status/1`` and the other contract schemas).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any


# No docstring on purpose: it would become the description in the generated contract schemas
# (config/schemas), which name this enum and its values.
class SensorState(StrEnum):
    UP = "UP"
    DEGRADED = "DEGRADED"
    DOWN = "DOWN"


@dataclass(frozen=True, slots=True)
class Health:
    state: SensorState
    connected: bool
    last_error: str | None
    faults: dict[str, int]
    last_reading_age_s: float | None
    readings: int
    reconnects: int

    def as_dict(self) -> dict[str, Any]:
        """For the probe JSON of ``lane diag`` (and the bundle): its state words are lowercase
        (``up``, ``degraded``, ``down``), as they always were there."""
        out = asdict(self)
        out["state"] = self.state.value.lower()
        return out
