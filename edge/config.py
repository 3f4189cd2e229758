"""Lane configuration: typed models, loading with precise errors, secrets, JSON Schema.

One YAML file describes one lane. Unknown keys are errors. Every error names the file, the
line and column in it, and the key path (``mqtt.tls.ca_file``). Secrets are never written
inline: a secret field holds a reference to an environment variable, a file, or a systemd
credential (a file in ``$CREDENTIALS_DIRECTORY``, loaded with ``LoadCredential=``).
"""

from __future__ import annotations

import difflib
import ipaddress
import os
import re
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar, get_args

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from edge.errors import ConfigError, ConfigProblem, SecretError
from edge.yamlload import MAX_BYTES, decode, load_yaml

IDENTIFIER = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"
# systemd/lane@.service's SetCredential= placeholder when a LoadCredential= file is missing.
MISSING_CREDENTIAL = "lane-agent.missing-credential"
DUPLICATE_DEVICE = "duplicate_device_id"


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SecretRef(StrictModel):
    """Where a secret is read from: exactly one of ``env``, ``file`` or ``credential``."""

    env: str | None = Field(None, description="Name of an environment variable.")
    file: Path | None = Field(None, description="Path of a file holding the secret.")
    credential: str | None = Field(
        None, description="Name of a systemd credential (a file in $CREDENTIALS_DIRECTORY)."
    )

    @model_validator(mode="before")
    @classmethod
    def _not_inline(cls, value: Any) -> Any:
        if isinstance(value, str | int | float):
            raise ValueError(
                "secrets are never inline: use {env: NAME}, {file: PATH} or {credential: NAME}"
            )
        return value

    @model_validator(mode="after")
    def _exactly_one(self) -> SecretRef:
        given = [k for k in ("env", "file", "credential") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of env, file, credential")
        return self

    def describe(self) -> str:
        if self.env is not None:
            return f"environment variable {self.env}"
        if self.file is not None:
            return f"file {self.file}"
        return f"credential {self.credential}"

    def path(self) -> Path:
        """The file holding the secret, for a library that reads it by name (a TLS key).

        Only ``file`` and ``credential`` have one; ``read()`` has already checked it."""
        if self.file is not None:
            return self.file
        directory = os.environ.get("CREDENTIALS_DIRECTORY")
        if self.credential is None or not directory:
            raise SecretError(f"{self.describe()} is not a file")
        return Path(directory) / self.credential

    def read(self) -> str:
        """Return the secret's value, or raise SecretError saying what is missing."""
        if self.env is not None:
            value = os.environ.get(self.env)
            if value is None:
                raise SecretError(f"environment variable {self.env} is not set")
            return value
        if self.file is not None:
            path = self.file
        else:
            directory = os.environ.get("CREDENTIALS_DIRECTORY")
            if not directory:
                raise SecretError(
                    f"credential {self.credential}: $CREDENTIALS_DIRECTORY is not set "
                    "(add LoadCredential= to the unit)"
                )
            path = Path(directory) / str(self.credential)
        try:
            value = path.read_text(encoding="utf-8").rstrip("\r\n")
        except FileNotFoundError:
            raise SecretError(f"secret file {path} does not exist") from None
        except OSError as exc:
            raise SecretError(f"secret file {path} cannot be read: {exc.strerror}") from None
        if self.credential is not None and value == MISSING_CREDENTIAL:
            raise SecretError(
                f"credential {self.credential}: the unit's LoadCredential= file for it is "
                f"missing (/etc/lane-agent/credentials/<LANE>/{self.credential})"
            )
        return value


class Direction(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"


class LaneType(StrEnum):
    TRUCK = "truck"
    CAR = "car"
    BUS = "bus"


class TlsConfig(StrictModel):
    ca_file: Path | None = Field(None, description="CA bundle that signed the broker's cert.")
    cert_file: Path | None = Field(None, description="Client certificate (mutual TLS).")
    key_file: Path | None = Field(None, description="Client private key (mutual TLS).")
    key: SecretRef | None = Field(
        None,
        description="Client private key as a secret, instead of key_file: {file: PATH} or "
        "{credential: mqtt-client.key} (the unit's LoadCredential=).",
    )
    key_password: SecretRef | None = None
    insecure_skip_verify: bool = Field(
        False, description="Skip the broker hostname check. Never in production."
    )

    @model_validator(mode="after")
    def _pair(self) -> TlsConfig:
        if self.key_file is not None and self.key is not None:
            raise ValueError("give key_file or key, not both")
        if (self.cert_file is None) != (self.key_file is None and self.key is None):
            raise ValueError("cert_file and key_file (or key) go together")
        if self.cert_file is not None and self.ca_file is None:
            raise ValueError(
                "a client certificate goes with ca_file: mutual TLS trusts only the site CA"
            )
        if self.key is not None and self.key.env is not None:
            raise ValueError(
                "a private key is read from a file: use {file: PATH} or {credential: NAME}"
            )
        return self


class MqttConfig(StrictModel):
    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    protocol: Literal["mqtt5", "mqtt311"] = "mqtt5"
    topic_prefix: str = Field("border", description="First topic level(s), without a slash.")
    client_id: str | None = Field(None, description="Default: lane-<checkpoint>-<lane>.")
    username: str | None = None
    password: SecretRef | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = Field(15, ge=5, le=3600)
    max_inflight: int = Field(20, ge=1, le=1000, description="QoS 1 messages awaiting PUBACK.")
    reconnect_min_s: float = Field(1.0, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)
    session_expiry_s: int = Field(
        3600, ge=0, description="How long the broker keeps commands queued while we are away."
    )
    ack_timeout_s: float = Field(
        30.0, gt=0, description="A publish not acknowledged this long is sent again."
    )
    reply_topics: list[str] = Field(
        default_factory=list,
        description="Topic filters a command's MQTT 5 response topic must match (e.g. "
        "`ops/replies/#`). The lane's own `<prefix>/<checkpoint>/<lane>/cmd/+/reply` is "
        "always allowed; wildcards and `$` topics never are.",
    )
    max_command_bytes: int = Field(
        64 * 1024, ge=256, description="A larger command is refused unread."
    )
    max_neighbour_bytes: int = Field(
        256 * 1024, ge=1024, description="A larger neighbour crossing event is ignored unread."
    )
    max_json_depth: int = Field(
        32, ge=4, le=200, description="Nesting limit of a command's or neighbour event's JSON."
    )
    command_rate_per_s: float = Field(
        5.0, gt=0, description="Commands accepted per second on average; more are dropped."
    )
    command_burst: int = Field(50, ge=1, description="Commands accepted at once after a pause.")
    replay_max_events: int = Field(
        10_000, ge=1, le=10_000, description="Most crossing events one `cmd/replay` may ask for."
    )
    replay_events_per_minute: int = Field(
        30_000,
        ge=1,
        description="Most events all replays together re-send per minute; beyond it a reply "
        "names the range it refused and when to ask again.",
    )

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if (
            not value
            or value.startswith("/")
            or value.endswith("/")
            or "#" in value
            or "+" in value
        ):
            raise ValueError("a topic prefix has no leading/trailing slash and no wildcards")
        return value

    @field_validator("reply_topics")
    @classmethod
    def _reply_filters(cls, value: list[str]) -> list[str]:
        for topic_filter in value:
            levels = topic_filter.split("/")
            if (
                not topic_filter
                or topic_filter.startswith("$")
                or any(("+" in level or "#" in level) and len(level) > 1 for level in levels)
                or "#" in levels[:-1]
            ):
                raise ValueError(f"{topic_filter!r} is not a valid MQTT topic filter")
        return value

    @model_validator(mode="after")
    def _auth(self) -> MqttConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password given without username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s is below reconnect_min_s")
        return self


class StorageConfig(StrictModel):
    state_dir: Path | None = Field(
        None, description="Outbox and lock live here. Default: $STATE_DIRECTORY, else ./state."
    )
    max_rows: int = Field(500_000, ge=100, description="Outbox bound (rows).")
    max_bytes: int = Field(1 << 30, ge=1 << 20, description="Outbox bound (payload bytes).")
    alarm_fill: float = Field(
        0.8, gt=0, lt=1, description="Fill ratio at which the lane reports outbox_high."
    )
    live_window_s: float = Field(
        5.0, gt=0, description="A crossing younger than this is live; older ones are backlog."
    )
    backlog_rate_per_s: float = Field(
        100.0,
        gt=0,
        description="Most backlog messages sent per second while draining. The lanes of a "
        "checkpoint drain at once into one register: keep lanes x rate well below its drain "
        "rate (docs/site.md), or live events queue behind the backlog.",
    )
    keep_crossings: int = Field(
        10_000,
        ge=0,
        description="Crossing events kept locally for `lane events tail` and `cmd/replay`.",
    )
    held_events: int = Field(
        1000,
        ge=1,
        le=100_000,
        description="Crossing events held in memory while the outbox cannot be written (disk "
        "full); one more and the agent exits 4.",
    )
    evidence_max_bytes: int = Field(
        2 << 30, ge=0, description="Evidence JPEGs on disk (<state_dir>/evidence), at most."
    )
    evidence_days: float = Field(30.0, gt=0, description="Evidence older than this is removed.")

    def resolved_state_dir(self) -> Path:
        if self.state_dir is not None:
            return self.state_dir
        env = os.environ.get("STATE_DIRECTORY")
        if env:
            return Path(env.split(":")[0])
        return Path("state")


class RecognitionConfig(StrictModel):
    provider: Literal["cpu", "cuda", "openvino"] = "cpu"
    model_dir: Path | None = Field(None, description="Default: the models shipped with the agent.")
    min_confidence: float = Field(0.5, ge=0, le=1)
    top_n: int = Field(5, ge=1, le=20)
    detector_side: int = Field(
        512,
        ge=160,
        le=2048,
        description="Long side, in pixels, the frame is scaled to for plate detection. 512 finds "
        "plates 40+ px tall in a 1080p frame; larger finds smaller plates and costs more.",
    )
    escalate_side: int = Field(
        960,
        ge=0,
        le=4096,
        description="When the first look finds no plate, the frame is searched once more at "
        "this long side (small or distant plates); 0 turns the second search off.",
    )
    region_cells: bool = Field(
        True,
        description="Read the region code of UZ/KG plates from its own small frame (real UZ "
        "crops 73.4 -> 95.2 % exact). A trained cell classifier decides first whether the "
        "frame shows digits at all, so other countries' plates pay about 2 ms. Off only where "
        "no UZ or KG plate is expected.",
    )
    rereads: bool = Field(
        True,
        description="When a frame's best plate is unsure, read the frame's boxes twice more with "
        "the reader's input 0.9x and 1.1x as wide and let the three reads vote. Frames with a "
        "sure plate never pay for it.",
    )
    workers: int = Field(
        1,
        ge=1,
        le=16,
        description="Frames read at once (plate and cargo reading each take a thread): the "
        "lane controller's core budget for reading. 1 on a 2-core controller keeps a core for "
        "the devices, fusion and the outbox; a read never waits on the event loop.",
    )
    frames_per_vehicle: int = Field(
        6,
        ge=1,
        le=100,
        description="Frames of one vehicle each camera reads at most (docs/recognition.md, "
        "Scheduling): its most promising first, until one read is sure.",
    )
    candidates_per_vehicle: int = Field(
        3,
        ge=1,
        le=16,
        description="Frames of one vehicle each camera keeps waiting while the recogniser is "
        "busy; a better frame takes the place of the least promising one.",
    )
    sure_confidence: float = Field(
        0.9,
        ge=0,
        le=1,
        description="A plate read this confident ends the reading of its vehicle on that camera.",
    )
    max_latency_s: float = Field(
        4.0,
        gt=0,
        le=60,
        description="Most seconds from a frame's capture to the start of its read; a frame that "
        "waited longer is skipped. Keep it within fusion.settle_s + 3 s, the longest a "
        "crossing's end waits for its frames (docs/fusion.md).",
    )


class DeviceConfig(StrictModel):
    """A device on the lane. ``kind`` names its driver in the driver registry."""

    model_config = ConfigDict(extra="allow", frozen=True)

    id: Annotated[str, Field(pattern=IDENTIFIER)]
    kind: str = Field(description="Driver, e.g. weighbridge.toledo, rpm.rapiscan, anpr.stream.")
    role: Literal["front", "rear", "trailer", "overview", "container"] | None = Field(
        None,
        description="Cameras: front, rear or trailer, the plate position its reads fill "
        "(default front; front and rear frames are also searched for orange ADR plates); "
        "overview, a scene camera whose frames are not read for plates (supervised and "
        "listed in coverage like any device); container, a side or top view read for ISO "
        "6346 container codes instead of plates (docs/cargo.md).",
    )
    timeout_ms: int = Field(1000, ge=10, le=120_000)
    enabled: bool = True
    password: SecretRef | None = Field(
        None, description="Device login (camera digest auth); a reference, never inline."
    )
    plate_area: tuple[float, float, float, float] | None = Field(
        None,
        description="Cameras: where plates can appear, as fractions of the frame (x, y, w, h). "
        "Text elsewhere, such as the camera's own date/name overlay, is ignored.",
    )

    @field_validator("plate_area")
    @classmethod
    def _area(cls, value: tuple[float, ...] | None) -> tuple[float, ...] | None:
        if value is not None:
            x, y, w, h = value
            if not (0 <= x < 1 and 0 <= y < 1 and 0 < w <= 1 - x and 0 < h <= 1 - y):
                raise ValueError("x, y, w, h are fractions of the frame, inside it")
        return value

    def driver_options(self) -> dict[str, Any]:
        """The keys the driver validates: the extras, plus the resolved password."""
        options = dict(self.model_extra or {})
        if self.password is not None:
            options["password"] = self.password.read()
        return options


class FusionConfig(StrictModel):
    """How readings become crossings (edge.fusion.settings.FusionSettings)."""

    presence_order: list[Literal["io", "weight", "rpm", "camera"]] | None = Field(
        None, description="Presence sources, best first. Default by lane type."
    )
    presence_inputs: list[str] = Field(
        ["entry_loop", "exit_loop", "light_curtain"], description="Lane I/O inputs = presence."
    )
    presence_kg: float = Field(300.0, ge=0, description="Weight above this means a vehicle.")
    settle_s: float = Field(
        1.5, gt=0, description="Lane clear this long ends the crossing (late results attach)."
    )
    min_presence_s: float = Field(0.6, ge=0, description="Shorter, with no evidence: ignored.")
    thermal_vehicle_c: float = Field(
        5.0,
        gt=0,
        description="A thermal region this much warmer than it shows the empty lane saw a "
        "vehicle (the camera reports every poll, vehicle or not).",
    )
    min_gap_s: float = Field(
        1.0, ge=0, description="No exit loop: a clear lane this long means the next vehicle."
    )
    max_crossing_s: float = Field(600.0, gt=0, description="Longer: ended as a timeout.")
    parked_s: float = Field(60.0, ge=0, description="The last plate seen again: ignored.")
    axle_counter: str = Field(
        "axles", description="Lane I/O counter wired to the axle detector (counters: {...})."
    )
    max_axle_kg: float = Field(
        13_000.0, gt=0, description="More weight per counted axle raises axle_mismatch."
    )
    neighbour_lanes: list[Annotated[str, Field(pattern=IDENTIFIER)]] = Field(
        [],
        description="Lanes of this checkpoint whose crossings are watched (same broker): our "
        "plate read there at the same time raises plate_in_neighbour_lane.",
    )
    neighbour_window_s: float = Field(
        10.0, ge=0, description="How close in time a neighbour's read of our plate counts."
    )
    xray_wait_s: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="Truck lane with an X-ray device: how long past settle_s a truck's end "
        "waits for its scan; a later scan goes out alone on the xray topic (docs/cargo.md).",
    )
    xray_clock_tolerance_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="A scan's own start..finish is widened by this when matched to a crossing.",
    )
    xray_max_offset_s: float = Field(
        600.0, gt=0, le=86400, description="A scanner clock sample further off is refused."
    )
    xray_clock_offset: bool = Field(
        True,
        description="Estimate the scanner's clock offset from its scans' times; false: trust "
        "both clocks as NTP-synchronised (an export always later than the tolerance).",
    )


