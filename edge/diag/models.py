"""The ``--json`` outputs of `lane diag`: one pydantic model per subcommand.

``config/schemas/diag-*.schema.json`` are generated from these (``write_schemas``); a test
keeps them in step. The parts the agent's control socket also sends (``DeviceReport``,
``BrokerReport``, ``OverlayRegionReport``) are its wire models, ``edge.control.messages``.
Fields are added, never renamed: scripts on lane controllers read them.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from edge.control.messages import BrokerReport, DeviceReport, DeviceState, OverlayRegionReport


class Report(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> str:
        return self.model_dump_json()


class AgentReport(Report):
    running: bool
    pid: int | None
    source: Literal["control socket", "direct probe"] = Field(
        description="Where the figures come from: the running agent, or diag itself."
    )
    uptime_s: float | None
    boot_seq: int | None
    healthy: bool | None = Field(description="Every stage makes progress (watchdog).")
    stalled: list[str] = Field(default_factory=list)
    crossings_total: int | None = None


class OutboxReport(Report):
    path: str
    pending: int
    pending_crossings: int
    rejected: int
    oldest_pending_age_s: float | None
    bytes: int
    max_bytes: int
    max_rows: int
    boot_seq: int
    last_lane_seq: int
    alarms: list[str]


class DiskReport(Report):
    path: str
    total_bytes: int
    free_bytes: int
    used_fraction: float


class StatusOutput(Report):
    checkpoint: str
    lane: str
    agent: AgentReport
    broker: BrokerReport | None
    outbox: OutboxReport | None
    devices: list[DeviceReport]
    disk: DiskReport | None
    problems: list[str] = Field(description="Plain-words problems; empty when all is well.")


class RawFrame(Report):
    hex: str
    ascii: str


class ProbeOutput(Report):
    device: DeviceReport
    source: Literal["control socket", "direct probe"]
    options: dict[str, Any] = Field(description="Driver options, secrets shown as ***.")
    identity: dict[str, Any] = Field(description="What the device says it is (setup lines...).")
    values: list[str] = Field(description="The last few readings, summarised.")
    first_reading_s: float | None = Field(
        description="Direct probe: seconds from opening the device to its first reading."
    )
    reading_interval_ms: float | None = Field(
        description="Median time between readings seen during the probe."
    )
    round_trip_ms: float | None = Field(
        None,
        description="Direct probe of a request/response device (Modbus): median time of one "
        "poll. None for streaming devices and through the agent.",
    )
    raw_frames: list[RawFrame]


class WatchSample(Report):
    device: str
    state: DeviceState
    at: str = Field(description="UTC time of the sample.")
    summary: str
    fields: dict[str, Any] = Field(description="Key figures of the reading, by name.")


class OutboxRow(Report):
    id: int
    kind: str
    topic: str
    event_id: str | None
    lane_seq: int | None
    created_ns: int
    state: str
    attempts: int
    reason_code: int | None
    last_error: str | None
    bytes: int


class OutboxListOutput(Report):
    state: Literal["pending", "rejected"]
    rows: list[OutboxRow]


class OutboxActionOutput(Report):
    action: Literal["requeue", "export"]
    rows: int
    path: str | None = None


class TlsReport(Report):
    version: str | None
    cipher: str | None
    peer_subject: str | None
    peer_issuer: str | None
    peer_not_after: str | None


class MqttCheckOutput(Report):
    host: str
    port: int
    protocol: str
    username: str | None
    client_id: str
    connected: bool
    tls: TlsReport | None
    test_topic: str
    subscribe_ok: bool | None
    publish_ok: bool | None
    received: bool | None
    round_trip_ms: float | None
    command_subscribe_ok: bool | None = Field(
        description="The lane may subscribe to its command topics."
    )
    problems: list[str]


class ActionOutput(Report):
    device: str
    action: str
    done: bool
    via: Literal["control socket", "direct"]
    detail: str | None = None


class PlateBox(Report):
    text: str
    confidence: float
    country: str | None
    box: tuple[int, int, int, int]


class SnapshotOutput(Report):
    camera: str
    out: str
    width: int
    height: int
    recognition_ms: float
    plates: list[PlateBox]


class CameraOverlayReport(Report):
    camera: str
    frames_read: int = Field(description="Frames the agent read since it started.")
    reads_ignored: int = Field(description="Reads ignored as overlay or lines of text.")
    regions: list[OverlayRegionReport]
    plate_area: tuple[float, float, float, float] | None = Field(
        description="The configured mask, applied on top of the learned overlay."
    )


class OverlayOutput(Report):
    cameras: list[CameraOverlayReport]


class BundleOutput(Report):
    out: str
    bytes: int
    files: list[str]
    redacted: list[str] = Field(description="Config keys whose values were removed.")


class ExplainOutput(Report):
    crossing_id: str
    source: Literal["trace", "events"] = Field(
        description="trace: the correlator's full story; events: only the published events."
    )
    events: list[dict[str, Any]]
    trace: list[dict[str, Any]]
    summary: list[str]


class ErrorOutput(Report):
    error: str
    exit_code: int


SCHEMAS: dict[str, type[Report]] = {
    "status": StatusOutput,
    "probe": ProbeOutput,
    "watch": WatchSample,
    "outbox-list": OutboxListOutput,
    "outbox-action": OutboxActionOutput,
    "outbox-stats": OutboxReport,
    "mqtt-check": MqttCheckOutput,
    "action": ActionOutput,
    "snapshot": SnapshotOutput,
    "overlay": OverlayOutput,
    "bundle": BundleOutput,
    "explain": ExplainOutput,
    "error": ErrorOutput,
}


def schema_text(model: type[Report]) -> str:
    schema = model.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(directory: Path, *, check: bool = False) -> list[Path]:
    """Write ``diag-<name>.schema.json`` files; returns those that changed (or differ)."""
    changed = []
    for name, model in SCHEMAS.items():
        path = directory / f"diag-{name}.schema.json"
        text = schema_text(model)
        if not path.exists() or path.read_text() != text:
            changed.append(path)
            if not check:
                path.write_text(text)
    return changed


if __name__ == "__main__":  # python -m edge.diag.models: regenerate config/schemas/diag-*
    for written in write_schemas(Path(__file__).resolve().parents[2] / "config" / "schemas"):
        print(f"wrote {written}")
