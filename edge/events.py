"""The versioned wire contract: what the lane publishes, as typed models.

The JSON Schema files in ``config/schemas/`` and the AsyncAPI document in ``docs/`` are
generated from these models (``lane contract export``); a test fails when they drift.

Compatibility rule: within one schema version fields are only ever added, never renamed,
retyped or removed. The published JSON Schemas say ``additionalProperties: false``, so a
consumer that validates strictly refuses a key it does not know: a new key is a new version.
``lane.crossing/2`` is ``lane.crossing/1`` plus the optional cargo keys ``containers``,
``adr`` and ``xray`` (docs/cargo.md) and, in each plate read, the optional country and layout
keys ``PLATE_V2_KEYS`` (docs/recognition.md); an event without them differs from a ``/1``
event only in its ``schema`` string, and a consumer accepts both (``CROSSING_SCHEMAS``).
"""

from __future__ import annotations

import functools
import json
import os
import time
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

from drivers.health import SensorState  # the one health enum: the driver boundary's, on the wire

CROSSING_SCHEMA: Final = "lane.crossing/2"
# Every crossing schema a consumer may meet (an outbox filled by an older agent drains /1).
CROSSING_SCHEMAS: Final = ("lane.crossing/1", "lane.crossing/2")
# The keys /2 added to /1; a /1 schema is the /2 schema without them (edge.contract).
CROSSING_V2_KEYS: Final = ("containers", "adr", "xray")
# And the keys /2 added to a plate read (country and layout, issue 23), likewise optional.
PLATE_V2_KEYS: Final = ("country_confidence", "layout", "layout_confidence", "row_texts")
XRAY_SCAN_SCHEMA: Final = "lane.xray-scan/1"
DEVICE_STATUS_SCHEMA: Final = "lane.device-status/1"
LANE_STATUS_SCHEMA: Final = "lane.status/1"
TELEMETRY_SCHEMA: Final = "lane.telemetry/1"
COMMAND_REPLY_SCHEMA: Final = "lane.command-reply/1"


