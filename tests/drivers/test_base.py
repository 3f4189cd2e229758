"""Supervision shared by every driver: backoff, logging once, bugs and config errors."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import time
from pathlib import Path

import pytest

from drivers.base import Driver, Health, SensorState
from drivers.errors import DriverConfigError
from drivers.options import StrictOptions
from drivers.registry import create_driver
from drivers.transport import SerialLink
from tests.drivers.conftest import run, until


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_refused_connection_backs_off_capped_and_logs_once(
    caplog: pytest.LogCaptureFixture,
) -> None:
    told: list[tuple[str, object]] = []

    class Observer:
        def driver_health(self, device_id: str, health: Health) -> None:
            told.append(("health", health.state))

        def driver_fault(self, device_id: str, kind: str, count: int) -> None:
            told.append(("fault", kind))

        def driver_crashed(self, device_id: str, error: BaseException) -> None:
            told.append(("crashed", error))

    async def main() -> None:
        options = {"host": "127.0.0.1", "port": closed_port()}
        driver = create_driver("rpm", "rpm.rapiscan", options, 300, backoff_min_s=0.05,
                               backoff_max_s=0.2)  # fmt: skip
        driver.observer = Observer()
        await driver.open()
        await asyncio.sleep(1.5)
        health = driver.health()
        await driver.close()
        # 0.05, 0.1, 0.2, 0.2, ... : about 8 attempts in 1.5 s; uncapped doubling gives 5.
        assert 6 <= health.reconnects <= 12, health
        assert health.state is SensorState.DOWN and health.faults["connection"] >= 6
        assert "cannot connect" in (health.last_error or "")

        # Every failed attempt was pushed as a fault; the device never came up.
        faults = [what for kind, what in told if kind == "fault"]
        assert faults == ["connection"] * health.faults["connection"], told
        assert {what for kind, what in told if kind == "health"} == {SensorState.DOWN}

    with caplog.at_level(logging.WARNING, logger="drivers"):
        run(main())
    # The observer writes the one line per transition (edge.metrics); the driver, none
    # per retry.
    assert caplog.records == [], [r.getMessage() for r in caplog.records]


class _Options(StrictOptions):
    mode: str


class _Buggy(Driver):
    kind = "test.buggy"

    async def _connect(self) -> None:
        if self.options.mode == "config":  # type: ignore[attr-defined]
            raise DriverConfigError("port 0 is not a port")

    async def _session(self) -> None:
        raise ZeroDivisionError("driver bug")

    async def _disconnect(self) -> None:
        pass


def test_driver_bug_is_counted_retried_and_logged_once(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        driver = _Buggy("x", _Options(mode="bug"), backoff_min_s=0.01, backoff_max_s=0.02)
        await driver.open()
        await until(lambda: driver.health().faults.get("driver_bug", 0) >= 5, 3)
        await driver.close()

    with caplog.at_level(logging.WARNING, logger="drivers"):
        run(main())
    assert len([r for r in caplog.records if "unexpected driver error" in r.getMessage()]) == 1


def test_config_error_stops_without_retrying() -> None:
    async def main() -> None:
        driver = _Buggy("x", _Options(mode="config"), backoff_min_s=0.01)
        await driver.open()
        await asyncio.sleep(0.3)
        health = driver.health()
        await driver.close()
        assert health.state is SensorState.DOWN
        assert health.reconnects == 0 and health.faults == {"config": 1}
        assert "port 0" in (health.last_error or "")

    run(main())


def test_a_stop_is_not_lost_when_bytes_arrive_with_it() -> None:
    """Python 3.11's asyncio.wait_for returns the data and drops a cancel that lands in the
    same loop turn (cpython#86296): a driver's read loop then outlives close() and the agent
    hangs on SIGTERM. Reads use asyncio.timeout, which keeps the cancel."""

    async def main() -> None:
        link = SerialLink("loop://")
        await link.open()

        async def read_forever() -> None:
            while True:
                await link.read(5.0)

        try:
            for _ in range(10):
                task = asyncio.create_task(read_forever())
                await asyncio.sleep(0.01)  # waiting for bytes
                link._queue.put_nowait(b"\x02")  # bytes arrive in the turn the stop comes
                task.cancel()
                done, _ = await asyncio.wait({task}, timeout=1.0)
                task.cancel()
                assert done and task.cancelled(), "the cancel was swallowed: the loop read on"
        finally:
            await link.close()

    run(main())


class _Deaf(_Buggy):
    """A session whose library swallows the first cancel, as 3.11's wait_for can."""

    kind = "test.deaf"
    swallowed = 0

    async def _session(self) -> None:
        while True:
            try:
                await asyncio.sleep(0.01)
            except asyncio.CancelledError:
                if self.swallowed:
                    raise
                self.swallowed += 1


def test_close_cancels_again_when_a_cancel_is_swallowed(caplog: pytest.LogCaptureFixture) -> None:
    async def main() -> None:
        driver = _Deaf("x", _Options(mode="ok"))
        await driver.open()
        await asyncio.sleep(0.05)
        started = time.monotonic()
        await driver.close()
        assert driver.swallowed == 1 and time.monotonic() - started < 2.0
        assert driver._task is None

    with caplog.at_level(logging.WARNING, logger="drivers"):
        run(main(), timeout_s=10)
    assert any("took 2 cancels" in r.getMessage() for r in caplog.records)


def test_leaky_bucket_allows_a_burst_then_paces_to_its_rate() -> None:
    from drivers.base import LeakyBucket

    bucket = LeakyBucket(1000.0)  # 1000 units/s, a burst of 1000
    assert bucket.spend(900) == 0.0
    pause = bucket.spend(600)  # 1500 owed (less a few microseconds drained): 0.5 s over
    assert 0.45 < pause <= 0.5
    with pytest.raises(ValueError):
        LeakyBucket(0)
    with pytest.raises(ValueError):
        _Buggy("x", _Options(mode="bug"), work_share=1.5)


def test_a_kind_without_a_staleness_rule_is_never_stale() -> None:
    driver = _Buggy("x", _Options(mode="bug"))
    driver._last_useful_mono -= 3600
    assert driver.stale_after_s is None and driver._stale_for(time.monotonic()) is None
    driver._check_useful()  # no rule: never raises


def test_a_serial_link_whose_target_is_gone_says_so(tmp_path: Path) -> None:
    """A config copied from a stopped `lane sim` names its pty link: it must not open."""
    from drivers.errors import DriverConnectionError

    gone = tmp_path / "sim-lane.run" / "scale.tty"
    gone.parent.mkdir()
    gone.symlink_to(tmp_path / "no-such-pty")
    for path, said in ((gone, "which is gone"), (tmp_path / "absent", "does not exist")):
        with pytest.raises(DriverConnectionError, match=said):
            asyncio.run(SerialLink(str(path)).open())


def test_one_health_enum_from_the_driver_to_the_wire() -> None:
    """The driver's state is the wire's (edge.events.DeviceStatus), with no mapping between;
    the probe JSON of `lane diag` keeps its own lowercase words."""
    from datetime import UTC, datetime

    from edge.events import DeviceStatus

    now = datetime.now(UTC)
    for state, probe_word in [
        (SensorState.UP, "up"),
        (SensorState.DEGRADED, "degraded"),
        (SensorState.DOWN, "down"),
    ]:
        health = Health(state, state != SensorState.DOWN, None, {}, None, 0, 0)
        status = DeviceStatus(device="scale", kind="k", state=health.state, since=now, produced=now)
        assert json.loads(status.to_json())["state"] == state.name  # UP, DEGRADED, DOWN
        assert health.as_dict()["state"] == probe_word
