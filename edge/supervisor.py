"""The agent's supervision tree: every task and thread it starts, in one place.

A *part* is one long-running task (a device pump, a recogniser, fusion, telemetry, the
command worker ...) or one thread (the MQTT publisher, the metrics server). Each is
registered here with

- its **policy**: ``RESTART`` (restarted with capped exponential backoff: the failure is
  local, a restart may fix it and the rest of the lane goes on) or ``FATAL`` (the agent stops
  in order and exits 1, so systemd restarts it: the part owns state a restart in place cannot
  be trusted to rebuild, such as fusion's open crossing or the outbox writer's held events);
- its **liveness**: a task is alive until it ends; a thread is asked (``alive``); a part
  that promises to make progress (``beat_s``) calls :meth:`Supervisor.beat` at least that
  often, also when it is idle by design, and is *stalled* when it falls silent;
- its **cleanup**: :meth:`Supervisor.aclose` cancels what is left, in reverse start order.

An unexpected exception is logged once with its traceback (a part that fails the same way
again gets a one-line note, rate-limited by :func:`edge.logs.worth_logging`), counted in
``lane_stage_failures_total{part}``, and, for a restart, in
``lane_supervisor_restarts_total{part}``. A part's own expected errors (a storage fault, one
bad frame) are handled inside the part and never reach this module.

Why not a bare :class:`asyncio.TaskGroup`: a task group cancels every task when one fails,
which is only the ``FATAL`` half; restartable parts and the ordered shutdown (sources end the
crossing in progress before the writer is stopped) need the per-part policy kept here.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
import traceback
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol

from edge.logs import worth_logging
from edge.notify import Heartbeats

log = logging.getLogger(__name__)

RESTART_MIN_S = 0.5
RESTART_MAX_S = 30.0
# A part that ran this long before failing starts its backoff again from the minimum.
RESTART_RESET_S = 60.0
# A part idle by design (no vehicle, no command) still beats this often: well inside the
# shortest watchdog period the tests use (1 s).
IDLE_BEAT_S = 0.25


class Policy(StrEnum):
    RESTART = "restart"
    FATAL = "fatal"


class FailureCounter(Protocol):
    """Where failures and restarts are counted (``edge.metrics.LaneMetrics``)."""

    def stage_failed(self, part: str) -> None: ...

    def part_restarted(self, part: str) -> None: ...


class Uncounted:
    """A ``FailureCounter`` that counts nothing (an acquisition without an agent)."""

    def stage_failed(self, part: str) -> None:
        pass

    def part_restarted(self, part: str) -> None:
        pass


@dataclass(slots=True)
class Part:
    name: str
    policy: Policy
    may_finish: bool = False
    task: asyncio.Task[None] | None = None
    alive: Callable[[], bool] | None = None  # for threads
    failures: int = 0
    restarts: int = 0
    last_error: str | None = None
    _signature: str | None = field(default=None, repr=False)

    def running(self) -> bool:
        if self.task is not None:
            return not self.task.done() or (
                self.may_finish and not self.task.cancelled() and self.task.exception() is None
            )
        return self.alive() if self.alive is not None else True


class Supervisor:
    """Owns the agent's parts; ``on_fatal(part, exc)`` is called once, on the loop."""

    def __init__(
        self,
        *,
        heartbeats: Heartbeats,
        counter: FailureCounter,
        on_fatal: Callable[[str, BaseException], None],
        stall_s: float = 30.0,
        restart_min_s: float = RESTART_MIN_S,
        restart_max_s: float = RESTART_MAX_S,
    ) -> None:
        self.heartbeats = heartbeats
        self.stall_s = stall_s
        self._counter = counter
        self._on_fatal = on_fatal
        self._restart_min_s = restart_min_s
        self._restart_max_s = restart_max_s
        self._parts: dict[str, Part] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closing = False
        self.fatal: tuple[str, BaseException] | None = None

    # --- registering ----------------------------------------------------------------------

    def spawn(
        self,
        name: str,
        factory: Callable[[], Awaitable[None]],
        *,
        policy: Policy,
        progress: bool = False,
        may_finish: bool = False,
    ) -> Part:
        """Run ``factory()`` as the part ``name``, under its policy, until cancelled.

        ``progress``: the part calls ``beat(name)`` at least every ``stall_s``, idle or not
        (its stage is stalled past it); otherwise liveness only. ``may_finish``: returning
        is the end of its work (a scripted source), not a failure.
        """
        self._loop = asyncio.get_running_loop()
        if name in self._parts and self._parts[name].running():
            raise ValueError(f"part {name} is already running")
        part = Part(name, policy, may_finish=may_finish)
        self._parts[name] = part
        part.task = asyncio.create_task(self._run(part, factory), name=name)
        self.heartbeats.register(
            name,
            max_silence_s=self.stall_s if progress else math.inf,
            alive=part.running,
        )
        return part

    def watch_thread(
        self,
        name: str,
        *,
        alive: Callable[[], bool],
        policy: Policy = Policy.FATAL,
        beat: Callable[[], float] | None = None,
    ) -> Part:
        """A thread the agent started (or a server whose liveness ``alive`` reports); a
        thread reports the exception that ends it with :meth:`thread_failed`.

        ``beat`` returns when the thread last made progress (``time.monotonic``), if it
        stamps that itself."""
        self._loop = asyncio.get_running_loop()
        part = Part(name, policy, alive=alive)
        self._parts[name] = part
        self.heartbeats.register(
            name,
            max_silence_s=self.stall_s if beat is not None else math.inf,
            alive=part.running,
            read_beat=beat,
        )
        return part

    def beat(self, name: str) -> None:
        """The part made progress (cheap; any thread)."""
        self.heartbeats.beat(name)

    async def idle(self, name: str, seconds: float) -> None:
        """Sleep ``seconds`` as the part ``name``, beating: idle by design, not wedged."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            self.heartbeats.beat(name)
            await asyncio.sleep(min(IDLE_BEAT_S, left))
        self.heartbeats.beat(name)

    def thread_failed(self, name: str, exc: BaseException) -> None:
        """Called by a watched thread with the exception that ends it (any thread)."""
        loop = self._loop
        if loop is None or loop.is_closed():
            log.critical("thread %s failed after the agent stopped", name, exc_info=exc)
            return
        try:
            loop.call_soon_threadsafe(self._thread_failed, name, exc)
        except RuntimeError:  # the loop closed meanwhile
            log.critical("thread %s failed while the agent stopped", name, exc_info=exc)

    # --- reading --------------------------------------------------------------------------

    def parts(self) -> dict[str, dict[str, object]]:
        """Each part's policy, state and failures (for `lane diag`)."""
        return {
            p.name: {
                "policy": p.policy.value,
                "running": p.running(),
                "failures": p.failures,
                "restarts": p.restarts,
                "last_error": p.last_error,
            }
            for p in self._parts.values()
        }

    # --- stopping -------------------------------------------------------------------------

    async def stop(self, *names: str) -> None:
        """Cancel these parts and wait for them; their stages are no longer watched."""
        tasks = []
        for name in names:
            part = self._parts.pop(name, None)
            self.heartbeats.unregister(name)
            if part is not None and part.task is not None:
                part.task.cancel()
                tasks.append(part.task)
        await asyncio.gather(*tasks, return_exceptions=True)

    async def aclose(self) -> None:
        """Cancel every part still running, the last started first."""
        self._closing = True
        await self.stop(*reversed(list(self._parts)))

    # --- inside -------------------------------------------------------------------------

    async def _run(self, part: Part, factory: Callable[[], Awaitable[None]]) -> None:
        attempt = 0
        while True:
            started = time.monotonic()
            try:
                await factory()
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                error: BaseException = exc
            else:
                if part.may_finish:
                    return
                error = RuntimeError(f"part {part.name} returned, it should run until stopped")
            self._failed(part, error)
            if part.policy is Policy.FATAL:
                self._fatal(part, error)
                return
            if time.monotonic() - started >= RESTART_RESET_S:
                attempt = 0
            delay = min(self._restart_max_s, self._restart_min_s * (2**attempt))
            attempt = min(attempt + 1, 16)
            part.restarts += 1
            self._counter.part_restarted(part.name)
            log.warning("restarting %s in %.1f s (restart %d)", part.name, delay, part.restarts)
            await self.idle(part.name, delay)  # waiting to restart is not a stall

    def _thread_failed(self, name: str, exc: BaseException) -> None:
        part = self._parts.get(name)
        if part is None:
            log.critical("unregistered thread %s failed", name, exc_info=exc)
            return
        self._failed(part, exc)
        if part.policy is Policy.FATAL:
            self._fatal(part, exc)

    def _failed(self, part: Part, exc: BaseException) -> None:
        part.failures += 1
        part.last_error = f"{type(exc).__name__}: {exc}"
        self._counter.stage_failed(part.name)
        signature = "".join(traceback.format_exception_only(exc))
        what = (
            "the agent stops (exit 1; systemd restarts it)"
            if part.policy is Policy.FATAL
            else "it is restarted"
        )
        if signature != part._signature:
            part._signature = signature
            log.error("%s failed, %s: %r", part.name, what, exc, exc_info=exc)
        elif worth_logging(part.failures):
            log.error(
                "%s failed again the same way (%d failures): %s",
                part.name,
                part.failures,
                part.last_error,
            )

    def _fatal(self, part: Part, exc: BaseException) -> None:
        if self.fatal is not None or self._closing:
            return
        self.fatal = (part.name, exc)
        self._on_fatal(part.name, exc)


LOOP_LAG_PROBE_S = 0.05


async def probe_loop_lag(
    observe: Callable[[float], None], every_s: float = LOOP_LAG_PROBE_S
) -> None:
    """Sleep ``every_s`` again and again; ``observe`` how late each wake-up came.

    A wake-up is late by the time the loop spent in a callback that did not yield (an fsync,
    a blocking read, pixel work on the loop): the loop lag every other part suffers.
    """
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + every_s
        await asyncio.sleep(every_s)
        observe(max(0.0, loop.time() - due))
