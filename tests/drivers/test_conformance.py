"""The shared conformance suite: every registered driver against its simulator.

Each kind in the registry must have an entry here (a test fails otherwise). Every driver
must: come UP and emit typed readings stamped with its id, UTC and monotonic times;
answer probe(); go DOWN when its device falls silent, count the fault, recover on its
own; and end its readings() stream on close() without leaking threads.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
import threading
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from drivers.base import SensorState
from drivers.readings import Reading
from drivers.registry import REGISTRY, create_driver
from simulators.camera import CameraSimulator
from simulators.modbus import (
    AspectSimulator,
    LaneIoSimulator,
    ModbusScaleSimulator,
    ThermalSimulator,
)
from simulators.rpm import RapiscanSimulator
from simulators.weighbridge import WeighbridgeSimulator
from simulators.xray import ScanDrop, notify, write_scan
from tests.drivers.conftest import run, until


@dataclass
class Rig:
    options: dict[str, Any]
    stall: Callable[[float], Awaitable[None]]
    stop: Callable[[], Awaitable[None]]


async def _serial(protocol: str, **extra: Any) -> Rig:
    sim = WeighbridgeSimulator(protocol, rate_hz=20)  # type: ignore[arg-type]
    url = await sim.start()
    sim.set_weight(12_340)
    return Rig({"url": url, **extra}, lambda s: sim.inject("stall", duration_s=s), sim.stop)


async def _modbus(sim: Any, **extra: Any) -> Rig:
    port = await sim.start()
    return Rig(
        {"host": "127.0.0.1", "port": port, "poll_ms": 50, **extra},
        lambda s: sim.inject("stall", duration_s=s),
        sim.stop,
    )


async def _rapiscan() -> Rig:
    sim = RapiscanSimulator(background_interval_s=0.1)
    await sim.start()
    return Rig(
        {"host": "127.0.0.1", "port": sim.port},
        lambda s: sim.inject("stall", duration_s=s),
        sim.stop,
    )


async def _camera(kind: str) -> Rig:
    import numpy as np

    sim = CameraSimulator(fps=15, thermal_source=lambda: np.full((12, 16), 21.5, np.float32))
    sim.start()

    async def stall(seconds: float) -> None:
        sim.inject("stall", duration_s=seconds)

    async def stop() -> None:
        await asyncio.to_thread(sim.stop)

    auth = {"username": "admin", "password": "sim12345"}
    if kind == "thermal.isapi":
        return Rig({"base_url": sim.base_url, "interval_ms": 100, **auth}, stall, stop)
    if kind == "anpr.http":
        return Rig({"url": sim.snapshot_url, "interval_ms": 50, **auth}, stall, stop)
    return Rig({"url": sim.mjpeg_url, "reader": "http", **auth}, stall, stop)


async def _file(tmp: Any) -> Rig:
    import cv2
    import numpy as np

    for i in range(40):
        image = np.full((90, 160, 3), i * 5, np.uint8)
        cv2.imwrite(str(tmp / f"{i:03d}.png"), image)

    async def no_stall(_seconds: float) -> None:
        return None

    async def stop() -> None:
        return None

    return Rig({"path": str(tmp), "fps": 20, "loop": True}, no_stall, stop)


async def _xray(tmp: Any) -> Rig:
    drop = tmp / "drop"
    write_scan(ScanDrop("S1", files={"scan.img": 50_000}), drop)

    async def stall(seconds: float) -> None:  # the share goes away, and comes back
        away = tmp / "away"
        drop.rename(away)
        asyncio.get_running_loop().call_later(seconds, away.rename, drop)

    async def stop() -> None:
        return None

    return Rig({"path": str(drop), "poll_ms": 50, "settle_ms": 0}, stall, stop)


async def _xray_http() -> Rig:
    """A scanner that announces one scan, then sends heartbeats every 50 ms."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    quiet_until = 0.0

    async def scanner() -> None:
        drop: ScanDrop | None = ScanDrop("S1")
        while True:
            if time.monotonic() >= quiet_until:
                with contextlib.suppress(OSError, TimeoutError):
                    status, _ = await notify("127.0.0.1", port, drop, timeout_s=2)
                    if status == 202:
                        drop = None
            await asyncio.sleep(0.05)

    task = asyncio.create_task(scanner())

    async def stall(seconds: float) -> None:
        nonlocal quiet_until
        quiet_until = time.monotonic() + seconds

    async def stop() -> None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task

    return Rig({"port": port, "heartbeat_s": 1.0}, stall, stop)


