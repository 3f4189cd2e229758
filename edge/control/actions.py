"""What a technician may make a device do: zero/tare a scale, open/close the barrier.

Used by the agent's control server (on the driver the agent holds) and by `lane diag` when
no agent runs (on a driver it opened itself).
"""

from __future__ import annotations

import asyncio

from drivers.base import Driver
from drivers.errors import DriverError, UnsupportedCommandError
from edge.errors import DeviceError

# What `barrier open|close` writes to the lane I/O output named "barrier".
BARRIER_OUTPUT = "barrier"
ACTIONS = ("zero", "tare", "open", "close")


async def run_action(driver: Driver, action: str) -> str:
    """Returns what was done, in words. ``UnsupportedCommandError``: the device cannot do
    it (or no such action); ``DeviceError``: it could but did not."""
    try:
        if action in ("zero", "tare"):
            method = getattr(driver, action, None)  # a public driver method, scales only
            if method is None:
                raise UnsupportedCommandError(f"{driver.device_id} ({driver.kind}) is not a scale")
            async with asyncio.timeout(max(2.0, 2 * driver.timeout_s)):
                await method()
            return f"{action} sent to {driver.device_id}"
        if action in ("open", "close"):
            set_output = getattr(driver, "set_output", None)
            if set_output is None:
                raise UnsupportedCommandError(
                    f"{driver.device_id} ({driver.kind}) is not a lane I/O module"
                )
            async with asyncio.timeout(max(2.0, 2 * driver.timeout_s)):
                await set_output(BARRIER_OUTPUT, action == "open")
            return f"barrier output {'on (open)' if action == 'open' else 'off (closed)'}"
    except UnsupportedCommandError:
        raise
    except (DriverError, OSError, TimeoutError) as exc:
        raise DeviceError(
            f"{driver.device_id}: {action} failed: {exc or type(exc).__name__}"
        ) from None
    raise UnsupportedCommandError(f"unknown action {action!r}; one of {', '.join(ACTIONS)}")
