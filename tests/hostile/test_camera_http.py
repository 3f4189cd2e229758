"""The camera drivers against a hostile HTTP camera on a real socket (tests/hostile/http_peer.py).

Each test plays one attack from issue 22 and asserts what the driver must do: refuse it with
a clear, counted fault, stay within its memory and thread budget, never send the password in
clear, and recover once the camera turns good.
"""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.base import Driver, SensorState
from drivers.readings import Frame, ThermalRegions
from drivers.registry import create_driver
from tests.drivers.conftest import collect, run, until
from tests.hostile.http_peer import HostilePeer

FAST = {"backoff_min_s": 0.05, "backoff_max_s": 0.2, "degraded_hold_s": 0.8}
LOGIN = {"username": "admin", "password": "s3cret-Pa55"}
RECOVERY_S = 10.0


@pytest.fixture
def peer() -> Iterator[HostilePeer]:
    p = HostilePeer().start()
    yield p
    p.stop()


def capture_threads(device_id: str = "cam1") -> int:
    return sum(1 for t in threading.enumerate() if t.name == f"capture:{device_id}")


def snapshot(peer: HostilePeer, timeout_ms: int = 1000, **options: Any) -> Driver:
    return create_driver(
        "cam1", "anpr.http", {"url": peer.url, "interval_ms": 50, **options}, timeout_ms, **FAST
    )


async def states_until_down(driver: Driver, timeout_s: float) -> list[SensorState]:
    seen: list[SensorState] = []

    def watch() -> bool:
        state = driver.health().state
        if not seen or seen[-1] is not state:
            seen.append(state)
        return state is SensorState.DOWN

    await until(watch, timeout_s, step_s=0.01)
    return seen


# -- finding 3: decompression bombs --------------------------------------------------------


def test_a_jpeg_bomb_is_refused_before_decoding(peer: HostilePeer) -> None:
    peer.mode = "bomb"

    async def main() -> None:
        driver = snapshot(peer)
        await driver.open()
        try:
            await until(lambda: driver.health().faults.get("image_too_large", 0) >= 2, 10)
            assert not [r for r in await collect(driver, 0.3) if isinstance(r, Frame)]
            error = driver.health().last_error or ""
            assert "16000x16000" in error, error
            assert driver.health().state is not SensorState.UP
        finally:
            await driver.close()

    run(main())


def test_max_pixels_is_configurable(peer: HostilePeer) -> None:
    async def main() -> None:
        driver = snapshot(peer, max_pixels=64 * 47)  # the peer's frames are 64x48
        await driver.open()
        try:
            await until(lambda: driver.health().faults.get("image_too_large", 0) >= 1, 10)
            assert "max_pixels 3008" in (driver.health().last_error or "")
            assert not [r for r in await collect(driver, 0.3) if isinstance(r, Frame)]
        finally:
            await driver.close()

    run(main())


# -- finding 8: no usable frame is DEGRADED, then DOWN, with the reason ---------------------


@pytest.mark.parametrize("attack", ["bomb", "stall_body"])
def test_a_camera_delivering_nothing_usable_goes_down_and_recovers(
    peer: HostilePeer, attack: str
) -> None:
    async def main() -> None:
        driver = snapshot(peer, timeout_ms=1500)
        await driver.open()
        try:
            await until(lambda: driver.health().state is SensorState.UP, RECOVERY_S)
            peer.mode = attack
            seen = await states_until_down(driver, 15)
            error = driver.health().last_error or ""
            if attack == "bomb":
                assert SensorState.DEGRADED in seen, seen
                assert "no usable frame" in error and "image_too_large" in error, error
            else:
                assert "timeout" in error, error
            peer.mode = "good"
            await until(lambda: driver.health().state is SensorState.UP, RECOVERY_S)
        finally:
            await driver.close()

    run(main(), timeout_s=60)


def test_isapi_thermal_stalled_mid_response_goes_down_and_recovers(peer: HostilePeer) -> None:
    peer.mode = "thermal"

    async def main() -> None:
        options = {"base_url": peer.base_url, "interval_ms": 100}
        driver = create_driver("th1", "thermal.isapi", options, 800, **FAST)
        await driver.open()
        try:
            assert isinstance(await driver.next_reading(5), ThermalRegions)
            for attack in ("stall_body", "trickle_body"):
                peer.mode = attack
                await until(lambda: driver.health().state is SensorState.DOWN, 10)
                assert "timeout" in (driver.health().last_error or "")
                peer.mode = "thermal"
                await until(lambda: driver.health().state is SensorState.UP, RECOVERY_S)
        finally:
            await driver.close()

    run(main(), timeout_s=60)


# -- finding 4: every HTTP exchange is bounded ----------------------------------------------


@pytest.mark.parametrize("attack", ["huge", "huge_close", "chunked"])
def test_an_endless_or_huge_body_is_cut_at_the_limit(peer: HostilePeer, attack: str) -> None:
    peer.mode = attack

    async def main() -> None:
        driver = snapshot(peer, timeout_ms=5000, max_body_bytes=1024 * 1024)
        await driver.open()
        try:
            await until(lambda: driver.health().faults.get("http_limit", 0) >= 2, 20)
            error = driver.health().last_error or ""
            assert "max_body_bytes" in error and "1048576" in error, error
            peer.mode = "good"
            await until(lambda: driver.health().state is SensorState.UP, RECOVERY_S)
        finally:
            await driver.close()

    run(main(), timeout_s=60)


