"""The lane's broker connection: address, TLS, session, and the limits on what arrives."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, field_validator, model_validator

from edge.config.base import StrictModel
from edge.config.secret import SecretRef


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
