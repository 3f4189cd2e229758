"""Helpers for driver tests: run a coroutine with a hard timeout, wait for conditions."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from drivers.base import Driver
from drivers.readings import Reading

T = TypeVar("T")


def run(coro: Coroutine[Any, Any, T], timeout_s: float = 30.0) -> T:
    async def bounded() -> T:
        async with asyncio.timeout(timeout_s):
            return await coro

    return asyncio.run(bounded())


async def until(
    predicate: Callable[[], bool | Awaitable[bool]], timeout_s: float = 5.0, step_s: float = 0.02
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        result = predicate()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout_s} s")
        await asyncio.sleep(step_s)


async def collect(driver: Driver, seconds: float) -> list[Reading]:
    """Every reading the driver emits during ``seconds``."""
    out: list[Reading] = []
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        try:
            out.append(await driver.next_reading(left))
        except TimeoutError:
            break
    return out
