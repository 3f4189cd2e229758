"""The explicit driver registry: lane-config ``kind`` -> (options model, driver class).

Entries name their modules as strings and import them on use, so one driver's missing
optional dependency (OpenCV, pymodbus) neither hides nor breaks the others: using it
raises :class:`MissingExtraError` naming the extra to install. Out-of-tree drivers can
register through the ``lane_agent.drivers`` entry-point group (value ``module:Class``;
the class has ``kind`` and an ``Options`` attribute).
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

from pydantic import BaseModel, ValidationError

from drivers.base import Driver
from drivers.errors import DriverConfigError, MissingExtraError

ENTRY_POINT_GROUP = "lane_agent.drivers"


@dataclass(frozen=True, slots=True)
class DriverSpec:
    kind: str
    options: str
    driver: str
    extra: str
    summary: str

    def _load(self, target: str) -> Any:
        module_name, _, attr = target.partition(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name and not exc.name.startswith(("drivers", "simulators")):
                raise MissingExtraError(self.kind, exc.name, self.extra) from exc
            raise
        value: Any = module
        for part in attr.split("."):
            value = getattr(value, part)
        return value

    def options_model(self) -> type[BaseModel]:
        return self._load(self.options)

    def driver_class(self) -> type[Driver]:
        return self._load(self.driver)


def _spec(
    kind: str, module: str, options: str, driver: str, extra: str, summary: str
) -> DriverSpec:
    return DriverSpec(kind, f"{module}:{options}", f"{module}:{driver}", extra, summary)


_WB = "drivers.weighbridge.driver"
REGISTRY: dict[str, DriverSpec] = {
    spec.kind: spec
    for spec in [
        _spec("weighbridge.toledo", _WB, "ToledoOptions", "ToledoDriver", "serial",
              "Mettler Toledo continuous output over a serial URL"),
        _spec("weighbridge.xk3190", _WB, "Xk3190Options", "Xk3190Driver", "serial",
              "Yaohua/Keli XK3190 tF=0 continuous or tF=1 command mode"),
        _spec("weighbridge.sics", _WB, "SicsOptions", "SicsDriver", "serial",
              "Mettler Toledo MT-SICS (SI polling, Z, T)"),
        _spec("weighbridge.modbus", "drivers.weighbridge.modbus", "ModbusScaleOptions",
              "ModbusScaleDriver", "modbus", "Weighing indicator over Modbus, map in config"),
        _spec("rpm.rapiscan", "drivers.rpm.driver", "RapiscanOptions", "RapiscanDriver", "rpm",
              "Rapiscan/TSA CSV line protocol over TCP"),
        _spec("rpm.aspect", "drivers.rpm.aspect", "AspectOptions", "AspectDriver", "modbus",
              "Aspect-style RPM monitor registers over Modbus TCP"),
        _spec("thermal.modbus", "drivers.thermal.driver", "ThermalOptions",
              "ThermalModbusDriver", "modbus", "Per-region temperatures, FLIR or InfiRay map"),
        _spec("thermal.isapi", "drivers.thermal.isapi", "IsapiThermalOptions",
              "IsapiThermalDriver", "camera", "Full radiometric matrix over Hikvision ISAPI"),
        _spec("anpr.http", "drivers.camera.driver", "SnapshotOptions", "SnapshotDriver",
              "camera", "HTTP snapshot polling (ISAPI/CGI), digest or basic auth"),
        _spec("anpr.stream", "drivers.camera.driver", "StreamOptions", "StreamDriver",
              "camera", "RTSP or HTTP MJPEG stream (OpenCV/FFmpeg or built-in reader)"),
        _spec("anpr.file", "drivers.camera.driver", "FileOptions", "FileDriver", "camera",
              "Video file or image folder, for replaying recorded footage"),
        _spec("laneio.modbus", "drivers.laneio.driver", "LaneIoOptions", "LaneIoDriver",
              "modbus", "Loops, light curtain, barrier, lights on a Moxa/ADAM DI/DO module"),
        _spec("xray.uff_dir", "drivers.xray.driver", "UffDirOptions", "UffDirDriver", "xray",
              "X-ray/NII scans dropped in a folder with a JSON sidecar; hashed, not parsed"),
        _spec("xray.http", "drivers.xray.http", "XrayHttpOptions", "XrayHttpDriver", "xray",
              "X-ray/NII scanner announcing each scan by HTTP POST (the sidecar as JSON)"),
    ]
}  # fmt: skip


def _entry_point_specs() -> dict[str, DriverSpec]:
    found: dict[str, DriverSpec] = {}
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        found[ep.name] = DriverSpec(
            ep.name, f"{ep.value}.Options", ep.value, ep.dist.name if ep.dist else ep.name, ""
        )
    return found


def get_spec(kind: str) -> DriverSpec:
    spec = REGISTRY.get(kind) or _entry_point_specs().get(kind)
    if spec is None:
        known = ", ".join(sorted(REGISTRY))
        raise DriverConfigError(f"unknown device kind {kind!r}; known kinds: {known}")
    return spec


def validate_options(kind: str, options: dict[str, Any]) -> BaseModel:
    """Validate a device entry's extra keys against its kind's options model.

    Raises DriverConfigError (unknown kind) or pydantic's ValidationError (bad options),
    so the config loader can point at the offending YAML line.
    """
    spec = get_spec(kind)
    model = spec.options_model()
    return model.model_validate(options)


def create_driver(
    device_id: str,
    kind: str,
    options: dict[str, Any] | BaseModel,
    timeout_ms: int = 1000,
    **kwargs: Any,
) -> Driver:
    """A ready-to-open driver. ``kwargs`` go to :class:`Driver` (backoff, queue size)."""
    spec = get_spec(kind)
    if not isinstance(options, BaseModel):
        try:
            options = validate_options(kind, options)
        except ValidationError as exc:
            raise DriverConfigError(f"device {device_id!r} ({kind}): {exc}") from exc
    cls = spec.driver_class()
    return cls(device_id, options, timeout_ms=timeout_ms, **kwargs)
