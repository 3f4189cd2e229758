"""Weighbridge drivers against the indicator simulator over real ptys and TCP sockets."""

from __future__ import annotations

import logging

import pytest

from drivers.base import Health, SensorState
from drivers.readings import WeightReading
from drivers.registry import create_driver
from simulators.weighbridge import WeighbridgeSimulator
from tests.drivers.conftest import collect, run, until

FAST = {"backoff_min_s": 0.05, "backoff_max_s": 0.2, "degraded_hold_s": 1.0}


def weights(readings: list[object]) -> list[WeightReading]:
    return [r for r in readings if isinstance(r, WeightReading)]


async def _toledo(transport: str = "pty", **options: object):  # type: ignore[no-untyped-def]
    sim = WeighbridgeSimulator("toledo", transport=transport, rate_hz=20, division_kg=10)  # type: ignore[arg-type]
    url = await sim.start()
    driver = create_driver(
        "wb1", "weighbridge.toledo", {"url": url, "stable_frames": 4, **options}, 300, **FAST
    )
    await driver.open()
    return sim, driver


def test_toledo_stable_weight_over_pty() -> None:
    async def main() -> None:
        sim, driver = await _toledo()
        try:
            sim.set_weight(23_960)
            readings = weights(await collect(driver, 1.0))
            stable = [r for r in readings if r.stable]
            assert stable, readings[:3]
            assert all(r.gross_kg == 23_960 and r.division_kg == 10 for r in stable)
            assert driver.health().state is SensorState.UP
            probe = await driver.probe()
            assert probe.raw_frames and probe.raw_frames[-1]["hex"].startswith("02 29")
            assert probe.options["url"] == sim.url
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_toledo_motion_and_unstable_weight_are_never_stable() -> None:
    async def main() -> None:
        sim, driver = await _toledo()
        try:
            # A truck driving on: the weight ramps; the indicator flags motion.
            sim.profile = lambda t: (min(30_000.0, t * 40_000), t < 0.75)
            ramp = weights(await collect(driver, 0.7))
            assert ramp and not any(r.stable for r in ramp)
            assert any(r.motion for r in ramp)
            # Settled: stable within a few frames.
            await until(lambda: sim.frames_sent > 30, 3)
            settled = weights(await collect(driver, 0.6))
            assert any(r.stable and r.gross_kg == 30_000 for r in settled)
            # An indicator that wobbles by +-5 d without raising its motion flag.
            await sim.inject("unstable", duration_s=0.8, amplitude_d=5)
            await collect(driver, 0.1)
            wobbling = weights(await collect(driver, 0.6))
            assert len({r.gross_kg for r in wobbling}) > 2
            assert not any(r.stable for r in wobbling), "a weight in motion was reported stable"
        finally:
            await driver.close()
            await sim.stop()

    run(main())


@pytest.mark.parametrize("fault", ["bad_checksum", "truncated", "garbage"])
def test_toledo_corrupt_frames_are_counted_never_emitted(fault: str) -> None:
    async def main() -> None:
        sim, driver = await _toledo()
        try:
            sim.set_weight(12_340)
            await until(lambda: driver.health().state is SensorState.UP, 3)
            await sim.inject(fault, count=3)
            readings = weights(await collect(driver, 0.6))
            assert all(r.gross_kg == 12_340 for r in readings)
            health = driver.health()
            wanted = {"bad_checksum": "checksum", "truncated": "truncated"}.get(fault)
            assert sum(health.faults.values()) >= 1, health
            if wanted:
                assert health.faults.get(wanted, 0) >= 1, health.faults
            assert health.state is SensorState.DEGRADED
            assert health.connected
            # Recovers on its own once faults stop.
            await until(lambda: driver.health().state is SensorState.UP, 3)
        finally:
            await driver.close()
            await sim.stop()

    run(main())


