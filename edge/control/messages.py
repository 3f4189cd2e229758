"""The control socket's wire: one JSON request line, one JSON reply line (pydantic models).

``<state_dir>/control.sock``, a unix socket with mode 0600: only the agent's user (and root)
can ask. Shared by the agent's server (``edge.control.server``) and the client `lane diag`
uses (``edge.diag.control``)::

    {"op": "status"}                        -> StatusResult: lane, broker, outbox, devices
    {"op": "probe", "device": "scale"}      -> the driver's Probe (``Probe.as_dict``)
    {"op": "overlay"}                       -> each camera's CameraOverlay, or null
    {"op": "action", "device": "scale", "action": "zero"}    -> ActionResult
                                               (zero | tare | open | close)

Replies are ``{"ok": true, "result": ...}`` (:class:`OkReply`) or
``{"ok": false, "error": "...", "kind": K}`` (:class:`ErrorReply`) with K one of
``not_found``, ``unsupported``, ``device``, ``bad_request``. Fields are added, never renamed.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter

from drivers.health import Health

SOCKET_NAME = "control.sock"
REQUEST_LIMIT = 64 * 1024  # bytes of one request line

ErrorKind = Literal["not_found", "unsupported", "device", "bad_request"]
DeviceState = Literal["UP", "DEGRADED", "DOWN"]


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


class Message(BaseModel):
    model_config = ConfigDict(extra="forbid")

    def to_json(self) -> str:
        return self.model_dump_json()


# --- requests -------------------------------------------------------------------------------


class Request(BaseModel):
    model_config = ConfigDict(extra="ignore")  # an older agent ignores what it does not know


class StatusRequest(Request):
    op: Literal["status"] = "status"


class ProbeRequest(Request):
    op: Literal["probe"] = "probe"
    device: str


class OverlayRequest(Request):
    op: Literal["overlay"] = "overlay"


class ActionRequest(Request):
    op: Literal["action"] = "action"
    device: str
    action: str


ControlRequest = Annotated[
    StatusRequest | ProbeRequest | OverlayRequest | ActionRequest, Field(discriminator="op")
]
REQUEST: TypeAdapter[ControlRequest] = TypeAdapter(ControlRequest)
OPS = ("status", "probe", "overlay", "action")


# --- replies --------------------------------------------------------------------------------


class OkReply(Message):
    ok: Literal[True] = True
    result: Any


class ErrorReply(Message):
    ok: Literal[False] = False
    error: str
    kind: ErrorKind


ControlReply = Annotated[OkReply | ErrorReply, Field(discriminator="ok")]
REPLY: TypeAdapter[ControlReply] = TypeAdapter(ControlReply)


# --- results --------------------------------------------------------------------------------


class DeviceReport(Message):
    id: str
    kind: str
    state: DeviceState
    connected: bool
    last_reading_age_s: float | None = Field(description="Seconds since the last reading.")
    readings: int = Field(description="Readings since the driver was opened.")
    faults: dict[str, int] = Field(description="Fault counters by kind (timeout, protocol...).")
    reconnects: int
    last_error: str | None

    @classmethod
    def from_health(cls, device_id: str, kind: str, health: Health) -> DeviceReport:
        return cls(
            id=device_id,
            kind=kind,
            state=health.state.value,
            connected=health.connected,
            last_reading_age_s=health.last_reading_age_s,
            readings=health.readings,
            faults=dict(health.faults),
            reconnects=health.reconnects,
            last_error=health.last_error,
        )


class BrokerReport(Message):
    host: str
    port: int
    connected: bool
    last_error: str | None


class StorageState(Message):
    """The crossing writer's storage alarm and what it holds in memory (docs/delivery.md)."""

    alarm: str | None
    error: str | None
    held_events: int
    held_crossings: int
    held_limit: int


class StatusResult(Message):
    pid: int
    uptime_s: float
    boot_seq: int
    healthy: bool
    stalled: list[str]
    crossings_total: int
    broker: BrokerReport
    outbox: dict[str, Any] = Field(description="The outbox's path and its OutboxStats.")
    storage: StorageState
    devices: list[DeviceReport]


class OverlayRegionReport(Message):
    box: tuple[float, float, float, float] = Field(
        description="x, y, width, height as fractions of the frame."
    )
    sightings: int
    why: str = Field(description="The evidence it was learned on.")
    texts: list[str] = Field(description="The last texts read there (a clock ticks).")


class CameraOverlay(Message):
    frames_read: int
    reads_ignored: int
    regions: list[OverlayRegionReport]


class ActionResult(Message):
    detail: str
