"""One MQTT message in, one typed item out: no I/O, never raises on input.

The register follows each configured lane's topics; a message is one of a crossing event, a
lane status, a device status, an evidence file or a replay reply, or it is ``Rejected`` with
a reason (stored in the quarantine table). Unknown fields in an event are kept, never an error
(the contract's compatibility rule: fields are only ever added within a schema version).
Crossings of ``lane.crossing/1`` and ``/2`` (= /1 plus the optional cargo keys ``containers``,
``adr``, ``xray``; docs/cargo.md) are both read: an agent upgraded with events still in its
outbox sends /1 events after /2 ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from edge.events import CROSSING_SCHEMAS, DEVICE_STATUS_SCHEMA, LANE_STATUS_SCHEMA

SAFE_NAME = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
SHA256_HEX = r"^[0-9a-f]{64}$"


class _Lenient(BaseModel):
    """Reads the fields the register needs, keeps quiet about the rest."""

    model_config = ConfigDict(extra="ignore", frozen=True, strict=True, populate_by_name=True)


class EvidenceRef(_Lenient):
    kind: str | None = None
    file: Annotated[str, Field(pattern=SAFE_NAME)]
    sha256: Annotated[str, Field(pattern=SHA256_HEX)]


class PlateSummary(_Lenient):
    text: Annotated[str, Field(max_length=32)]
    evidence: list[EvidenceRef] = Field(default_factory=list, max_length=64)


class WeightSummary(_Lenient):
    gross_kg: float


class AlarmSummary(_Lenient):
    code: Annotated[str, Field(max_length=128)]


class CrossingHeader(_Lenient):
    schema_: Literal["lane.crossing/1", "lane.crossing/2"] = Field(alias="schema")
    type: Literal["new", "update", "end"]
    event_id: Annotated[str, Field(pattern=SAFE_NAME)]
    crossing_id: Annotated[str, Field(pattern=SAFE_NAME)]
    checkpoint: str
    lane: str
    direction: str | None = None
    lane_seq: int = Field(ge=1, le=2**62)
    boot_seq: int = Field(ge=1, le=2**62)
    start: datetime
    end: datetime | None = None
    produced: datetime
    end_reason: Annotated[str, Field(max_length=64)] | None = None
    identified: bool
    historical: bool = False
    plates: list[PlateSummary] = Field(default_factory=list, max_length=16)
    weight: WeightSummary | None = None
    alarms: list[AlarmSummary] = Field(default_factory=list, max_length=64)
    overview: list[EvidenceRef] = Field(default_factory=list, max_length=16)


class LaneStatusHeader(_Lenient):
    schema_: Literal["lane.status/1"] = Field(alias="schema")
    state: Annotated[str, Field(max_length=32)]
    checkpoint: str
    lane: str
    boot_seq: int | None = Field(None, ge=1, le=2**62)
    alarms: list[Annotated[str, Field(max_length=64)]] = Field(default_factory=list, max_length=64)
    produced: datetime


class DeviceStatusHeader(_Lenient):
    schema_: Literal["lane.device-status/1"] = Field(alias="schema")
    device: Annotated[str, Field(max_length=64)]
    kind: Annotated[str, Field(max_length=64)] | None = None
    state: Annotated[str, Field(max_length=32)]
    since: datetime | None = None
    last_error: Annotated[str, Field(max_length=2000)] | None = None
    produced: datetime


class ReplyHeader(_Lenient):
    command: str
    ok: bool
    result: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None


@dataclass(frozen=True, slots=True)
class LaneAddress:
    checkpoint: str
    lane: str


@dataclass(frozen=True, slots=True)
class CrossingItem:
    lane: LaneAddress
    header: CrossingHeader
    payload: bytes  # the event as the lane sent it (UTF-8 JSON, checked): what is stored

    @property
    def plates(self) -> list[str]:
        return [normalise_plate(p.text) for p in self.header.plates]

    @property
    def evidence(self) -> list[EvidenceRef]:
        """Every evidence file the event names: each plate's, and the overview pictures."""
        return [ref for p in self.header.plates for ref in p.evidence] + list(self.header.overview)


