"""Helpers for driver tests: run a coroutine with a hard timeout, wait for conditions."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from drivers.base import Driver
from drivers.readings import Reading

T = TypeVar("T")

# A wait gives up after its timeout times this. A timeout bounds a test that would hang; it
# asserts nothing about speed, and the suite must pass on a machine loaded by two CPU burners
# (issue 21, item 10): there a device answers, and a condition comes true, several times later.
PATIENCE = 5.0


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout_s * PATIENCE):
            return await coro

    return asyncio.run(bounded())


async def until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout_s: float = 5.0, step_s: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout_s * PATIENCE
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s * PATIENCE:g} s")
        await asyncio.sleep(step_s)


async def collect_until(
    driver: Driver, done: Callable[[list[Reading]], bool], timeout_s: float = 10.0
) -> list[Reading]:
    """Readings until ``done(readings)`` holds; AssertionError after ``timeout_s`` (patient)."""
    out: list[Reading] = []
    deadline = time.monotonic() + timeout_s * PATIENCE
    while not done(out):
        left = deadline - time.monotonic()
        if left <= 0:
            raise AssertionError(f"readings not as expected within {timeout_s * PATIENCE:g} s")
        with contextlib.suppress(TimeoutError):
            out.append(await driver.next_reading(left))
    return out


async def collect(driver: Driver, seconds: float) -> list[Reading]:
    """Every reading the driver emits during ``seconds`` (a window: for what must *not*
    come, or a count that does not depend on speed; else ``collect_until``)."""
    out: list[Reading] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(await driver.next_reading(left))
        except TimeoutError:
            break
    return out