class Transitions:
    """A ``DriverObserver``: the states the driver pushed, in order, and its fault counts."""

    def __init__(self) -> None:
        self.states: list[SensorState] = []
        self.faults: dict[str, int] = {}

    def driver_health(self, device_id: str, health: Health) -> None:
        if not self.states or self.states[-1] != health.state:
            self.states.append(health.state)

    def driver_fault(self, device_id: str, kind: str, count: int) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + count

    def driver_crashed(self, device_id: str, error: BaseException) -> None:
        raise AssertionError(f"no driver bug expected: {error!r}")


def test_toledo_silent_link_goes_down_and_recovers(caplog: pytest.LogCaptureFixture) -> None:
    observer = Transitions()

    async def main() -> None:
        sim, driver = await _toledo()
        driver.observer = observer
        try:
            sim.set_weight(5_000)
            await until(lambda: driver.health().state is SensorState.UP, 3)
            await sim.inject("stall", duration_s=1.2)
            await until(lambda: driver.health().state is SensorState.DOWN, 2)
            assert driver.health().faults.get("timeout", 0) >= 1
            await until(lambda: driver.health().state is not SensorState.DOWN, 4)
            assert driver.health().reconnects >= 1
            reading = await driver.next_reading(2)
            assert isinstance(reading, WeightReading) and reading.gross_kg == 5_000
            # Pushed as it happened: what the driver counts, the observer was told.
            assert observer.faults == driver.health().faults
        finally:
            await driver.close()
            await sim.stop()

    with caplog.at_level(logging.WARNING, logger="drivers"):
        run(main())
    # One outage, pushed: the observer (the agent's metrics) writes the one log line per
    # transition, the driver none.
    assert observer.states[-2:] == [SensorState.DOWN, SensorState.DEGRADED], observer.states
    assert observer.states.count(SensorState.DOWN) == 1, observer.states
    assert caplog.records == [], [r.getMessage() for r in caplog.records]


def test_toledo_tcp_serial_server_drop_and_reconnect() -> None:
    async def main() -> None:
        sim, driver = await _toledo("tcp")
        try:
            assert sim.url.startswith("socket://")
            sim.set_weight(7_770)
            await until(lambda: driver.health().state is SensorState.UP, 3)
            await sim.inject("disconnect")
            await until(lambda: driver.health().state is SensorState.DOWN, 2)
            assert driver.health().faults.get("connection", 0) >= 1
            await until(lambda: driver.health().state is SensorState.UP, 4)
            reading = await driver.next_reading(2)
            assert isinstance(reading, WeightReading) and reading.gross_kg == 7_770
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_frozen_stream_stays_connected_but_never_changes() -> None:
    async def main() -> None:
        sim, driver = await _toledo()
        try:
            sim.set_weight(1_000)
            await until(lambda: driver.health().state is SensorState.UP, 3)
            await sim.inject("freeze", duration_s=1.0)
            sim.set_weight(9_000)
            frozen = weights(await collect(driver, 0.3))
            assert frozen and all(r.gross_kg == 1_000 for r in frozen)
            await collect(driver, 0.9)
            after = weights(await collect(driver, 0.3))
            assert after and after[-1].gross_kg == 9_000
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_missing_port_is_down_with_a_clear_error() -> None:
    async def main() -> None:
        driver = create_driver(
            "wb1", "weighbridge.toledo", {"url": "/dev/does-not-exist"}, 200, **FAST
        )
        await driver.open()
        await until(lambda: driver.health().last_error is not None, 2)
        health = driver.health()
        assert health.state is SensorState.DOWN
        assert "does-not-exist" in (health.last_error or "")
        await driver.close()

    run(main())