@dataclass(frozen=True, slots=True)
class LaneStatusItem:
    lane: LaneAddress
    header: LaneStatusHeader
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class DeviceStatusItem:
    lane: LaneAddress
    device: str
    header: DeviceStatusHeader
    body: dict[str, Any]


@dataclass(frozen=True, slots=True)
class EvidenceItem:
    lane: LaneAddress
    crossing_id: str
    file: str
    data: bytes
    sha256: str


@dataclass(frozen=True, slots=True)
class ReplyItem:
    lane: LaneAddress
    correlation: bytes
    header: ReplyHeader


@dataclass(frozen=True, slots=True)
class Ignored:
    """Not for this register (another client's command reply): acknowledged, not stored."""

    topic: str
    lane: LaneAddress


@dataclass(frozen=True, slots=True)
class Rejected:
    topic: str
    lane: LaneAddress | None
    reason_code: str  # oversized, not_json, invalid, wrong_schema, topic_mismatch, unknown_topic
    reason: str
    payload: bytes
    event_id: str | None = None
    sha256: str = field(default="")


Item = (
    CrossingItem | LaneStatusItem | DeviceStatusItem | EvidenceItem | ReplyItem | Ignored | Rejected
)


def normalise_plate(text: str) -> str:
    """Plate text as the register indexes and searches it: capitals, no spaces or dashes."""
    return "".join(ch for ch in text.upper() if ch not in " -_.")


def _no_constant(name: str) -> Any:
    """NaN and Infinity are not JSON (RFC 8259 §6); Python's parser would take them."""
    raise ValueError(f"{name} is not a JSON number")


# One decoder for every message: json.loads with an option builds a new one per call, a
# fifth of a crossing's classification.
_DECODER = json.JSONDecoder(parse_constant=_no_constant)


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors()[:5]:
        where = ".".join(str(p) for p in error["loc"]) or "(event)"
        parts.append(f"{where}: {error['msg']}")
    more = len(exc.errors()) - 5
    return "; ".join(parts) + (f" (+{more} more)" if more > 0 else "")


