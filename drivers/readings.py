"""Typed readings that drivers emit: one frozen dataclass per kind of measurement.

Every reading carries the device id, the UTC capture time and a monotonic timestamp
(``time.monotonic()``, for ordering and ages that survive wall-clock steps).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class Reading:
    device_id: str
    captured_at: datetime = field(default_factory=utc_now)
    monotonic: float = field(default_factory=time.monotonic)


@dataclass(frozen=True, slots=True, kw_only=True)
class WeightReading(Reading):
    """One indicator frame after the stability filter.

    ``stable`` is True only when the indicator reports no motion *and* the last N frames
    agree within one division; a weight in motion is never stable.
    """

    gross_kg: float
    net_kg: float | None = None
    tare_kg: float | None = None
    stable: bool
    motion: bool
    overload: bool = False
    not_zeroed: bool = False
    division_kg: float


@dataclass(frozen=True, slots=True, kw_only=True)
class RpmCounts(Reading):
    """One RPM count line (GB, GS, NS, ...). ``fault`` is set for GH/GL/NH lines."""

    line_type: str
    counts: tuple[int | None, ...]
    alarm: bool = False
    fault: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class RpmOccupancy(Reading):
    """A finished vehicle occupancy of a radiation portal monitor.

    ``gamma_max_cps`` is the largest 1 s sliding sum of gamma counts over all panels;
    ``sigma`` is (gamma_max - background) / sqrt(background). ``complete`` is False when
    the occupancy was closed by a timeout instead of a GX line.
    """

    occupancy_no: int | None
    start: datetime
    end: datetime
    gamma_max_cps: int
    neutron_max: int
    gamma_background_cps: float | None
    neutron_background: float | None
    sigma: float | None
    gamma_alarm: bool
    neutron_alarm: bool
    samples: int
    complete: bool = True
    speed_kmh: float | None = None
    axles: int | None = None  # axles (wheel marks) counted by the portal, when it counts them


@dataclass(frozen=True, slots=True, kw_only=True)
class RpmStatus(Reading):
    """Tamper and detector state changes of an RPM."""

    tamper: bool
    detail: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class ThermalRegion:
    index: int
    max_c: float | None
    min_c: float | None
    avg_c: float | None
    valid: bool
    alarm: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ThermalRegions(Reading):
    regions: tuple[ThermalRegion, ...]

    @property
    def max_c(self) -> float | None:
        values = [r.max_c for r in self.regions if r.valid and r.max_c is not None]
        return max(values) if values else None


class LoopFault(StrEnum):
    NO_HITS = "no_hits"
    CHATTER = "chatter"
    LOCKED_ON = "locked_on"


@dataclass(frozen=True, slots=True, kw_only=True)
class LaneIoState(Reading):
    """Digital inputs and outputs of the lane I/O module, by configured name."""

    inputs: dict[str, bool]
    outputs: dict[str, bool]
    faults: dict[str, LoopFault] = field(default_factory=dict)
    # Pulse counters by configured name (an axle detector on a DI in counter mode): running
    # totals, wrapping at 2**32.
    counters: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class Frame(Reading):
    """A camera frame (BGR, HxWx3 uint8) with its capture time."""

    image: np.ndarray
    sequence: int
    # The capture thread's 160x90 grey picture of it (drivers.camera.scene), for the motion
    # gate; None from sources that make none (tests, recordings).
    thumbnail: np.ndarray | None = None
    source: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True, kw_only=True)
class ScanFile:
    """One file of an X-ray scan. ``sha256`` is None when it was over the size limit (or the
    scanner's notification did not give it); ``size`` is None when the scanner did not say."""

    name: str  # relative to the scan's folder (or the drop directory)
    size: int | None
    sha256: str | None


@dataclass(frozen=True, slots=True, kw_only=True)
class XrayScan(Reading):
    """A finished, completely written X-ray / NII scan and what its sidecar says.

    ``scanner_plate`` and ``scanner_container`` are the scanner's own fields, as it sent
    them (its operator's entry or its own reader); ``files_omitted`` counts the files over
    the per-scan limit that are not listed.
    """

    scan_id: str
    started: datetime
    finished: datetime
    files: tuple[ScanFile, ...]
    scanner_plate: str | None = None
    scanner_container: str | None = None
    scanner: str | None = None
    source: str = ""  # the sidecar's path relative to the drop directory
    files_omitted: int = 0
