"""The fusion's vocabulary: what goes in besides driver readings (the lane's devices, plate
observations, neighbouring lanes' sightings), what comes out (an :class:`Emission`), and what
it knows about one vehicle while its crossing is open (:class:`OpenCrossing`)."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime

from drivers.readings import RpmOccupancy, ThermalRegions, WeightReading, XrayScan
from edge.cargo.crossing_cargo import CargoVotes
from edge.crossing import CrossingRecord
from edge.events import Candidate, EventType, PlateLayout, PlatePosition, SensorState

TRACE_LIMIT = 500

_STATE_RANK = {SensorState.UP: 0, SensorState.DEGRADED: 1, SensorState.DOWN: 2}


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    kind: str  # registry kind, e.g. "rpm.rapiscan"; its class is the part before the dot
    role: str | None = None

    @property
    def device_class(self) -> str:
        return self.kind.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class PlateObservation:
    """One plate read in one frame, as the recogniser hands it over."""

    camera: str
    position: PlatePosition
    text: str
    confidence: float
    raw: str | None = None
    country: str | None = None
    type: str | None = None
    rows: int = 1
    candidates: tuple[Candidate, ...] = ()
    captured_at: datetime | None = None
    frame_key: str | None = None  # where the agent keeps the frame, for evidence
    # The recogniser's country and layout decision (edge.recognize.origin), carried as is.
    country_confidence: float | None = None
    layout: PlateLayout | None = None
    layout_confidence: float | None = None
    row_texts: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class NeighbourSighting:
    """Plates a neighbouring lane read on one crossing, from its published events."""

    lane: str
    crossing_id: str
    plates: frozenset[str]
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Emission:
    type: EventType
    record: CrossingRecord


@dataclass(slots=True)
class OpenCrossing:
    """One vehicle from its presence to its ``end``: the evidence gathered so far."""

    record: CrossingRecord
    started: float
    clear_since: float | None = None
    plates: dict[PlatePosition, list[PlateObservation]] = field(
        default_factory=lambda: defaultdict(list)
    )
    weights: list[WeightReading] = field(default_factory=list)
    occupancy: RpmOccupancy | None = None
    thermal: list[ThermalRegions] = field(default_factory=list)
    thermal_saw: bool = False  # a region warmer than the empty lane (or in alarm)
    saw: set[str] = field(default_factory=set)
    worst: dict[str, tuple[SensorState, str | None]] = field(default_factory=dict)
    entry_seen: bool = False
    exit_seen: bool = False
    announced: set[str] = field(default_factory=set)
    confirmed: bool = False
    leaving_reason: str = "exit"
    exit_faulty: bool = False
    axle_base: int | None = None  # the axle counter when this vehicle arrived
    counted_axles: int | None = None  # by the lane I/O axle counter
    rpm_axles: int | None = None  # by the RPM (Aspect object mark)
    front_since: float | None = None  # when its first front plate was read
    # Strong front reads unlike its own, held until a second like them confirms a tailgater.
    rivals: list[tuple[float, PlateObservation]] = field(default_factory=list)
    xray: tuple[XrayScan, float | None] | None = None  # its scan and the clock offset used
    cargo: CargoVotes = field(default_factory=CargoVotes)  # container codes, orange plates
    frames_read: dict[str, int] = field(default_factory=dict)  # camera -> frames read

    def note(self, now: float, what: str, **detail: object) -> None:
        """One line of the crossing's story (bounded: a stuck lane must not grow it forever)."""
        if len(self.record.trace) < TRACE_LIMIT:
            self.record.trace.append({"t": round(now - self.started, 3), "what": what, **detail})

    def note_health(self, device: str, state: SensorState, reason: str | None) -> None:
        """Keep the worst state ``device`` was in during this crossing (for its coverage)."""
        worst = self.worst.get(device)
        if worst is None or _STATE_RANK[state] > _STATE_RANK[worst[0]]:
            self.worst[device] = (state, reason)

    def proof(self) -> bool:
        """Something besides presence saw this vehicle."""
        return bool(self.plates or self.weights or self.occupancy or self.thermal_saw)

    def axle_count(self) -> int | None:
        return self.counted_axles or self.rpm_axles