class ScriptedConfig(StrictModel):
    """Scripted crossings instead of live devices: for demos and delivery tests."""

    vehicles: int = Field(0, ge=0, description="How many crossings to produce (0: none).")
    interval_ms: float = Field(1000.0, ge=0)
    seed: int = 1


class TelemetryConfig(StrictModel):
    interval_s: float = Field(60.0, ge=1)


class MetricsConfig(StrictModel):
    """The Prometheus endpoint. Loopback only unless ``allow_remote`` says otherwise."""

    listen: str = Field(
        "127.0.0.1:9108",
        description="host:port of /metrics; one port per lane on a shared controller.",
    )
    allow_remote: bool = Field(
        False, description="Allow a non-loopback address (put a firewall in front of it)."
    )

    @model_validator(mode="after")
    def _loopback(self) -> MetricsConfig:
        host, _port = self.address()
        try:
            loopback = ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = host == "localhost"
        if not loopback and not self.allow_remote:
            raise ValueError(
                f"listen address {host} is not loopback; set allow_remote: true to expose it"
            )
        return self

    def address(self) -> tuple[str, int]:
        host, sep, port = self.listen.rpartition(":")
        host = host.removeprefix("[").removesuffix("]")
        if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError(f"listen {self.listen!r} is not host:port (e.g. 127.0.0.1:9108)")
        return host, int(port)


