"""The `lane ingest` config: one YAML file per register; unknown keys are errors."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

from pydantic import Field, PrivateAttr, ValidationError, field_validator, model_validator

from edge.config import (
    IDENTIFIER,
    SecretRef,
    StrictModel,
    TlsConfig,
    _clean_loc,
    _Locator,
    _message,
)
from edge.errors import ConfigError, ConfigProblem, SecretError
from edge.yamlload import decode, load_yaml

Identifier = Annotated[str, Field(pattern=IDENTIFIER)]


class BrokerConfig(StrictModel):
    """The site broker the lanes publish to."""

    host: str = "127.0.0.1"
    port: int = Field(1883, ge=1, le=65535)
    client_id: Identifier = Field(
        "lane-ingest", description="Names the persistent session: one per register."
    )
    username: str | None = None
    password: SecretRef | None = None
    tls: TlsConfig | None = None
    keepalive_s: int = Field(15, ge=5, le=3600)
    session_expiry_s: int = Field(
        7 * 86400,
        ge=60,
        description="How long the broker queues the lanes' events while the register is away.",
    )
    receive_maximum: int = Field(
        1000,
        ge=1,
        le=65535,
        description="QoS 1 messages the broker sends before the register acknowledges one "
        "(MQTT 5 Receive Maximum): bounds the register's memory. Keep it a few times "
        "limits.batch, so the next batch is in hand while one commits.",
    )
    reconnect_min_s: float = Field(0.5, gt=0)
    reconnect_max_s: float = Field(30.0, gt=0)

    @model_validator(mode="after")
    def _checks(self) -> BrokerConfig:
        if self.password is not None and self.username is None:
            raise ValueError("password given without username")
        if self.reconnect_max_s < self.reconnect_min_s:
            raise ValueError("reconnect_max_s is below reconnect_min_s")
        return self


class CheckpointConfig(StrictModel):
    id: Identifier
    lanes: list[Identifier] = Field(min_length=1, description="Lane ids to follow.")

    @field_validator("lanes")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("a lane is listed twice")
        return value


class DatabaseConfig(StrictModel):
    dsn: str = Field(
        description="libpq connection string without the password, e.g. "
        "'host=127.0.0.1 port=5432 dbname=register user=ingest'."
    )
    password: SecretRef | None = None
    connect_timeout_s: int = Field(5, ge=1, le=600)
    reconnect_min_s: float = Field(0.2, gt=0)
    reconnect_max_s: float = Field(10.0, gt=0)

    @field_validator("dsn")
    @classmethod
    def _no_inline_password(cls, value: str) -> str:
        from psycopg.conninfo import conninfo_to_dict

        try:
            params = conninfo_to_dict(value)
        except Exception as exc:  # psycopg.ProgrammingError: the text is not a conninfo
            raise ValueError(f"not a libpq connection string: {exc}") from None
        if "password" in params or "@" in value.split("://", 1)[-1].split("/", 1)[0]:
            raise ValueError("secrets are never inline: give database.password as {env: NAME}")
        return value


class EvidenceConfig(StrictModel):
    dir: Path = Field(description="Content-addressed store: <dir>/<sha256[:2]>/<sha256>.")
    max_file_bytes: int = Field(16 << 20, ge=1024, description="Larger evidence is quarantined.")


class LimitsConfig(StrictModel):
    max_event_bytes: int = Field(
        256 * 1024, ge=1024, description="A larger crossing or status message is quarantined."
    )
    quarantine_keep_bytes: int = Field(
        64 * 1024, ge=0, description="How much of a quarantined message is kept."
    )
    batch: int = Field(200, ge=1, le=10_000, description="Messages per database transaction.")


class ReplayConfig(StrictModel):
    grace_s: float = Field(
        2.0,
        ge=0,
        description="A gap waits this long before the first cmd/replay: a lane's backlog "
        "comes after its live events, so a gap can fill by itself.",
    )
    min_interval_s: float = Field(2.0, gt=0, description="Between two requests for one gap.")
    max_interval_s: float = Field(120.0, gt=0, description="The backoff's ceiling.")
    max_span: int = Field(
        10_000, ge=1, le=10_000, description="lane_seq per request (the lane takes 10,000)."
    )
    max_requests_per_round: int = Field(
        16, ge=1, description="Requests sent per lane each second, at most."
    )

    @model_validator(mode="after")
    def _order(self) -> ReplayConfig:
        if self.max_interval_s < self.min_interval_s:
            raise ValueError("max_interval_s is below min_interval_s")
        return self


NatsToken = Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")]


class ForwardConfig(StrictModel):
    """The national tier: committed crossing events republished to NATS JetStream."""

    servers: list[Annotated[str, Field(pattern=r"^(nats|tls)://[^\s]+$")]] = Field(
        min_length=1, description="Every node of the JetStream cluster, e.g. nats://10.1.0.1:4222."
    )
    stream: NatsToken = "CROSSINGS"
    subject_prefix: NatsToken = Field(
        "crossings", description="Subjects are <prefix>.<checkpoint>.<lane>."
    )
    replicas: int = Field(3, ge=1, le=5, description="Copies of each message in the cluster.")
    duplicate_window_s: int = Field(
        7200,
        ge=60,
        description="JetStream drops a message whose Nats-Msg-Id (the event_id) it stored this "
        "recently: a batch sent again after a fault is stored once.",
    )
    batch: int = Field(256, ge=1, le=10_000, description="Events in flight at once.")
    ack_timeout_s: float = Field(5.0, gt=0, description="A publish not acknowledged is retried.")
    username: str | None = None
    password: SecretRef | None = None


class JetStreamSourceConfig(StrictModel):
    """The centre: `lane ingest` reads the national stream instead of a site broker."""

    servers: list[Annotated[str, Field(pattern=r"^(nats|tls)://[^\s]+$")]] = Field(
        min_length=1, description="Every node of the JetStream cluster, e.g. nats://10.1.0.1:4222."
    )
    stream: NatsToken = "CROSSINGS"
    subject_prefix: NatsToken = Field(
        "crossings", description="The sites' forward.subject_prefix: <prefix>.<checkpoint>.<lane>."
    )
    durable: NatsToken = Field(
        "register-national",
        description="The durable pull consumer's name: JetStream keeps its position across "
        "restarts; one per register.",
    )
    batch: int = Field(200, ge=1, le=10_000, description="Messages fetched per transaction.")
    ack_wait_s: int = Field(
        60, ge=5, le=86400, description="A message not acknowledged this long is sent again."
    )
    request_timeout_s: float = Field(5.0, gt=0, description="JetStream API requests.")
    username: str | None = None
    password: SecretRef | None = None


class IngestConfig(StrictModel):
    broker: BrokerConfig = Field(default_factory=BrokerConfig)
    topic_prefix: str = Field("border", description="The lanes' mqtt.topic_prefix.")
    checkpoints: list[CheckpointConfig] = Field(min_length=1)
    database: DatabaseConfig
    evidence: EvidenceConfig
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    replay: ReplayConfig = Field(default_factory=ReplayConfig)
    forward: ForwardConfig | None = Field(None, description="`lane ingest forward`; off if absent.")
    jetstream: JetStreamSourceConfig | None = Field(
        None, description="At the centre: consume JetStream instead of the site broker."
    )

    _source: str = PrivateAttr(default="<memory>")

    @field_validator("topic_prefix")
    @classmethod
    def _prefix(cls, value: str) -> str:
        if not value or value[0] == "/" or value[-1] == "/" or "#" in value or "+" in value:
            raise ValueError("a topic prefix has no leading/trailing slash and no wildcards")
        return value

    @model_validator(mode="after")
    def _unique(self) -> IngestConfig:
        ids = [c.id for c in self.checkpoints]
        if len(set(ids)) != len(ids):
            raise ValueError("a checkpoint is listed twice")
        if self.forward is not None or self.jetstream is not None:
            dotted = [f"{c}/{lane}" for c, lane in self.lanes() if "." in c + lane]
            if dotted:
                # A dot separates NATS subject tokens: the subject would name another lane.
                raise ValueError(f"forward: ids with a dot cannot be NATS subjects: {dotted}")
        return self

    @property
    def source(self) -> str:
        return self._source

    def lanes(self) -> list[tuple[str, str]]:
        return [(c.id, lane) for c in self.checkpoints for lane in c.lanes]

    def secrets(self) -> list[tuple[str, SecretRef]]:
        found: list[tuple[str, SecretRef]] = []
        if self.broker.password is not None:
            found.append(("broker.password", self.broker.password))
        if self.broker.tls is not None and self.broker.tls.key_password is not None:
            found.append(("broker.tls.key_password", self.broker.tls.key_password))
        if self.database.password is not None:
            found.append(("database.password", self.database.password))
        if self.forward is not None and self.forward.password is not None:
            found.append(("forward.password", self.forward.password))
        if self.jetstream is not None and self.jetstream.password is not None:
            found.append(("jetstream.password", self.jetstream.password))
        return found


def parse_ingest_config(text: str, *, source: str = "<string>") -> IngestConfig:
    """Validate an ingest config; ConfigError lists every problem as file:line:column: key."""
    # The lane config's bounded loader: NUL, nesting, duplicate keys, all placed.
    document = load_yaml(text, source=source)
    root, data = document.root, document.data
    if document.problems:
        raise ConfigError(document.problems)
    if not isinstance(data, dict):
        raise ConfigError([ConfigProblem(source, 1, 1, "", "an ingest config is a YAML mapping")])
    locator = _Locator(root)
    try:
        config = IngestConfig.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = _clean_loc(tuple(error["loc"]))
            line, column = locator.find(loc)
            problems.append(
                ConfigProblem(source, line, column, ".".join(map(str, loc)), _message(error))
            )
        raise ConfigError(problems) from None
    problems = []
    for path, ref in config.secrets():
        try:
            ref.read()
        except SecretError as exc:
            line, column = locator.find(tuple(path.split(".")))
            problems.append(ConfigProblem(source, line, column, path, str(exc)))
    if problems:
        raise ConfigError(problems)
    config._source = source
    return config


def load_ingest_config(path: str | Path) -> IngestConfig:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            [ConfigProblem(str(path), None, None, "", f"cannot read: {exc.strerror}")]
        ) from None
    return parse_ingest_config(decode(data, source=str(path)), source=str(path))