class Intake:
    """Classifies the messages of the lanes one register follows."""

    def __init__(
        self,
        prefix: str,
        lanes: list[tuple[str, str]],
        *,
        client_id: str,
        max_event_bytes: int,
        max_evidence_bytes: int,
    ) -> None:
        self.prefix = prefix
        self.client_id = client_id
        self.lanes = {(c, lane): LaneAddress(c, lane) for c, lane in lanes}
        self.max_event_bytes = max_event_bytes
        self.max_evidence_bytes = max_evidence_bytes

    def base(self, lane: LaneAddress) -> str:
        return f"{self.prefix}/{lane.checkpoint}/{lane.lane}"

    def reply_topic(self, lane: LaneAddress) -> str:
        """Where a lane answers this register's cmd/replay (MQTT 5 Response Topic): the lane's
        own reply topic, the only one the site ACL lets it publish replies on. Other clients'
        replies arrive there too; the correlation data tells this register's apart."""
        return f"{self.base(lane)}/cmd/replay/reply"

    @property
    def correlation_prefix(self) -> bytes:
        return f"{self.client_id}:".encode()

    def subscriptions(self) -> list[str]:
        topics = []
        for lane in self.lanes.values():
            base = self.base(lane)
            topics += [
                f"{base}/crossing",
                f"{base}/status",
                f"{base}/device/+/status",
                f"{base}/evidence/+/+",
                self.reply_topic(lane),
            ]
        return topics

    def classify(self, topic: str, payload: bytes, correlation: bytes | None = None) -> Item:
        prefix_parts = self.prefix.split("/")
        parts = topic.split("/")
        rest = parts[len(prefix_parts) :]
        if parts[: len(prefix_parts)] != prefix_parts or len(rest) < 3:
            return self._reject(topic, None, "unknown_topic", "not a lane topic", payload)
        lane = self.lanes.get((rest[0], rest[1]))
        if lane is None:
            return self._reject(topic, None, "unknown_topic", "a lane not followed", payload)
        leaf = rest[2:]
        if leaf == ["crossing"]:
            return self._crossing(topic, lane, payload)
        if leaf == ["status"]:
            return self._lane_status(topic, lane, payload)
        if len(leaf) == 3 and leaf[0] == "device" and leaf[2] == "status":
            return self._device_status(topic, lane, leaf[1], payload)
        if len(leaf) == 3 and leaf[0] == "evidence":
            return self._evidence(topic, lane, leaf[1], leaf[2], payload)
        if topic == self.reply_topic(lane):
            return self._reply(topic, lane, payload, correlation)
        return self._reject(topic, lane, "unknown_topic", "not a topic of the contract", payload)

    def _reject(
        self,
        topic: str,
        lane: LaneAddress | None,
        code: str,
        reason: str,
        payload: bytes,
        event_id: str | None = None,
    ) -> Rejected:
        return Rejected(
            topic, lane, code, reason, payload, event_id, hashlib.sha256(payload).hexdigest()
        )

    def _oversized(self, topic: str, lane: LaneAddress, payload: bytes) -> Rejected:
        return self._reject(
            topic,
            lane,
            "oversized",
            f"{len(payload)} bytes, more than limits.max_event_bytes {self.max_event_bytes}",
            payload,
        )

    def _json(self, topic: str, lane: LaneAddress, payload: bytes) -> dict[str, Any] | Rejected:
        if len(payload) > self.max_event_bytes:
            return self._oversized(topic, lane, payload)
        try:
            # UTF-8 only (RFC 8259 §8.1): json.loads would also guess UTF-16 and -32.
            body = _DECODER.decode(payload.decode("utf-8"))
        except (ValueError, RecursionError) as exc:
            return self._reject(topic, lane, "not_json", f"not JSON: {exc}"[:300], payload)
        if not isinstance(body, dict):
            return self._reject(topic, lane, "invalid", "not a JSON object", payload)
        return body

    def _crossing(self, topic: str, lane: LaneAddress, payload: bytes) -> Item:
        # The header's own JSON parser reads the event once; a message it refuses is
        # decoded again, only to say why. It is as strict as the standard decoder (UTF-8,
        # nesting, trailing bytes, lone surrogates) except for NaN and Infinity, which only
        # the standard decoder refuses.
        if len(payload) > self.max_event_bytes:
            return self._oversized(topic, lane, payload)
        try:
            header = CrossingHeader.model_validate_json(payload)
        except ValidationError as exc:
            return self._refused_crossing(topic, lane, payload, exc)
        if (b"NaN" in payload or b"Infinity" in payload) and isinstance(
            body := self._json(topic, lane, payload), Rejected
        ):
            return body
        if (header.checkpoint, header.lane) != (lane.checkpoint, lane.lane):
            return self._reject(
                topic,
                lane,
                "topic_mismatch",
                f"the event names {header.checkpoint}/{header.lane}",
                payload,
                header.event_id,
            )
        return CrossingItem(lane, header, payload)

    def _refused_crossing(
        self, topic: str, lane: LaneAddress, payload: bytes, exc: ValidationError
    ) -> Rejected:
        body = self._json(topic, lane, payload)
        if isinstance(body, Rejected):
            return body
        event_id = body.get("event_id") if isinstance(body.get("event_id"), str) else None
        if body.get("schema") not in CROSSING_SCHEMAS:
            return self._reject(
                topic,
                lane,
                "wrong_schema",
                f"schema {str(body.get('schema'))[:40]!r}, this register reads "
                + " and ".join(CROSSING_SCHEMAS),
                payload,
                event_id,
            )
        return self._reject(topic, lane, "invalid", _describe(exc), payload, event_id)

    def _lane_status(self, topic: str, lane: LaneAddress, payload: bytes) -> Item:
        body = self._json(topic, lane, payload)
        if isinstance(body, Rejected):
            return body
        if body.get("schema") != LANE_STATUS_SCHEMA:
            return self._reject(topic, lane, "wrong_schema", "not lane.status/1", payload)
        try:
            header = LaneStatusHeader.model_validate_json(payload)
        except ValidationError as exc:
            return self._reject(topic, lane, "invalid", _describe(exc), payload)
        if (header.checkpoint, header.lane) != (lane.checkpoint, lane.lane):
            return self._reject(
                topic,
                lane,
                "topic_mismatch",
                f"the status names {header.checkpoint}/{header.lane}",
                payload,
            )
        return LaneStatusItem(lane, header, body)

    def _device_status(self, topic: str, lane: LaneAddress, device: str, payload: bytes) -> Item:
        body = self._json(topic, lane, payload)
        if isinstance(body, Rejected):
            return body
        if body.get("schema") != DEVICE_STATUS_SCHEMA:
            return self._reject(topic, lane, "wrong_schema", "not lane.device-status/1", payload)
        try:
            header = DeviceStatusHeader.model_validate_json(payload)
        except ValidationError as exc:
            return self._reject(topic, lane, "invalid", _describe(exc), payload)
        if header.device != device:
            return self._reject(
                topic, lane, "topic_mismatch", f"the status names device {header.device}", payload
            )
        return DeviceStatusItem(lane, device, header, body)

    def _evidence(
        self, topic: str, lane: LaneAddress, crossing_id: str, file: str, payload: bytes
    ) -> Item:
        if not (re.match(SAFE_NAME, crossing_id) and re.match(SAFE_NAME, file)):
            return self._reject(topic, lane, "invalid", "unsafe crossing id or file name", payload)
        if len(payload) > self.max_evidence_bytes:
            return self._reject(
                topic,
                lane,
                "oversized",
                f"{len(payload)} bytes, more than evidence.max_file_bytes "
                f"{self.max_evidence_bytes}",
                payload,
            )
        return EvidenceItem(lane, crossing_id, file, payload, hashlib.sha256(payload).hexdigest())

    def _reply(
        self, topic: str, lane: LaneAddress, payload: bytes, correlation: bytes | None
    ) -> Item:
        if not correlation or not correlation.startswith(self.correlation_prefix):
            return Ignored(topic, lane)
        body = self._json(topic, lane, payload)
        if isinstance(body, Rejected):
            return body
        try:
            header = ReplyHeader.model_validate_json(payload)
        except ValidationError as exc:
            return self._reject(topic, lane, "invalid", _describe(exc), payload)
        return ReplyItem(lane, correlation, header)


def not_kept_spans(result: dict[str, Any], first: int, last: int) -> list[tuple[int, int]]:
    """The reply's ``not_kept`` ranges, clipped to the request; malformed entries ignored."""
    spans: list[tuple[int, int]] = []
    raw = result.get("not_kept")
    if not isinstance(raw, list):
        return spans
    for entry in raw[:10_000]:
        if (
            isinstance(entry, list)
            and len(entry) == 2
            and all(isinstance(v, int) and not isinstance(v, bool) for v in entry)
        ):
            low, high = max(entry[0], first), min(entry[1], last)
            if low <= high:
                spans.append((low, high))
    return spans


def spans(values: list[int]) -> list[tuple[int, int]]:
    """Sorted integers as inclusive runs: 1, 2, 3, 7 -> (1, 3), (7, 7)."""
    out: list[tuple[int, int]] = []
    for value in sorted(values):
        if out and value == out[-1][1] + 1:
            out[-1] = (out[-1][0], value)
        else:
            out.append((value, value))
    return out
