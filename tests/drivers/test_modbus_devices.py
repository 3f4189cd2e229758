"""Modbus drivers (thermal, lane I/O, Aspect RPM, scale) against real pymodbus servers."""

from __future__ import annotations

import asyncio

import pytest

from drivers.base import SensorState
from drivers.readings import LaneIoState, LoopFault, RpmOccupancy, ThermalRegions, WeightReading
from drivers.registry import create_driver
from simulators.modbus import (
    AspectSimulator,
    LaneIoSimulator,
    ModbusScaleSimulator,
    ThermalSimulator,
)
from tests.drivers.conftest import collect, run, until

FAST = {"backoff_min_s": 0.05, "backoff_max_s": 0.2, "degraded_hold_s": 0.8}


def of(kind: type, readings: list[object]) -> list:  # type: ignore[type-arg]
    return [r for r in readings if isinstance(r, kind)]


@pytest.mark.parametrize("map_", ["flir", "infiray"])
def test_thermal_regions_faults_and_recovery(map_: str) -> None:
    async def main() -> None:
        sim = ThermalSimulator(map_, regions=4, alarm_c=80)  # type: ignore[arg-type]
        port = await sim.start()
        options = {"host": "127.0.0.1", "port": port, "map": map_, "regions": 4, "poll_ms": 50}
        driver = create_driver("th1", "thermal.modbus", options, 300, **FAST)
        await driver.open()
        try:
            sim.set_regions([(35.4, 10.0, 18.2), (92.7, 15.0, 40.1), (20.0, 8.5, 12.0)])
            await collect(driver, 0.2)
            (reading, *_) = of(ThermalRegions, await collect(driver, 0.2))
            assert reading.max_c == pytest.approx(92.7, abs=0.5)
            first = reading.regions[0]
            assert (first.max_c, first.min_c, first.avg_c) == pytest.approx(
                (35.4, 10.0, 18.2), abs=0.1
            )
            if map_ == "infiray":
                assert reading.regions[1].alarm and not reading.regions[0].alarm
                # Hysteresis: 78 C is below the threshold but inside the 3 C band.
                sim.set_regions([(35.4, 10.0, 18.2), (78.0, 15.0, 40.1)])
                (held, *_) = of(ThermalRegions, await collect(driver, 0.2))
                assert held.regions[1].alarm
                sim.set_regions([(35.4, 10.0, 18.2), (70.0, 15.0, 40.1)])
                (cleared, *_) = of(ThermalRegions, await collect(driver, 0.2))
                assert not cleared.regions[1].alarm
            await sim.inject("detector", duration_s=1.0)
            await until(lambda: driver.health().faults.get("invalid_region", 0) >= 1, 2)
            bad = of(ThermalRegions, await collect(driver, 0.15))
            assert bad and all(r.max_c is None for r in bad)  # never a stale value as valid
            await sim.inject("exception", duration_s=0.15)
            await until(lambda: driver.health().faults.get("modbus_exception", 0) >= 1, 2)
            assert driver.health().state is SensorState.DEGRADED
            await sim.inject("stall", duration_s=0.8)
            await until(lambda: driver.health().state is SensorState.DOWN, 2)
            await until(lambda: driver.health().state is SensorState.UP, 4)
            (again, *_) = of(ThermalRegions, await collect(driver, 0.3))
            assert again.max_c is not None
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_lane_io_loops_barrier_and_faults() -> None:
    async def main() -> None:
        sim = LaneIoSimulator(map="adam6050", barrier_travel_s=0.3)
        port = await sim.start()
        options = {
            "host": "127.0.0.1", "port": port, "map": "adam6050", "poll_ms": 20,
            "inputs": sim.inputs, "outputs": sim.outputs, "loops": ["entry_loop", "exit_loop"],
            "locked_on_s": 0.4, "chatter_changes": 4, "heartbeat_ms": 100,
            "counters": {"axles": 16},
        }  # fmt: skip
        driver = create_driver("io1", "laneio.modbus", options, 500, **FAST)
        await driver.open()
        try:
            await until(lambda: driver.health().state is SensorState.UP, 3)
            # The axle detector's u32 pulse counter, across its wrap.
            for total in (2**32 - 1, 3):
                sim.count["axles"] = total
                await until(
                    lambda t=total: (
                        driver.state is not None  # type: ignore[attr-defined, misc]
                        and driver.state.counters == {"axles": t}
                    ),  # type: ignore[attr-defined]
                    3,
                )
            sim.set_input("entry_loop", True)
            await until(lambda: driver.state is not None and driver.state.inputs["entry_loop"], 4)  # type: ignore[attr-defined]
            sim.set_input("entry_loop", False)
            await driver.set_output("barrier", True)  # type: ignore[attr-defined]
            assert sim.output("barrier")
            await until(lambda: driver.state.inputs["barrier_open"], 4)  # type: ignore[attr-defined]
            assert not driver.state.inputs["barrier_closed"]  # type: ignore[attr-defined]
            assert driver.state.outputs["barrier"]  # type: ignore[attr-defined]
            # A loop that chatters, then one locked on.
            await sim.inject("chatter", duration_s=0.5, input="exit_loop")
            await until(lambda: driver.health().faults.get("loop_chatter", 0) >= 1, 4)
            await asyncio.sleep(0.6)
            await sim.inject("locked_on", duration_s=1.0, input="entry_loop")
            await until(lambda: driver.health().faults.get("loop_locked_on", 0) >= 1, 4)
            states = of(LaneIoState, await collect(driver, 0.2))
            assert states[-1].faults.get("entry_loop") is LoopFault.LOCKED_ON
            assert driver.health().state is SensorState.DEGRADED
            # A relay that does not follow its coil.
            sim.stuck_relays.add("light_red")
            await driver.set_output("light_red", True)  # type: ignore[attr-defined]
            await until(lambda: driver.health().faults.get("output_mismatch", 0) >= 1, 4)
            await sim.inject("disconnect")
            await until(lambda: driver.health().reconnects >= 1, 4)
            await until(lambda: driver.health().connected, 3)
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_aspect_rpm_occupancies() -> None:
    async def main() -> None:
        sim = AspectSimulator(seed=5)
        port = await sim.start()
        options = {"host": "127.0.0.1", "port": port, "poll_ms": 20}
        driver = create_driver("rpm2", "rpm.aspect", options, 300, **FAST)
        await driver.open()
        try:
            await until(lambda: driver.health().state is SensorState.UP, 3)
            await sim.pass_vehicle(duration_s=0.5, step_s=0.05)
            await sim.pass_vehicle(duration_s=0.5, gamma_cps=2500, step_s=0.05, axles=3)
            await sim.inject("detector", duration_s=1.0)
            occupancies = of(RpmOccupancy, await collect(driver, 0.4))
            assert [o.occupancy_no for o in occupancies] == [1, 2]
            assert [o.gamma_alarm for o in occupancies] == [t.gamma_alarm for t in sim.truth]
            assert occupancies[1].gamma_alarm and not occupancies[0].gamma_alarm
            assert occupancies[1].gamma_max_cps == sim.truth[1].gamma_max
            assert occupancies[0].speed_kmh == pytest.approx(8.0, abs=0.01)
            assert [o.axles for o in occupancies] == [5, 3]  # the object mark register
            assert driver.health().faults.get("detector", 0) >= 1
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_modbus_scale_stability_and_zero() -> None:
    async def main() -> None:
        sim = ModbusScaleSimulator()
        port = await sim.start()
        options = {
            "host": "127.0.0.1", "port": port, "poll_ms": 20, "weight_address": 0,
            "weight_type": "int32", "status_address": 2, "motion_bit": 0, "overload_bit": 1,
            "command_address": 10, "zero_value": 1, "stable_frames": 3,
        }  # fmt: skip
        driver = create_driver("wb2", "weighbridge.modbus", options, 300, **FAST)
        await driver.open()
        try:
            sim.set_weight(31_250, motion=True)
            moving = of(WeightReading, await collect(driver, 0.2))
            moving = [r for r in moving if r.gross_kg == 31_250]  # skip a poll already in flight
            assert moving and not any(r.stable for r in moving)
            sim.set_weight(31_250)
            await collect(driver, 0.1)
            settled = of(WeightReading, await collect(driver, 0.2))
            assert settled[-1].stable and settled[-1].gross_kg == 31_250
            sim.set_weight(30)
            await collect(driver, 0.1)
            await driver.zero()  # type: ignore[attr-defined]
            await collect(driver, 0.1)
            zeroed = of(WeightReading, await collect(driver, 0.1))
            assert zeroed[-1].gross_kg == 0
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_modbus_scale_over_rtu_on_a_pty_null_modem() -> None:
    from simulators.ports import PtyBridge

    async def main() -> None:
        bridge = PtyBridge()
        server_end, client_end = await bridge.start()
        sim = ModbusScaleSimulator(rtu_port=server_end)
        await sim.start()
        options = {
            "rtu_url": client_end, "poll_ms": 50, "weight_address": 0, "status_address": 2,
            "motion_bit": 0, "stable_frames": 2,
        }  # fmt: skip
        driver = create_driver("wb3", "weighbridge.modbus", options, 500, **FAST)
        await driver.open()
        try:
            sim.set_weight(24_680)
            await until(lambda: driver.health().state is SensorState.UP, 5)
            readings = of(WeightReading, await collect(driver, 0.5))
            assert readings and readings[-1].gross_kg == 24_680 and readings[-1].stable
        finally:
            await driver.close()
            await sim.stop()
            await bridge.stop()

    run(main())