@pytest.mark.parametrize(
    ("attack", "fault", "reason"),
    [
        ("many_headers", "http_limit", "max_headers"),
        ("huge_headers", "http_limit", "header block over"),
        ("bad_digest", "protocol", "unusable digest challenge"),
    ],
)
def test_hostile_headers_are_clear_faults_not_driver_bugs(
    peer: HostilePeer, attack: str, fault: str, reason: str
) -> None:
    peer.mode = attack

    async def main() -> None:
        driver = snapshot(peer, **LOGIN)
        await driver.open()
        try:
            await until(lambda: driver.health().faults.get(fault, 0) >= 2, 10)
            assert "driver_bug" not in driver.health().faults
            assert reason in (driver.health().last_error or "")
            peer.mode = "good"
            await until(lambda: driver.health().state is SensorState.UP, RECOVERY_S)
        finally:
            await driver.close()

    run(main())


@pytest.mark.parametrize("kind", ["anpr.http", "anpr.stream"])
def test_a_trickling_camera_leaks_no_capture_threads(peer: HostilePeer, kind: str) -> None:
    """Finding 9: a deadline on every capture attempt, at most one worker per camera."""
    peer.mode = "trickle_headers"
    options: dict[str, Any] = {"url": peer.url, "open_timeout_ms": 300}
    if kind == "anpr.stream":
        options["reader"] = "http"

    async def main() -> None:
        driver = create_driver("cam1", kind, options, 300, **FAST)
        most = 0

        def reconnected() -> bool:
            nonlocal most
            most = max(most, capture_threads())
            return driver.health().reconnects >= 8

        await driver.open()
        try:
            await until(reconnected, 60, step_s=0.005)
            assert most == 1, f"{most} capture threads at once"
            assert driver.health().faults.get("timeout", 0) >= 8
            assert (driver.health().last_error or "").startswith("timeout: ")
        finally:
            await driver.close()
        await until(lambda: capture_threads() == 0, 5)

    run(main(), timeout_s=90)


# -- finding 5: no Basic-auth downgrade -----------------------------------------------------


@pytest.mark.parametrize("kind", ["anpr.http", "anpr.stream", "thermal.isapi"])
def test_a_basic_challenge_never_gets_the_password(peer: HostilePeer, kind: str) -> None:
    peer.mode = "basic"
    if kind == "thermal.isapi":
        options: dict[str, Any] = {"base_url": peer.base_url, **LOGIN}
    else:
        options = {"url": peer.url, **LOGIN}
        if kind == "anpr.stream":
            options["reader"] = "http"

    async def main() -> None:
        driver = create_driver("cam1", kind, options, 1000, **FAST)
        await driver.open()
        try:
            await until(lambda: driver.health().faults.get("auth_downgrade", 0) >= 2, 10)
            health = driver.health()
            assert health.state is SensorState.DOWN
            assert "Basic" in (health.last_error or "") and "not sent" in (health.last_error or "")
        finally:
            await driver.close()
        assert len(peer.heads) >= 2
        assert peer.authorizations() == []  # no Authorization header at all, so no password

    run(main())


def test_basic_auth_when_the_config_says_so(peer: HostilePeer) -> None:
    peer.require_basic = (LOGIN["username"], LOGIN["password"])

    async def main() -> None:
        driver = snapshot(peer, auth="basic", **LOGIN)
        await driver.open()
        try:
            assert isinstance(await driver.next_reading(5), Frame)
        finally:
            await driver.close()
        assert all(a.startswith("Basic ") for a in peer.authorizations())

    run(main())


# -- memory under the bombs: a child process runs the driver, the peer stays here -----------


@pytest.mark.parametrize("attack", ["bomb", "huge_close", "chunked"])
def test_peak_rss_under_each_bomb_stays_under_1_gib(peer: HostilePeer, attack: str) -> None:
    peer.mode = attack
    out = subprocess.run(
        [sys.executable, "-m", "tests.hostile.camera_rss", peer.url, "3"],
        capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    result = json.loads(out.stdout.strip().splitlines()[-1])
    print(attack, result)
    assert result["frames"] == 0 and sum(result["faults"].values()) >= 3, result
    assert result["peak_rss_mib"] < 1024, result


def test_the_peer_really_is_hostile(peer: HostilePeer) -> None:
    """The RSS probe sees the peer's bombs (guards the test above against a tame peer)."""
    import urllib.request

    peer.mode = "bomb"
    with urllib.request.urlopen(peer.url, timeout=5) as reply:
        body = reply.read()
    assert len(body) == 631 and body[:2] == b"\xff\xd8"
    peer.mode = "good"
    with urllib.request.urlopen(peer.url, timeout=5) as reply:
        assert reply.headers["Content-Type"] == "image/jpeg"