class LaneConfig(StrictModel):
    checkpoint: Annotated[str, Field(pattern=IDENTIFIER, description="Checkpoint id.")]
    lane: Annotated[str, Field(pattern=IDENTIFIER, description="Lane id within the checkpoint.")]
    direction: Direction
    lane_type: LaneType = LaneType.TRUCK
    devices: list[DeviceConfig] = Field(default_factory=list)
    mqtt: MqttConfig = Field(default_factory=MqttConfig)
    storage: StorageConfig = Field(default_factory=StorageConfig)
    recognition: RecognitionConfig = Field(default_factory=RecognitionConfig)
    telemetry: TelemetryConfig = Field(default_factory=TelemetryConfig)
    fusion: FusionConfig = Field(default_factory=FusionConfig)
    metrics: MetricsConfig | None = Field(None, description="Prometheus endpoint; off if absent.")
    scripted: ScriptedConfig | None = None

    _source: str = PrivateAttr(default="<memory>")

    @model_validator(mode="after")
    def _unique_devices(self) -> LaneConfig:
        seen: set[str] = set()
        for device in self.devices:
            if device.id in seen:
                raise PydanticCustomError(
                    DUPLICATE_DEVICE, "device id {id!r} is used twice", {"id": device.id}
                )
            seen.add(device.id)
        if self.lane in self.fusion.neighbour_lanes:
            raise ValueError(f"fusion.neighbour_lanes names this lane itself ({self.lane!r})")
        return self

    @property
    def source(self) -> str:
        return self._source

    @property
    def client_id(self) -> str:
        return self.mqtt.client_id or f"lane-{self.checkpoint}-{self.lane}"

    def secrets(self) -> list[tuple[str, SecretRef]]:
        """Every secret reference with its key path."""
        found: list[tuple[str, SecretRef]] = []
        if self.mqtt.password is not None:
            found.append(("mqtt.password", self.mqtt.password))
        if self.mqtt.tls is not None and self.mqtt.tls.key is not None:
            found.append(("mqtt.tls.key", self.mqtt.tls.key))
        if self.mqtt.tls is not None and self.mqtt.tls.key_password is not None:
            found.append(("mqtt.tls.key_password", self.mqtt.tls.key_password))
        for index, device in enumerate(self.devices):
            if device.password is not None:
                found.append((f"devices.{index}.password", device.password))
        return found


