"""The camera drivers against a hostile HTTP camera on a real socket (tests/hostile/http_peer.py).

Each test plays one attack from issue 22 and asserts what the driver must do: refuse it with
a clear, counted fault, stay within its memory and thread budget, never send the password in
clear, and recover once the camera turns good.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest

from drivers.base import Driver, HealthState
from drivers.readings import Frame
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


async def states_until_down(driver: Driver, timeout_s: float) -> list[HealthState]:
    seen: list[HealthState] = []

    def watch() -> bool:
        state = driver.health().state
        if not seen or seen[-1] is not state:
            seen.append(state)
        return state is HealthState.DOWN

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
            assert driver.health().state is not HealthState.UP
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
