"""The driver registry: explicit kinds, strict options, clear errors."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from pydantic import ValidationError

from drivers.errors import DriverConfigError, MissingExtraError
from drivers.registry import REGISTRY, DriverSpec, create_driver, get_spec, validate_options

EXPECTED = {
    "weighbridge.toledo", "weighbridge.xk3190", "weighbridge.sics", "weighbridge.modbus",
    "rpm.rapiscan", "rpm.aspect", "thermal.modbus", "thermal.isapi", "laneio.modbus",
    "anpr.http", "anpr.stream", "anpr.file", "xray.uff_dir",
    "xray.http",
}  # fmt: skip


def test_registry_pins_the_kinds() -> None:
    assert set(REGISTRY) == EXPECTED


@pytest.mark.parametrize("kind", sorted(EXPECTED))
def test_every_kind_loads_and_forbids_unknown_options(kind: str) -> None:
    spec = get_spec(kind)
    model = spec.options_model()
    assert model.model_config.get("extra") == "forbid"
    assert spec.driver_class().kind == kind
    with pytest.raises(ValidationError, match="no_such_option"):
        validate_options(kind, {"no_such_option": 1})


def test_unknown_kind_names_the_known_ones() -> None:
    with pytest.raises(DriverConfigError, match=r"unknown device kind 'scale\.x'.*rpm\.rapiscan"):
        validate_options("scale.x", {})


def test_bad_options_are_a_config_error() -> None:
    with pytest.raises(DriverConfigError, match="baudrate"):
        create_driver("wb", "weighbridge.toledo", {"url": "/dev/ttyUSB0", "baudrate": 1}, 500)
    with pytest.raises(ValidationError, match="at most 10 regions"):
        validate_options("thermal.modbus", {"host": "h", "map": "flir", "regions": 12})
    with pytest.raises(ValidationError, match="not among the inputs"):
        validate_options("laneio.modbus", {"host": "h", "loops": ["x"]})


def test_a_missing_dependency_names_the_extra() -> None:
    spec = DriverSpec("x.y", "no_such_module_xyz:Options", "no_such_module_xyz:D", "xy", "")
    with pytest.raises(MissingExtraError, match=r"lane-agent\[xy\]"):
        spec.options_model()


@pytest.mark.parametrize("path", sorted(Path("config").glob("*.yaml")))
def test_example_lane_configs_validate(path: Path) -> None:
    config = yaml.safe_load(path.read_text())
    for device in config.get("devices") or []:
        options = {
            k: v for k, v in device.items()
            if k not in {"id", "kind", "role", "timeout_ms", "enabled"}
        }  # fmt: skip
        if "password" in options:
            options["password"] = "(secret)"
        validate_options(device["kind"], options)
