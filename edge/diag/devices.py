"""Devices without the agent: open a driver, read a little, probe, act, close.

Used when no agent runs on the lane (a serial port has one owner: while the agent runs,
diag asks it through the control socket instead). Every wait is bounded.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import statistics
import time
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from drivers import text
from drivers.base import Driver, Probe
from drivers.errors import DriverError, UnsupportedCommandError
from drivers.health import Health, SensorState
from drivers.readings import (
    Frame,
    LaneIoState,
    Reading,
    RpmCounts,
    RpmOccupancy,
    RpmStatus,
    ThermalRegions,
    WeightReading,
)
from drivers.registry import create_driver
from edge.config import DeviceConfig, LaneConfig
from edge.control import actions
from edge.control.messages import DeviceReport
from edge.diag.errors import NotFoundError, UnsupportedError
from edge.errors import DeviceError

# Faster retries than the agent's: diag looks for a few seconds, not for hours.
DIAG_DRIVER = {"backoff_min_s": 0.2, "backoff_max_s": 1.0}


def device_report(device_id: str, kind: str, health: Health) -> DeviceReport:
    return DeviceReport.from_health(device_id, kind, health)


def find_device(config: LaneConfig, device_id: str, *, kind_prefix: str = "") -> DeviceConfig:
    for device in config.devices:
        if device.id == device_id:
            if kind_prefix and not device.kind.startswith(kind_prefix):
                raise NotFoundError(
                    f"device {device_id!r} is a {device.kind}, not a {kind_prefix.rstrip('.')}"
                )
            return device
    known = ", ".join(d.id for d in config.devices) or "none"
    raise NotFoundError(f"no device {device_id!r} in {config.source} (devices: {known})")


def open_driver(device: DeviceConfig) -> Driver:
    return create_driver(
        device.id, device.kind, device.driver_options(), device.timeout_ms, **DIAG_DRIVER
    )


def budget_s(device: DeviceConfig, seconds: float | None = None) -> float:
    """How long a direct look at a device may take: enough for a connect and a few frames."""
    if seconds is not None:
        return seconds
    return min(10.0, max(3.0, 2.5 * device.timeout_ms / 1000))


@dataclass
class DirectLook:
    probe: Probe
    health: Health
    first_reading_s: float | None
    intervals_ms: list[float] = field(default_factory=list)
    last: Reading | None = None
    round_trips_ms: list[float] = field(default_factory=list)

    @property
    def round_trip_ms(self) -> float | None:
        return statistics.median(self.round_trips_ms) if self.round_trips_ms else None

    @property
    def interval_ms(self) -> float | None:
        return statistics.median(self.intervals_ms) if self.intervals_ms else None


async def look(
    device: DeviceConfig, *, seconds: float | None = None, readings: int = 5
) -> DirectLook:
    """Open the device, collect up to ``readings`` readings within the budget, probe it."""
    driver = open_driver(device)
    started = time.monotonic()
    deadline = started + budget_s(device, seconds)
    first: float | None = None
    stamps: list[float] = []
    last: Reading | None = None
    await driver.open()
    try:
        while len(stamps) < readings:
            left = deadline - time.monotonic()
            if left <= 0:
                break
            try:
                last = await driver.next_reading(min(left, 0.5))
            except TimeoutError:
                continue
            except EOFError:
                break
            now = time.monotonic()
            if first is None:
                first = now - started
            stamps.append(now)
        round_trips = await _round_trips(driver)
        async with asyncio.timeout(max(2.0, driver.timeout_s * 2)):
            probe = await driver.probe()
        health = driver.health()
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await driver.close()
    intervals = [(b - a) * 1000 for a, b in itertools.pairwise(stamps)]
    return DirectLook(probe, health, first, intervals, last, round_trips)


async def _round_trips(driver: Driver, times: int = 3) -> list[float]:
    """Request/response devices (Modbus): the time of whole polls, in ms.

    A poll is exactly what the lane asks the device, so no register outside the device's map
    is touched. Streaming devices (continuous scale output, RPM lines) have no round trip.
    """
    from drivers.modbus import ModbusDriver

    if not isinstance(driver, ModbusDriver) or not driver.health().connected:
        return []
    spent = []
    for _ in range(times):
        started = time.perf_counter()
        try:
            async with asyncio.timeout(driver.timeout_s + 1.0):
                await driver._poll()
        except (DriverError, OSError, TimeoutError):
            break
        spent.append((time.perf_counter() - started) * 1000)
    return spent


async def look_all(config: LaneConfig, *, seconds: float | None = None) -> dict[str, DirectLook]:
    devices = [d for d in config.devices if d.enabled]
    looks = await asyncio.gather(
        *(look(d, seconds=seconds, readings=2) for d in devices), return_exceptions=True
    )
    out: dict[str, DirectLook] = {}
    for device, result in zip(devices, looks, strict=True):
        if isinstance(result, BaseException):
            if not isinstance(result, Exception):
                raise result
            health = Health(SensorState.DOWN, False, f"cannot open: {result}", {}, None, 0, 0)
            probe = Probe(device.id, device.kind, {}, health.as_dict())
            out[device.id] = DirectLook(probe, health, None)
        else:
            out[device.id] = result
    return out


async def run_action(driver: Driver, action: str) -> str:
    """zero/tare a scale, open/close the barrier (``edge.control.actions``); returns what was
    done, in words."""
    try:
        return await actions.run_action(driver, action)
    except UnsupportedCommandError as exc:
        raise UnsupportedError(str(exc)) from None


async def act_directly(device: DeviceConfig, action: str, *, seconds: float | None = None) -> str:
    """Open the device, wait until it answers, act, close."""
    driver = open_driver(device)
    await driver.open()
    try:
        deadline = time.monotonic() + budget_s(device, seconds)
        while not driver.health().connected:
            if time.monotonic() > deadline:
                error = driver.health().last_error or "no answer"
                raise DeviceError(f"{device.id} is DOWN: {error}")
            with contextlib.suppress(TimeoutError, EOFError):
                await driver.next_reading(0.2)
        return await run_action(driver, action)
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await driver.close()


async def stream(
    device: DeviceConfig, *, interval_s: float
) -> AsyncGenerator[tuple[Driver, Reading | None], None]:
    """Readings of an opened device, at most one per interval (None while it is silent)."""
    driver = open_driver(device)
    await driver.open()
    try:
        while True:
            deadline = time.monotonic() + interval_s
            newest: Reading | None = None
            while (left := deadline - time.monotonic()) > 0:
                try:
                    newest = await driver.next_reading(left)
                except TimeoutError:
                    break
                except EOFError:
                    return
            yield driver, newest
    finally:
        with contextlib.suppress(Exception):
            async with asyncio.timeout(5.0):
                await driver.close()


def reading_fields(reading: Reading) -> dict[str, Any]:
    """What a technician looks at, per kind of reading."""
    if isinstance(reading, WeightReading):
        return {
            "gross_kg": reading.gross_kg,
            "stable": reading.stable,
            "motion": reading.motion,
            "overload": reading.overload,
            "not_zeroed": reading.not_zeroed,
        }
    if isinstance(reading, RpmCounts):
        return {
            "line": reading.line_type,
            "counts": list(reading.counts),
            "alarm": reading.alarm,
            "fault": reading.fault,
        }
    if isinstance(reading, RpmOccupancy):
        return {
            "gamma_max_cps": reading.gamma_max_cps,
            "gamma_background_cps": reading.gamma_background_cps,
            "sigma": reading.sigma,
            "gamma_alarm": reading.gamma_alarm,
            "neutron_alarm": reading.neutron_alarm,
        }
    if isinstance(reading, RpmStatus):
        return {"tamper": reading.tamper, "detail": reading.detail}
    if isinstance(reading, ThermalRegions):
        return {
            "max_c": reading.max_c,
            "regions": {r.index: r.max_c for r in reading.regions if r.valid},
        }
    if isinstance(reading, LaneIoState):
        return {
            "inputs": dict(reading.inputs),
            "outputs": dict(reading.outputs),
            "faults": {k: v.value for k, v in reading.faults.items()},
        }
    if isinstance(reading, Frame):
        h, w = reading.image.shape[:2]
        return {"frame": reading.sequence, "size": f"{w}x{h}"}
    return {}


def describe(fields: dict[str, Any]) -> str:
    """One line from ``reading_fields``: ``gross_kg=38650 STABLE``..."""
    if "gross_kg" in fields:
        flags = "MOTION" if fields["motion"] else ("STABLE" if fields["stable"] else "settling")
        extra = " OVERLOAD" if fields["overload"] else ""
        return f"{fields['gross_kg']:.0f} kg {flags}{extra}"
    if "inputs" in fields:
        on = [k for k, v in fields["inputs"].items() if v]
        outs = [k for k, v in fields["outputs"].items() if v]
        faults = [f"{k}:{v}" for k, v in fields["faults"].items()]
        return f"inputs on: {', '.join(on) or 'none'}; outputs on: {', '.join(outs) or 'none'}" + (
            f"; loop faults: {', '.join(faults)}" if faults else ""
        )
    if "counts" in fields:
        counts = "/".join("-" if c is None else str(c) for c in fields["counts"])
        background = fields.get("gamma_background_cps")
        return (
            f"{fields['line']} counts {counts}"
            + (f" (gamma background {background:.0f} cps)" if background is not None else "")
            + (" ALARM" if fields["alarm"] else "")
            + (f" FAULT {fields['fault']}" if fields["fault"] else "")
        )
    if "max_c" in fields:
        regions = ", ".join(f"r{k} {v:.1f}C" for k, v in fields["regions"].items() if v is not None)
        return f"max {fields['max_c']} C ({regions})"
    return text.fields(fields)
