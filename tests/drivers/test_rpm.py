"""Rapiscan RPM driver against the RPM simulator over real TCP sockets."""

from __future__ import annotations

import asyncio

import pytest

from drivers.base import SensorState
from drivers.readings import RpmCounts, RpmOccupancy, RpmStatus
from drivers.registry import create_driver
from simulators.rpm import RapiscanSimulator, RpmVehicle
from tests.drivers.conftest import collect, run, until

FAST = {"backoff_min_s": 0.05, "backoff_max_s": 0.2, "degraded_hold_s": 1.0}


async def _lane(**driver_options: object):  # type: ignore[no-untyped-def]
    sim = RapiscanSimulator(background_interval_s=0.15, speedup=10, seed=3)
    await sim.start()
    options = {"host": "127.0.0.1", "port": sim.port, **driver_options}
    driver = create_driver("rpm1", "rpm.rapiscan", options, 400, **FAST)
    await driver.open()
    await until(lambda: driver.health().state is SensorState.UP, 3)
    return sim, driver


async def _occupancies(driver, n: int, timeout_s: float = 5.0) -> list[RpmOccupancy]:  # type: ignore[no-untyped-def]
    found: list[RpmOccupancy] = []
    async with asyncio.timeout(timeout_s):
        while len(found) < n:
            reading = await driver.next_reading(timeout_s)
            if isinstance(reading, RpmOccupancy):
                found.append(reading)
    return found


def test_occupancies_match_what_the_monitor_sent() -> None:
    async def main() -> None:
        sim, driver = await _lane()
        try:
            sim.pass_vehicle(RpmVehicle(duration_s=4, vehicle="clean"))
            sim.pass_vehicle(RpmVehicle(duration_s=5, gamma_cps=2000, vehicle="gamma"))
            sim.pass_vehicle(RpmVehicle(duration_s=3, neutron_cps=40, vehicle="neutron"))
            sim.pass_vehicle(RpmVehicle(duration_s=0.6, vehicle="short"))
            got = await _occupancies(driver, 4)
            assert [o.occupancy_no for o in got] == [t.occupancy_no for t in sim.truth]
            assert [(o.gamma_alarm, o.neutron_alarm) for o in got] == [
                (t.gamma_alarm, t.neutron_alarm) for t in sim.truth
            ]
            assert [(o.gamma_alarm, o.neutron_alarm) for o in got] == [
                (False, False), (True, False), (False, True), (False, False),
            ]  # fmt: skip
            assert [o.gamma_max_cps for o in got] == [t.gamma_max_cps for t in sim.truth]
            assert [o.neutron_max for o in got] == [t.neutron_max for t in sim.truth]
            assert got[1].sigma is not None and got[1].sigma > 6
            assert got[0].complete and got[0].speed_kmh == pytest.approx(8.0)
            probe = await driver.probe()
            assert probe.identity["SG3"].endswith("1.20.1A")
            assert probe.raw_frames
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_silent_socket_is_a_fault_then_recovers() -> None:
    async def main() -> None:
        sim, driver = await _lane()
        try:
            await sim.inject("stall", duration_s=1.0)
            await until(lambda: driver.health().state is SensorState.DOWN, 2)
            health = driver.health()
            assert health.faults.get("timeout", 0) >= 1 and "silent" in (health.last_error or "")
            await until(lambda: driver.health().state is not SensorState.DOWN, 4)
            sim.pass_vehicle(RpmVehicle(duration_s=2))
            (occupancy,) = await _occupancies(driver, 1)
            assert occupancy.occupancy_no == sim.truth[-1].occupancy_no
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_disconnect_then_reconnect() -> None:
    async def main() -> None:
        sim, driver = await _lane()
        try:
            await sim.inject("disconnect")
            await until(lambda: driver.health().state is SensorState.DOWN, 2)
            assert driver.health().faults.get("connection", 0) >= 1
            await until(lambda: driver.health().state is not SensorState.DOWN, 3)
            assert sim.clients == 1
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_garbage_truncation_and_detector_faults_are_counted() -> None:
    async def main() -> None:
        sim, driver = await _lane()
        try:
            await sim.inject("garbage", size=30)
            await sim.inject("truncated", count=2)
            await sim.inject("detector", duration_s=1.0)
            await until(lambda: driver.health().faults.get("detector", 0) >= 1, 3)
            await sim.inject("clock_skew", offset_s=-7200)
            sim.pass_vehicle(RpmVehicle(duration_s=3, gamma_cps=3000))
            (occupancy,) = await _occupancies(driver, 1)
            assert occupancy.gamma_alarm == sim.truth[-1].gamma_alarm
            health = driver.health()
            assert health.faults.get("detector", 0) >= 1, health.faults
            assert sum(health.faults.get(k, 0) for k in ("garbage", "framing", "unknown")) >= 1
            assert health.state is SensorState.DEGRADED
            gh = [r for r in await collect(driver, 0.3) if isinstance(r, RpmCounts) and r.fault]
            assert all(r.line_type == "GH" for r in gh)
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_missing_gx_closes_the_occupancy_by_timeout() -> None:
    async def main() -> None:
        sim, driver = await _lane(occupancy_timeout_s=0.3)
        try:
            await sim.inject("missing_gx")
            sim.pass_vehicle(RpmVehicle(duration_s=2, gamma_cps=3000))
            (occupancy,) = await _occupancies(driver, 1)
            assert occupancy.complete is False and occupancy.occupancy_no is None
            assert occupancy.gamma_alarm
            assert driver.health().faults.get("missing_gx") == 1
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_rpm_status_reading_type_exists() -> None:
    assert RpmStatus(device_id="r", tamper=True).tamper