# --- loading -------------------------------------------------------------------------------


class _Locator:
    """Maps key paths to positions in the YAML text."""

    def __init__(self, root: yaml.Node | None) -> None:
        self.root = root

    def find(self, loc: tuple[int | str, ...]) -> tuple[int | None, int | None]:
        node = self.root
        mark = node.start_mark if node is not None else None
        for part in loc:
            if isinstance(node, yaml.MappingNode):
                # The last occurrence: the one the data holds (a duplicate is reported too).
                match = [(k, v) for k, v in node.value if k.value == str(part)]
                if not match:
                    break
                key, node = match[-1]
                mark = key.start_mark
            elif isinstance(node, yaml.SequenceNode) and str(part).isdigit():
                if int(part) >= len(node.value):
                    break
                node = node.value[int(part)]
                mark = node.start_mark
            else:
                break
        if mark is None:
            return None, None
        return mark.line + 1, mark.column + 1


_TAG = re.compile(r"^(function-after|function-before|function-wrap)\[.*\]$")
SecretsMode = Literal["check", "skip"]
# Where secret references may stand (LaneConfig.secrets() lists the same for a valid config).
_SECRET_PLACES: tuple[tuple[str, ...], ...] = (
    ("mqtt", "password"),
    ("mqtt", "tls", "key"),
    ("mqtt", "tls", "key_password"),
)