@functools.cache
def agent_version() -> str:
    """The installed package's version (read once: the metadata lookup parses a file)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("lane-agent")
    except PackageNotFoundError:
        return "0+unknown"


def uuid7() -> uuid.UUID:
    """A UUIDv7 (RFC 9562): 48-bit Unix milliseconds, then random bits. Sorts by time."""
    ms = time.time_ns() // 1_000_000
    rand = int.from_bytes(os.urandom(10), "big")
    value = (ms & ((1 << 48) - 1)) << 80
    value |= 0x7 << 76
    value |= ((rand >> 62) & 0xFFF) << 64
    value |= 0b10 << 62
    value |= rand & ((1 << 62) - 1)
    return uuid.UUID(int=value)


def utc_now() -> datetime:
    return datetime.now(UTC)


UtcTime = Annotated[
    datetime,
    PlainSerializer(
        lambda t: t.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z"),
        return_type=str,
        when_used="json",
    ),
    Field(description="UTC, ISO 8601 with milliseconds and a Z suffix."),
]


class WireModel(BaseModel):
    model_config = ConfigDict(
        extra="forbid", frozen=True, use_enum_values=True, populate_by_name=True
    )

    def to_json(self) -> bytes:
        return self.model_dump_json(exclude_none=True, by_alias=True).encode()


class EventType(StrEnum):
    NEW = "new"
    UPDATE = "update"
    END = "end"


class PlatePosition(StrEnum):
    FRONT = "front"
    REAR = "rear"
    TRAILER = "trailer"


PlateLayout = Literal["one-row", "two-row", "trailer", "transit", "diplomatic"]


class Candidate(WireModel):
    text: str
    confidence: float = Field(ge=0, le=1)


class PlateRead(WireModel):
    text: str = Field(
        description="Normalised plate text: Latin capitals and digits (Cyrillic look-alikes "
        "mapped), plus the province character of a Chinese plate."
    )
    raw: str | None = Field(None, description="Text as recognised, before grammar correction.")
    country: str | None = Field(None, description="ISO 3166-1 alpha-2, e.g. KZ, RU, CN.")
    type: str | None = Field(None, description="Plate type, e.g. standard, trailer, diplomatic.")
    rows: int = Field(1, ge=1, le=2)
    confidence: float = Field(ge=0, le=1)
    candidates: list[Candidate] = Field(default_factory=list, description="Top-N alternatives.")
    camera: str = Field(description="Device id of the camera that read it.")
    position: PlatePosition
    evidence: list[Evidence] = Field(default_factory=list)
    country_confidence: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Since /2. How sure the reader is of `country`: its share of the evidence "
        "among the countries whose formats the read fits (docs/recognition.md). `country` is "
        "then KZ, RU, UZ, KG, TM, CN, UA, BY, an EU member's code where its format is known, "
        "EU for a layout several members share, BR, or unknown (no country's format fits).",
    )
    layout: PlateLayout | None = Field(
        None,
        description="Since /2. The plate's layout: its rows as read, or the type of the format "
        "it fits where that type is a layout of its own (trailer, transit, diplomatic).",
    )
    layout_confidence: float | None = Field(
        None, ge=0, le=1, description="Since /2. The layout's share of the evidence."
    )
    row_texts: list[str] | None = Field(
        None,
        description="Since /2. The text per printed row, top first: two entries for a "
        "two-row plate (e.g. ['175', 'YJD09']), one for a one-row plate.",
    )


class Evidence(WireModel):
    kind: Literal["frame", "plate_crop", "overview"]
    file: str
    sha256: str


class AxleWeight(WireModel):
    axle: int = Field(ge=1)
    kg: float


class Weight(WireModel):
    gross_kg: float
    stable: bool = Field(description="True when taken from consecutive stable frames.")
    axles: list[AxleWeight] = Field(default_factory=list)
    axle_count: int | None = None
    device: str
    division_kg: float | None = None


class Radiation(WireModel):
    device: str
    occupancy_start: UtcTime | None = None
    occupancy_end: UtcTime | None = None
    gamma_max_cps: float | None = None
    gamma_background_cps: float | None = None
    neutron_max_cps: float | None = None
    neutron_background_cps: float | None = None
    sigma: float | None = None
    gamma_alarm: bool = False
    neutron_alarm: bool = False


class ThermalRegion(WireModel):
    region: str
    max_c: float
    min_c: float | None = None
    avg_c: float | None = None
    alarm: bool = False


class Thermal(WireModel):
    device: str
    regions: list[ThermalRegion] = Field(default_factory=list)


class Alarm(WireModel):
    code: str = Field(description="Stable machine code, e.g. radiation.gamma, thermal.hot_brakes.")
    severity: Literal["info", "warning", "critical"]
    message: str
    device: str | None = None


class SensorCoverage(WireModel):
    device: str
    kind: str
    state: SensorState
    saw_vehicle: bool
    reason: str | None = Field(None, description="Why not UP, e.g. 'RPM offline'.")
    frames_read: int | None = Field(
        None,
        ge=0,
        description="Plate cameras: frames of this vehicle the recogniser read (0: it passed "
        "unread). Absent for other devices.",
    )


class Coverage(WireModel):
    sensors: list[SensorCoverage] = Field(default_factory=list)
    notes: list[str] = Field(
        default_factory=list, description="Plain words, e.g. 'not radiation-screened: RPM offline'."
    )


class ContainerRead(WireModel):
    """One container's identification as the lane read it (ISO 6346)."""

    code: str = Field(description="Owner code + category + serial + check digit, 11 characters.")
    size_type: str | None = Field(None, description="ISO 6346 size and type code, e.g. 45G1.")
    position: Literal["front", "rear", "whole"] = Field(
        description="front / rear: one of two 20 ft boxes on the trailer; whole: one box."
    )
    confidence: float = Field(ge=0, le=1)
    check_digit_ok: bool
    verification: Literal["read_only", "check_digit", "check_digit_and_owner"] = Field(
        description="read_only: nothing vouches for the read (a wrong check digit never rises "
        "above it); check_digit: the check digit agrees; check_digit_and_owner: and the owner "
        "prefix is in the lane's owner list."
    )
    camera: str | None = None
    evidence: list[Evidence] = Field(default_factory=list)