@pytest.mark.parametrize("mode", ["continuous", "command"])
def test_xk3190(mode: str) -> None:
    async def main() -> None:
        sim = WeighbridgeSimulator(
            "xk3190" if mode == "continuous" else "xk3190-command", rate_hz=20
        )
        url = await sim.start()
        options = {"url": url, "mode": mode, "stable_frames": 3, "poll_ms": 30}
        driver = create_driver("wb1", "weighbridge.xk3190", options, 300, **FAST)
        await driver.open()
        try:
            sim.set_weight(23_960)
            readings = weights(await collect(driver, 0.8))
            assert any(r.stable and r.gross_kg == 23_960 for r in readings), readings[:3]
            # No motion flag in this protocol: a moving weight must still never be stable.
            await sim.inject("unstable", duration_s=0.6, amplitude_d=5)
            await collect(driver, 0.1)
            moving = weights(await collect(driver, 0.4))
            assert moving and not any(r.stable for r in moving)
            await sim.inject("bad_checksum", count=2)
            await until(lambda: driver.health().faults.get("checksum", 0) >= 1, 2)
            if mode == "command":
                # A corrupt reply ends that exchange: the next poll goes out, no timeout.
                await collect(driver, 0.2)
                assert driver.health().faults.get("timeout", 0) == 0
                assert driver.health().connected
                await sim.inject("no_reply", count=1)
                await until(lambda: driver.health().faults.get("timeout", 0) >= 1, 2)
                await until(lambda: driver.health().connected, 3)
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_sics_polling_zero_and_tare() -> None:
    async def main() -> None:
        sim = WeighbridgeSimulator("sics")
        url = await sim.start()
        options = {"url": url, "stable_frames": 3, "poll_ms": 20}
        driver = create_driver("wb1", "weighbridge.sics", options, 300, **FAST)
        await driver.open()
        try:
            sim.set_weight(40, motion=False)
            await until(lambda: driver.health().state is SensorState.UP, 3)
            await driver.zero()  # type: ignore[attr-defined]
            readings = weights(await collect(driver, 0.3))
            assert readings[-1].gross_kg == 0
            sim.set_weight(18_040, motion=True)
            moving = weights(await collect(driver, 0.3))
            # A poll answered just before the change may still carry the old weight.
            moving = [r for r in moving if r.gross_kg != 0]
            assert moving and all(r.motion and not r.stable for r in moving)
            sim.set_weight(18_040)
            settled = weights(await collect(driver, 0.4))
            assert settled[-1].stable and settled[-1].gross_kg == 18_000
            await driver.tare()  # type: ignore[attr-defined]
            assert sim.tare_kg == 18_000
            probe = await driver.probe()
            assert "LANE-SIM WB" in probe.identity["I2"]
            sim.set_weight(90_000)
            over = weights(await collect(driver, 0.3))
            assert over and all(r.overload and not r.stable for r in over[1:])
            await sim.inject("no_reply", count=1)
            await until(lambda: driver.health().faults.get("timeout", 0) >= 1, 2)
            await until(lambda: driver.health().connected, 3)
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_bytes_without_valid_frames_is_down_not_up() -> None:
    """A wrong baud rate or 7E1/8N1 mix-up: data flows, no frame is valid."""

    async def main() -> None:
        sim, driver = await _toledo()
        try:
            sim.set_weight(3_000)
            await until(lambda: driver.health().state is SensorState.UP, 3)
            await sim.inject("bad_checksum", count=20)  # 1 s of corrupt frames at 20 Hz
            await until(lambda: driver.health().state is SensorState.DOWN, 2)
            assert "no valid frame" in (driver.health().last_error or "")
            assert driver.health().faults["checksum"] >= 5
            await until(lambda: driver.health().state is not SensorState.DOWN, 4)
        finally:
            await driver.close()
            await sim.stop()

    run(main())


def test_toledo_power_up_not_zeroed_until_zero_command() -> None:
    async def main() -> None:
        sim, driver = await _toledo(commands=True)
        try:
            sim.not_zeroed = True
            sim.set_weight(60)  # drift on an empty bridge
            flagged = weights(await collect(driver, 0.3))
            assert flagged and all(r.not_zeroed for r in flagged)
            await driver.zero()  # type: ignore[attr-defined]
            await collect(driver, 0.2)
            after = weights(await collect(driver, 0.3))
            assert after and not after[-1].not_zeroed and after[-1].gross_kg == 0
        finally:
            await driver.close()
            await sim.stop()

    run(main())
