"""A crossing as the agent knows it while the vehicle is in the lane, before it is an event."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from edge.events import (
    Adr,
    Alarm,
    ContainerRead,
    Coverage,
    CrossingEvent,
    EventType,
    Evidence,
    PlateRead,
    Radiation,
    Thermal,
    Weight,
    Xray,
    agent_version,
    utc_now,
    uuid7,
)


@dataclass(slots=True)
class CrossingRecord:
    """What is known about one vehicle's crossing; one record yields new, update*, end."""

    crossing_id: str
    start: datetime
    end: datetime | None = None
    end_reason: str | None = None
    plates: list[PlateRead] = field(default_factory=list)
    overview: list[Evidence] = field(default_factory=list)  # scene pictures, set at end
    weight: Weight | None = None
    radiation: Radiation | None = None
    thermal: Thermal | None = None
    alarms: list[Alarm] = field(default_factory=list)
    coverage: Coverage = field(default_factory=Coverage)
    vehicle_class: str | None = None
    axle_count: int | None = None
    speed_kmh: float | None = None
    containers: list[ContainerRead] | None = None  # edge.cargo.crossing_cargo
    adr: Adr | None = None
    xray: Xray | None = None  # the X-ray scan matched to it (edge.cargo.xray_link)
    # Every input and decision behind the record, for `lane diag explain`; not on the wire.
    trace: list[dict[str, object]] = field(default_factory=list)
    # position -> key of the frame behind the winning plate read (edge.evidence.FrameCache).
    evidence_keys: dict[str, str] = field(default_factory=dict)

    @classmethod
    def begin(cls, start: datetime | None = None) -> CrossingRecord:
        return cls(crossing_id=str(uuid7()), start=start or utc_now())


@dataclass(frozen=True, slots=True)
class LaneIdentity:
    checkpoint: str
    lane: str
    direction: str
    boot_seq: int


def make_event(
    record: CrossingRecord, event_type: EventType, lane: LaneIdentity, lane_seq: int
) -> CrossingEvent:
    """Freeze a record into one wire event. The event_id is minted here, once."""
    return CrossingEvent(
        type=event_type,
        event_id=str(uuid7()),
        crossing_id=record.crossing_id,
        checkpoint=lane.checkpoint,
        lane=lane.lane,
        direction=lane.direction,
        lane_seq=lane_seq,
        boot_seq=lane.boot_seq,
        start=record.start,
        end=record.end,
        produced=utc_now(),
        end_reason=record.end_reason,
        identified=bool(record.plates),
        coverage=record.coverage,
        plates=list(record.plates),
        overview=list(record.overview),
        weight=record.weight,
        radiation=record.radiation,
        thermal=record.thermal,
        alarms=list(record.alarms),
        vehicle_class=record.vehicle_class,
        axle_count=record.axle_count,
        speed_kmh=record.speed_kmh,
        containers=record.containers,
        adr=record.adr,
        xray=record.xray,
        agent_version=agent_version(),
    )


INTERRUPTED = "interrupted"
INTERRUPTED_NOTE = (
    "interrupted: the agent stopped (crash, kill, power loss) before this crossing ended; "
    "end is the time of its last event"
)


def interrupted_end(last: CrossingEvent, boot_seq: int) -> CrossingEvent:
    """The ``end`` of a crossing a crashed agent never ended, from its newest stored event.

    It carries what was known (plates, weight, coverage ... of that event), ``end_reason:
    interrupted``, a fresh event_id and the new boot's boot_seq; ``lane_seq`` is given at
    commit. ``end`` is the ``produced`` time of that last event: the vehicle was seen until then.
    """
    coverage = last.coverage.model_copy(update={"notes": [*last.coverage.notes, INTERRUPTED_NOTE]})
    return last.model_copy(
        update={
            "type": EventType.END,
            "event_id": str(uuid7()),
            "boot_seq": boot_seq,
            "end": last.end or last.produced,
            "produced": utc_now(),
            "end_reason": INTERRUPTED,
            "coverage": coverage,
            "historical": False,
            "agent_version": agent_version(),
        }
    )