class Adr(WireModel):
    """The orange ADR plates of the transport unit (ADR 5.3.2)."""

    present: bool
    kemler: str | None = Field(None, description="Hazard identification number, e.g. 33.")
    un: str | None = Field(None, description="UN number, 4 digits, e.g. 1203.")
    description: str | None = None
    consistent: bool | None = Field(
        None, description="Whether the hazard number's first digit fits the UN entry's class."
    )


class ScanFileRef(WireModel):
    name: str
    size: int | None = None
    sha256: str | None = None


class Xray(WireModel):
    """The X-ray / NII scan of the vehicle, as the scanner described it."""

    device: str
    scan_id: str
    started: UtcTime = Field(description="The scanner's own start time (its clock).")
    finished: UtcTime = Field(description="The scanner's own finish time (its clock).")
    clock_offset_s: float | None = Field(
        None,
        description="The scanner's clock minus the agent's, as estimated when matching "
        "(docs/cargo.md); scanner time minus this is agent time.",
    )
    files: list[ScanFileRef] = Field(default_factory=list)
    scanner_plate: str | None = None
    scanner_container: str | None = None


class CrossingEvent(WireModel):
    """One message of a crossing's life: new -> update* -> end."""

    schema_: Literal["lane.crossing/2"] = Field(CROSSING_SCHEMA, alias="schema")
    type: EventType
    event_id: str = Field(description="UUIDv7, fixed when the event is made; dedupe on it.")
    crossing_id: str = Field(description="Same for every event of one vehicle's crossing.")
    checkpoint: str
    lane: str
    direction: Literal["entry", "exit"]
    lane_seq: int = Field(ge=1, description="Strictly increasing per lane, across restarts.")
    boot_seq: int = Field(ge=1, description="Agent start counter; tells a restart from a loss.")
    start: UtcTime
    end: UtcTime | None = None
    produced: UtcTime
    end_reason: str | None = Field(
        None,
        description="Why the crossing ended (on `end`): exit, timeout, reversed, tailgating, "
        "shutdown (the agent stopped), interrupted (ended on the next start: the agent stopped "
        "without ending it, e.g. killed or power lost).",
    )
    identified: bool = Field(description="False when no plate was read (unidentified crossing).")
    coverage: Coverage = Field(default_factory=Coverage)
    plates: list[PlateRead] = Field(default_factory=list)
    overview: list[Evidence] = Field(
        default_factory=list,
        description="At end: one picture per overview (scene) camera of the vehicle as its "
        "crossing was announced; the bytes go out on the evidence topic.",
    )
    weight: Weight | None = None
    radiation: Radiation | None = None
    thermal: Thermal | None = None
    alarms: list[Alarm] = Field(default_factory=list)
    vehicle_class: str | None = Field(
        None, description="light_vehicle (<= 3.5 t), heavy_vehicle or articulated; null if unknown."
    )
    axle_count: int | None = Field(
        None, description="Axles counted by the lane's axle detector or the RPM; null if none."
    )
    speed_kmh: float | None = None
    historical: bool = Field(False, description="Sent after an outage, not live.")
    agent_version: str
    containers: list[ContainerRead] | None = Field(
        None,
        description="Since /2. Container codes read on the vehicle: up to two 20 ft boxes "
        "(front, rear) or one (whole); absent when none was read.",
    )
    adr: Adr | None = Field(None, description="Since /2. Orange plates; absent when none seen.")
    xray: Xray | None = Field(
        None,
        description="Since /2. The X-ray scan matched to this crossing by time; a scan that "
        "arrives after the end goes out on the xray topic instead (lane.xray-scan/1).",
    )