def test_thermal_matrix_over_isapi_with_digest() -> None:
    import numpy as np

    from simulators.camera import CameraSimulator

    matrix = np.full((120, 160), 14.0, np.float32)
    matrix[80:90, 20:30] = 231.7  # hot brakes, lower left
    matrix[10:20, 100:140] = 88.4  # hot spot in the cargo

    async def main() -> None:
        sim = CameraSimulator(thermal_source=lambda: matrix, label="THERMAL")
        sim.start()
        options = {
            "base_url": sim.base_url, "username": "admin", "password": "sim12345",
            "interval_ms": 100, "regions": [[0, 60, 60, 60], [90, 0, 70, 40], [60, 40, 30, 20]],
            "alarm_c": 80,
        }  # fmt: skip
        driver = create_driver("th2", "thermal.isapi", options, 1000, **FAST)
        await driver.open()
        try:
            reading = await driver.next_reading(5)
            assert isinstance(reading, ThermalRegions)
            brakes, cargo, road = reading.regions
            assert brakes.max_c == pytest.approx(231.7, abs=0.5) and brakes.alarm
            assert cargo.max_c == pytest.approx(88.4, abs=0.5) and cargo.alarm
            assert road.max_c == pytest.approx(14.0, abs=0.5) and not road.alarm
            assert driver.matrix is not None and driver.matrix.shape == (120, 160)  # type: ignore[attr-defined]
            sim.inject("unauthorized", duration_s=0.5)
            await until(lambda: driver.health().state is SensorState.DOWN, 3)
            await until(lambda: driver.health().state is SensorState.UP, 4)
        finally:
            await driver.close()
            await asyncio.to_thread(sim.stop)

    run(main())
