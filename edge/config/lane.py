"""One lane's config, the root of the file: identity, its devices, and each section."""

from __future__ import annotations

import ipaddress
from enum import StrEnum
from typing import Annotated

from pydantic import Field, PrivateAttr, model_validator
from pydantic_core import PydanticCustomError

from edge.config.base import IDENTIFIER, StrictModel
from edge.config.devices import DeviceConfig
from edge.config.fusion import FusionConfig
from edge.config.mqtt import MqttConfig
from edge.config.recognition import RecognitionConfig
from edge.config.secret import SecretRef
from edge.config.storage import StorageConfig

DUPLICATE_DEVICE = "duplicate_device_id"


class Direction(StrEnum):
    ENTRY = "entry"
    EXIT = "exit"


class LaneType(StrEnum):
    TRUCK = "truck"
    CAR = "car"
    BUS = "bus"


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