def _clean_loc(loc: tuple[int | str, ...]) -> tuple[int | str, ...]:
    """Drop pydantic's union and validator tags from an error location."""
    return tuple(p for p in loc if not (isinstance(p, str) and _TAG.match(p)))


def _inner_model(annotation: Any) -> type[BaseModel] | None:
    """The model inside ``X``, ``X | None``, ``list[X]``, ``Annotated[X, ...]``."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _inner_model(arg)
        if found is not None:
            return found
    return None


def _model_at(model: type[BaseModel] | None, loc: tuple[int | str, ...]) -> type[BaseModel] | None:
    for part in loc:
        if model is None:
            return None
        if isinstance(part, int):
            continue  # a list index: the list's item model was taken with the field
        info = model.model_fields.get(part)
        model = _inner_model(info.annotation) if info is not None else None
    return model


def _unknown_key(key: str, known: set[str]) -> str:
    close = difflib.get_close_matches(key, sorted(known), n=1, cutoff=0.6)
    return f"unknown key; did you mean `{close[0]}`?" if close else "unknown key"


def _message(
    error: Any, model: type[BaseModel] | None = None, *, extra: frozenset[str] = frozenset()
) -> str:
    """One pydantic error in the words a technician reads (no pydantic jargon)."""
    kind = error["type"]
    if kind == "extra_forbidden":
        loc = _clean_loc(tuple(error["loc"]))
        parent = _model_at(model, loc[:-1])
        known = set(parent.model_fields) if parent is not None else set()
        return _unknown_key(str(loc[-1]), known | extra) if loc else "unknown key"
    if kind == "missing":
        return "required key is missing"
    message = str(error["msg"])
    return message.removeprefix("Value error, ")


M = TypeVar("M", bound=BaseModel)


def with_overrides(model: M, overrides: dict[str, Any], *, section: str) -> M:
    """``model`` with command-line ``overrides`` applied; a bad value is a ConfigError naming
    ``section.key`` in the words a bad config file gets."""
    try:
        return type(model).model_validate({**model.model_dump(), **overrides})
    except ValidationError as exc:
        problems = [
            ConfigProblem(
                "command line",
                None,
                None,
                ".".join([section, *(str(p) for p in _clean_loc(tuple(error["loc"])))]),
                _message(error, type(model)),
            )
            for error in exc.errors()
        ]
        raise ConfigError(problems) from None


def parse_config(
    text: str, *, source: str = "<string>", secrets: SecretsMode = "check"
) -> LaneConfig:
    """Validate a lane config given as YAML text. Raises ConfigError listing every problem of
    the file in one round: YAML duplicates, structure, each device's own keys and, unless
    ``secrets="skip"``, every secret that does not resolve (``ConfigProblem.secret``)."""
    document = load_yaml(text, source=source)
    data = document.data
    if not isinstance(data, dict):
        raise ConfigError(
            [*document.problems, ConfigProblem(source, 1, 1, "", "a lane config is a YAML mapping")]
        )
    locator = _Locator(document.root)

    def problem(loc: tuple[int | str, ...], message: str, *, secret: bool = False) -> ConfigProblem:
        line, column = locator.find(loc)
        return ConfigProblem(source, line, column, ".".join(map(str, loc)), message, secret)

    problems = [*document.problems, *_duplicate_device_ids(data, problem)]
    config: LaneConfig | None = None
    try:
        config = LaneConfig.model_validate(data)
    except ValidationError as exc:
        for error in exc.errors():
            if error["type"] == DUPLICATE_DEVICE:
                continue  # located at the duplicate by _duplicate_device_ids
            loc = _clean_loc(tuple(error["loc"]))
            problems.append(problem(loc, _message(error, LaneConfig)))
    problems += _device_problems(data, problem)
    if secrets == "check":
        problems += _secret_problems(data, problem)
    if problems or config is None:
        problems.sort(key=lambda p: (p.line or 0, p.column or 0))  # in the file's order
        raise ConfigError(problems)
    config._source = source
    return config


_Problem = Any  # the ``problem(loc, message, *, secret)`` closure of parse_config


def _raw_devices(data: dict[str, Any]) -> list[tuple[int, dict[str, Any]]]:
    devices = data.get("devices")
    if not isinstance(devices, list):
        return []
    return [(i, d) for i, d in enumerate(devices) if isinstance(d, dict)]


def _duplicate_device_ids(data: dict[str, Any], problem: _Problem) -> list[ConfigProblem]:
    """A device id used before, at the duplicate's own ``id`` line."""
    first: dict[str, int] = {}
    found = []
    for index, device in _raw_devices(data):
        device_id = device.get("id")
        if not isinstance(device_id, str):
            continue
        if device_id in first:
            found.append(
                problem(
                    ("devices", index, "id"),
                    f"device id {device_id!r} is used twice (first by devices.{first[device_id]})",
                )
            )
        else:
            first[device_id] = index
    return found