def parse_crossing(data: bytes | str) -> CrossingEvent:
    """A stored or received crossing event of any version in ``CROSSING_SCHEMAS``.

    A /1 event is a /2 event without the cargo keys, so it is read as /2; anything else
    raises ``ValueError`` (pydantic's ``ValidationError`` is one).
    """
    raw = json.loads(data)
    if not isinstance(raw, dict) or raw.get("schema") not in CROSSING_SCHEMAS:
        raise ValueError(f"not a crossing event of {', '.join(CROSSING_SCHEMAS)}")
    raw["schema"] = CROSSING_SCHEMA
    return CrossingEvent.model_validate(raw)


class XrayScanEvent(WireModel):
    """An X-ray scan published on its own: it came after its crossing's end, or matched none."""

    schema_: Literal["lane.xray-scan/1"] = Field(XRAY_SCAN_SCHEMA, alias="schema")
    event_id: str = Field(description="UUIDv7; dedupe on it.")
    checkpoint: str
    lane: str
    crossing_id: str | None = Field(
        None,
        description="The crossing the scan was matched to (its end already sent); absent "
        "when it matched no crossing.",
    )
    reason: Literal["late", "unmatched", "second_scan"] = Field(
        description="late: after its crossing's end; unmatched: no crossing's time fits; "
        "second_scan: the crossing already carries a scan."
    )
    xray: Xray
    alarms: list[Alarm] = Field(
        default_factory=list, description="cargo.xray_mismatch against the linked crossing."
    )
    boot_seq: int = Field(ge=1)
    produced: UtcTime
    agent_version: str


class DeviceStatus(WireModel):
    schema_: Literal["lane.device-status/1"] = Field(DEVICE_STATUS_SCHEMA, alias="schema")
    device: str
    kind: str
    state: SensorState
    since: UtcTime
    last_reading_age_s: float | None = None
    last_error: str | None = None
    faults: dict[str, int] = Field(default_factory=dict)
    produced: UtcTime


class LaneState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"
    STOPPED = "stopped"


class LaneStatus(WireModel):
    schema_: Literal["lane.status/1"] = Field(LANE_STATUS_SCHEMA, alias="schema")
    state: LaneState
    checkpoint: str
    lane: str
    boot_seq: int | None = None
    agent_version: str
    devices: dict[str, SensorState] = Field(default_factory=dict)
    alarms: list[str] = Field(
        default_factory=list,
        description="Lane-level alarms: outbox_high, outbox_full, outbox_rejected, storage.full "
        "(the state dir's disk is full), storage.error (the outbox cannot be written).",
    )
    produced: UtcTime


class Telemetry(WireModel):
    schema_: Literal["lane.telemetry/1"] = Field(TELEMETRY_SCHEMA, alias="schema")
    produced: UtcTime
    uptime_s: float
    boot_seq: int
    outbox_pending: int
    outbox_rejected: int
    outbox_oldest_age_s: float | None = None
    crossings_total: int
    mqtt_connected: bool
    outbox_pending_crossings: int | None = None
    outbox_bytes: int | None = None
    mqtt_published: int | None = None
    mqtt_connection_losses: int | None = None
    watchdog_healthy: bool | None = None
    devices: dict[str, SensorState] = Field(default_factory=dict)


class CommandReply(WireModel):
    schema_: Literal["lane.command-reply/1"] = Field(COMMAND_REPLY_SCHEMA, alias="schema")
    command: str
    ok: bool
    result: dict[str, object] = Field(default_factory=dict)
    error: str | None = None
    produced: UtcTime


PlateRead.model_rebuild()

WIRE_MODELS: dict[str, type[WireModel]] = {
    "crossing": CrossingEvent,
    "xray-scan": XrayScanEvent,
    "lane-status": LaneStatus,
    "device-status": DeviceStatus,
    "telemetry": Telemetry,
    "command-reply": CommandReply,
}