RIGS: dict[str, Callable[[Any], Awaitable[Rig]]] = {
    "weighbridge.toledo": lambda _t: _serial("toledo"),
    "weighbridge.xk3190": lambda _t: _serial("xk3190"),
    "weighbridge.sics": lambda _t: _serial("sics", poll_ms=30),
    "weighbridge.modbus": lambda _t: _modbus(
        ModbusScaleSimulator(), weight_address=0, status_address=2, motion_bit=0
    ),
    "rpm.rapiscan": lambda _t: _rapiscan(),
    "rpm.aspect": lambda _t: _modbus(AspectSimulator()),
    "thermal.modbus": lambda _t: _modbus(ThermalSimulator(), regions=3),
    "laneio.modbus": lambda _t: _modbus(
        LaneIoSimulator(), inputs={"entry_loop": 0}, outputs={"barrier": 0}, loops=["entry_loop"]
    ),
    "thermal.isapi": lambda _t: _camera("thermal.isapi"),
    "anpr.http": lambda _t: _camera("anpr.http"),
    "anpr.stream": lambda _t: _camera("anpr.stream"),
    "anpr.file": _file,
    "xray.uff_dir": _xray,
    "xray.http": lambda _t: _xray_http(),
}


def test_every_registered_kind_has_a_conformance_rig() -> None:
    assert sorted(RIGS) == sorted(REGISTRY)


@pytest.mark.parametrize("kind", sorted(RIGS))
def test_driver_conformance(kind: str, tmp_path: Any) -> None:
    threads_before = {t.ident for t in threading.enumerate()}

    async def main() -> None:
        rig = await RIGS[kind](tmp_path)
        driver = create_driver(
            "dev1", kind, rig.options, 600, backoff_min_s=0.05, backoff_max_s=0.2,
            degraded_hold_s=0.5,
        )  # fmt: skip
        try:
            await driver.open()
            reading = await driver.next_reading(5)
            assert isinstance(reading, Reading)
            assert reading.device_id == "dev1"
            assert reading.captured_at.tzinfo is UTC
            assert abs(datetime.now(UTC) - reading.captured_at) < timedelta(seconds=5)
            assert abs(time.monotonic() - reading.monotonic) < 5
            await until(lambda: driver.health().state is SensorState.UP, 3)
            probe = (await driver.probe()).as_dict()
            assert probe["kind"] == kind and probe["health"]["state"] == "up"
            if kind != "anpr.file":
                await rig.stall(1.5)
                await until(lambda: driver.health().state is SensorState.DOWN, 4)
                health = driver.health()
                assert health.last_error and sum(health.faults.values()) >= 1
                await until(lambda: driver.health().state is not SensorState.DOWN, 6)
                assert driver.health().reconnects >= 1
            stream = driver.readings()
            await driver.close()
            rest = [r async for r in stream]  # ends after close()
            assert all(isinstance(r, Reading) for r in rest)
        finally:
            await driver.close()
            await rig.stop()

    run(main(), timeout_s=40)
    # Worker threads end with the driver (stuck camera captures may linger, bounded).
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        leaked = [
            t for t in threading.enumerate()
            if t.ident not in threads_before and not t.name.startswith(("asyncio_", "ThreadPool"))
        ]  # fmt: skip
        if not leaked:
            break
        time.sleep(0.05)
    assert not leaked, [t.name for t in leaked]