def _device_problems(data: dict[str, Any], problem: _Problem) -> list[ConfigProblem]:
    """Each device's own keys, checked against its driver's options model (also when other
    parts of the file are wrong)."""
    from drivers.errors import DriverConfigError, MissingExtraError
    from drivers.registry import get_spec, validate_options

    problems = []
    for index, raw in _raw_devices(data):
        try:
            device = DeviceConfig.model_validate(raw)
        except ValidationError:
            continue  # its own problems are in LaneConfig's
        try:
            options = dict(device.model_extra or {})
            if device.password is not None:
                options["password"] = "(secret)"  # resolved and checked with the secrets
            validate_options(device.kind, options)
        except (DriverConfigError, MissingExtraError) as exc:
            problems.append(problem(("devices", index, "kind"), str(exc)))
        except ValidationError as exc:
            model = get_spec(device.kind).options_model()
            for error in exc.errors():
                loc = ("devices", index, *_clean_loc(tuple(error["loc"])))
                problems.append(
                    problem(loc, _message(error, model, extra=frozenset(DeviceConfig.model_fields)))
                )
    return problems


def _secret_problems(data: dict[str, Any], problem: _Problem) -> list[ConfigProblem]:
    """Every well-formed secret reference that cannot be read here, at its own line."""
    places: list[tuple[tuple[int | str, ...], Any]] = []
    for place in _SECRET_PLACES:
        value: Any = data
        for part in place:
            value = value.get(part) if isinstance(value, dict) else None
        places.append((place, value))
    for index, device in _raw_devices(data):
        places.append((("devices", index, "password"), device.get("password")))
    problems = []
    for loc, value in places:
        if value is None:
            continue
        try:
            ref = SecretRef.model_validate(value)
        except ValidationError:
            continue  # an inline or malformed reference is a structural problem, reported
        try:
            ref.read()
        except SecretError as exc:
            problems.append(problem(loc, str(exc), secret=True))
    return problems


def load_config(path: str | Path, *, secrets: SecretsMode = "check") -> LaneConfig:
    """Read and validate a lane config file (see parse_config)."""
    path = Path(path)
    try:
        with path.open("rb") as handle:
            data = handle.read(MAX_BYTES + 1)
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(path), None, None, "", f"cannot read: {exc.strerror}")]
        ) from None
    return parse_config(decode(data, source=str(path)), source=str(path), secrets=secrets)


def config_json_schema() -> dict[str, Any]:
    schema = LaneConfig.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = "lane.config/1"
    return schema
