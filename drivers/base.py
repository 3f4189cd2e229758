"""The one interface every device driver implements, and the supervision they share.

A driver is opened once and then keeps itself connected: a supervisor task connects,
runs a session that pushes typed readings into a bounded queue, and on a transient error
reconnects with capped exponential backoff. Health is UP (connected, no recent fault),
DEGRADED (connected, but faults within ``degraded_hold_s``, or no *useful* reading for
``stale_after_s``) or DOWN (not connected). A device going down is logged once, and once
when it returns, never once per retry; faults are logged at most once per
:data:`FAULT_LOG_INTERVAL_S` per device, as a summary of their counts.

Health counts useful readings, not bytes: a peer that sends only blank lines, ignored line
types or garbage is alive on the wire but delivers nothing. A kind that sets
``stale_after_s`` is DEGRADED after that long without a useful reading and, through
``_check_useful()`` in its session, DOWN (a reconnect) after twice that.

One device must not starve the others on the one event loop: sessions call
``await self._paced(started, size)`` after each chunk of reading work. It always yields to
the loop, and once a device's parsing exceeds ``work_share`` of the loop, or its input
``max_read_bytes_per_s``, averaged over about a second, it pauses that device's reading
(the kernel's buffers then push back on the peer) and counts a ``flood`` fault.

Subclasses implement ``_connect``, ``_session`` and ``_disconnect``; ``_session`` calls
``_emit`` for readings and ``_fault`` for faults it survives (bad frames), and raises a
transient :class:`~drivers.errors.DriverError` for faults that need a reconnect.

Whoever runs the driver learns of it through ``observer`` (a :class:`DriverObserver`), pushed
as it happens: every connect and disconnect, every counted fault, and a session that raised
an unexpected exception (a driver bug, restarted with backoff). Nothing has to poll
``health()`` to see an outage shorter than its polling period, and the one log line per
health transition is the observer's, not the driver's.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Protocol

from pydantic import BaseModel, SecretStr

from drivers import text
from drivers.codec import printable
from drivers.errors import DriverError, DriverProtocolError
from drivers.health import Health, SensorState
from drivers.readings import Reading

log = logging.getLogger("drivers")

CANCEL_ATTEMPTS = 10
CANCEL_WAIT_S = 0.5
FAULT_LOG_INTERVAL_S = 30.0
WORK_WINDOW_S = 1.0


@dataclass(slots=True)
class Probe:
    """What ``lane diag`` shows for a device: identity, a few values, the last raw frames."""

    device_id: str
    kind: str
    options: dict[str, Any]
    health: dict[str, Any]
    identity: dict[str, Any] = field(default_factory=dict)
    values: list[str] = field(default_factory=list)
    raw_frames: list[dict[str, str]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class DriverObserver(Protocol):
    """Told by the driver as things happen (on the event loop, from the driver's task)."""

    def driver_health(self, device_id: str, health: Health) -> None:
        """The device connected or was lost, or a fault may have changed its state."""

    def driver_fault(self, device_id: str, kind: str, count: int) -> None:
        """``count`` more faults of ``kind`` (what ``Health.faults`` counts)."""

    def driver_crashed(self, device_id: str, error: BaseException) -> None:
        """The session raised an unexpected exception; it is restarted with backoff."""


_CLOSED = object()


class LeakyBucket:
    """Spending that drains at ``rate`` per second, with a burst of ``rate * window_s``.

    :meth:`spend` answers how long to pause so that the average stays at ``rate``: used for
    a device's loop time (seconds of work per second) and its bytes per second.
    """

    def __init__(self, rate: float, *, window_s: float = WORK_WINDOW_S) -> None:
        if rate <= 0:
            raise ValueError("rate must be positive")
        self.rate = rate
        self.burst = rate * window_s
        self._debt = 0.0
        self._at = time.monotonic()

    def spend(self, amount: float) -> float:
        now = time.monotonic()
        self._debt = max(0.0, self._debt - (now - self._at) * self.rate) + max(0.0, amount)
        self._at = now
        excess = self._debt - self.burst
        return excess / self.rate if excess > 0 else 0.0


def _redacted(options: BaseModel) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in options:
        if isinstance(value, SecretStr) or key in {"password", "secret", "token"}:
            out[key] = "***"
        elif isinstance(value, str) and "@" in value and "://" in value:
            scheme, rest = value.split("://", 1)
            out[key] = f"{scheme}://***@{rest.split('@', 1)[1]}"
        else:
            out[key] = value
    return out


class Driver(ABC):
    """Base of every driver. Construct with validated options; then ``open()``."""

    kind: ClassVar[str] = ""

    def __init__(
        self,
        device_id: str,
        options: BaseModel,
        *,
        timeout_ms: int = 1000,
        backoff_min_s: float = 0.2,
        backoff_max_s: float = 10.0,
        degraded_hold_s: float | None = None,
        queue_size: int = 512,
        work_share: float = 0.25,
        max_read_bytes_per_s: float = 65_536.0,
    ) -> None:
        self.device_id = device_id
        self.options = options
        self.timeout_s = timeout_ms / 1000.0
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.degraded_hold_s = (
            degraded_hold_s if degraded_hold_s is not None else max(5.0, 3 * self.timeout_s)
        )
        self._queue: asyncio.Queue[Any] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._connected = False
        self._down_since: float | None = None
        self._last_error: str | None = None
        self._down_reason: str | None = None
        self._last_fault_mono: float | None = None
        self._last_reading_mono: float | None = None
        self._faults: Counter[str] = Counter()
        self._readings = 0
        self._readings_at_connect = 0
        self._last_bug: str | None = None
        self._reconnects = 0
        self._stopped = asyncio.Event()
        self._last_values: list[str] = []
        self._last_useful_mono = time.monotonic()
        if not 0 < work_share <= 1:
            raise ValueError("work_share must be in (0, 1]")
        self._work = LeakyBucket(work_share)
        # 64 KiB/s is over five times a 115200-baud line: no real device needs more.
        self._read_bytes = LeakyBucket(max_read_bytes_per_s)
        self.throttled_s = 0.0
        self._fault_log_at: float | None = None
        self._faults_unlogged: Counter[str] = Counter()
        self.observer: DriverObserver | None = None

    @property
    def stale_after_s(self) -> float | None:
        """No useful reading for this long: DEGRADED (and DOWN at twice it). None: no rule.

        A kind opts in by overriding this with the longest normal gap between its useful
        readings (a poll period plus the reply timeout, an RPM's background interval).
        """
        return None

    # -- public interface --------------------------------------------------------------

    async def open(self) -> None:
        """Start the supervisor; returns at once (a dead device must not block the lane)."""
        if self._task is None:
            self._task = asyncio.create_task(self._supervise(), name=f"driver:{self.device_id}")

    async def close(self) -> None:
        if self._task is not None:
            await self._cancel_supervisor(self._task)
            self._task = None
        with contextlib.suppress(Exception):
            async with asyncio.timeout(max(2.0, self.timeout_s)):
                await self._disconnect()
        self._connected = False
        self._stopped.set()
        self._put(_CLOSED)

    async def readings(self) -> AsyncIterator[Reading]:
        """The readings, in order; ends after ``close()``."""
        while True:
            item = await self._queue.get()
            if item is _CLOSED:
                return
            yield item

    async def next_reading(self, timeout_s: float) -> Reading:
        """One reading, or :class:`TimeoutError` (a convenience for tests and diag)."""
        async with asyncio.timeout(timeout_s):
            item = await self._queue.get()
        if item is _CLOSED:
            raise EOFError("driver closed")
        return item

    def health(self) -> Health:
        now = time.monotonic()
        last_error = self._last_error
        stale = self._stale_for(now)
        if not self._connected:
            state = SensorState.DOWN
            # Why it went down, not the noise of the attempts since (a reconnect to a peer
            # that still sends garbage counts faults before it is ever UP).
            last_error = self._down_reason or last_error
        elif stale is not None:
            state = SensorState.DEGRADED
            last_error = self._stale_reason(stale)
        elif (
            self._last_fault_mono is not None and now - self._last_fault_mono < self.degraded_hold_s
        ):
            state = SensorState.DEGRADED
        else:
            state = SensorState.UP
        age = now - self._last_reading_mono if self._last_reading_mono is not None else None
        return Health(
            state=state,
            connected=self._connected,
            last_error=last_error,
            faults=dict(self._faults),
            last_reading_age_s=age,
            readings=self._readings,
            reconnects=self._reconnects,
        )

    async def probe(self) -> Probe:
        """Identity, a few recent values and the last raw frames in hex and ASCII."""
        return Probe(
            device_id=self.device_id,
            kind=self.kind,
            options=_redacted(self.options),
            health=self.health().as_dict(),
            identity=await self._identity(),
            values=list(self._last_values[-5:]),
            raw_frames=[{"hex": f.hex(" "), "ascii": printable(f)} for f in self._raw_frames()],
        )

    # -- for subclasses ----------------------------------------------------------------

    @abstractmethod
    async def _connect(self) -> None: ...

    @abstractmethod
    async def _session(self) -> None:
        """Read until an error; raise a transient DriverError to reconnect."""

    @abstractmethod
    async def _disconnect(self) -> None: ...

    def _raw_frames(self) -> tuple[bytes, ...]:
        return ()

    async def _identity(self) -> dict[str, Any]:
        return {}

    def _alive(self) -> None:
        """The device answered in this session: mark it connected (UP or DEGRADED)."""
        if not self._connected:
            self._set_connected(True)

    def _emit(self, reading: Reading, *, useful: bool = True) -> None:
        """Queue a reading; ``useful=False`` for one that says nothing about the measurement
        (a status echo), so that it does not keep a device that measures nothing UP."""
        self._alive()
        self._readings += 1
        self._last_reading_mono = time.monotonic()
        self._last_values = [*self._last_values[-4:], _summary(reading)]
        if useful:
            self._useful()
        self._put(reading)

    def _useful(self) -> None:
        """The device delivered a useful reading (also for one that is read, not emitted)."""
        self._last_useful_mono = time.monotonic()

    def _fault(self, kind: str, message: str, *, count: int = 1, reason: bool = True) -> None:
        """Count a fault the session survived (the device stays connected: DEGRADED).

        ``count`` > 1 for a coalesced run of codec faults; ``reason=False`` counts it
        without making it the ``last_error`` (a consequence, like pacing, that must not
        hide its cause). Logged at most once per :data:`FAULT_LOG_INTERVAL_S`, with the
        counts since the last line.
        """
        self._faults[kind] += count
        now = time.monotonic()
        self._last_fault_mono = now
        if reason:
            self._last_error = f"{kind}: {message}" + (f" (x{count})" if count > 1 else "")
        self._observe_fault(kind, count)
        self._faults_unlogged[kind] += count
        if self._fault_log_at is None or now - self._fault_log_at >= FAULT_LOG_INTERVAL_S:
            counts = ", ".join(f"{k} {n}" for k, n in self._faults_unlogged.most_common(5))
            log.warning("device %s faults (%s); last: %s", self.device_id, counts,
                        f"{kind}: {message}")  # fmt: skip
            self._fault_log_at = now
            self._faults_unlogged.clear()

    def _stale_for(self, now: float) -> float | None:
        """Seconds since the last useful reading, when that is past ``stale_after_s``."""
        limit = self.stale_after_s
        if limit is None:
            return None
        age = now - self._last_useful_mono
        return age if age > limit else None

    def _stale_reason(self, age: float) -> str:
        reason = f"stale: no useful reading for {age:.1f} s"
        extra = self._stale_detail()
        if extra:
            reason += f" ({extra})"
        if self._last_error and "stale:" not in self._last_error:
            reason += f"; last fault {self._last_error}"
        return reason

    def _stale_detail(self) -> str:
        """What the device sent instead of useful readings (kinds say, e.g. blank lines)."""
        return ""

    def _check_useful(self) -> None:
        """Raise (DOWN, reconnect) after twice ``stale_after_s`` without a useful reading."""
        limit = self.stale_after_s
        if limit is None:
            return
        age = time.monotonic() - self._last_useful_mono
        if age > 2 * limit:
            raise DriverProtocolError(self._stale_reason(age), raw_frames=self._raw_frames())

    async def _paced(self, started: float, size: int) -> None:
        """After parsing a chunk of ``size`` bytes begun at ``started`` (a
        ``time.perf_counter()``): let the loop run the other devices, and pause this one
        while it is over its share of loop time or bytes."""
        pause = max(self._work.spend(time.perf_counter() - started), self._read_bytes.spend(size))
        if pause <= 0:
            await asyncio.sleep(0)
            return
        self.throttled_s += pause
        self._fault(
            "flood",
            f"input over {self._read_bytes.rate / 1024:.0f} KiB/s or "
            f"{self._work.rate:.0%} of the event loop; reading paused",
            reason=False,
        )
        await asyncio.sleep(pause)

    # -- supervision -------------------------------------------------------------------

    async def _cancel_supervisor(self, task: asyncio.Task[None]) -> None:
        """Cancel and wait, cancelling again while the task runs on.

        A library's ``asyncio.wait_for`` (pymodbus waits for a reply with it) can swallow a
        cancel on Python 3.11 when the reply lands in the same turn (cpython#86296); one
        cancel then leaves the session polling forever and the agent hangs on SIGTERM.
        """
        for attempt in range(CANCEL_ATTEMPTS):
            task.cancel()
            done, _ = await asyncio.wait({task}, timeout=CANCEL_WAIT_S)
            if done:
                if attempt:
                    log.warning("device %s: its task took %d cancels", self.device_id, attempt + 1)
                return
        log.error("device %s: its task ignores cancel; left running", self.device_id)

    def _put(self, item: object) -> None:
        if self._queue.full():
            with contextlib.suppress(asyncio.QueueEmpty):
                self._queue.get_nowait()
            self._faults["overflow"] += 1
            self._observe_fault("overflow", 1)
        self._queue.put_nowait(item)

    async def _supervise(self) -> None:
        attempt = 0
        while True:
            self._readings_at_connect = self._readings
            try:
                async with asyncio.timeout(max(self.timeout_s, 1.0) * 2):
                    await self._connect()
                self._last_useful_mono = time.monotonic()  # each session gets its full time
                # Not UP yet: an open port or socket says nothing about the device. The
                # first valid reading (or _alive()) of the session marks it up.
                await self._session()
                raise DriverError("session ended")  # sessions only end by raising
            except asyncio.CancelledError:
                raise
            except DriverError as exc:
                error: Exception = exc
                if not exc.transient:
                    self._record_down(exc)
                    log.error("device %s stopped: %s (%s)", self.device_id, exc, self.kind)
                    with contextlib.suppress(Exception):
                        await self._disconnect()
                    return
            except (TimeoutError, OSError, EOFError) as exc:
                error = exc
            except Exception as exc:  # a driver bug must not kill the lane: count it, retry
                signature = f"{type(exc).__name__}: {exc}"
                if signature != self._last_bug:  # the traceback once, not once per retry
                    log.exception("device %s: unexpected driver error", self.device_id)
                    self._last_bug = signature
                error = exc
                if self.observer is not None:
                    self.observer.driver_crashed(self.device_id, exc)
            self._record_down(error)
            with contextlib.suppress(Exception):
                async with asyncio.timeout(max(2.0, self.timeout_s)):
                    await self._disconnect()
            if self._readings_at_connect != self._readings:
                attempt = 0  # the last session worked: retry quickly
            delay = min(self.backoff_max_s, self.backoff_min_s * (2**attempt))
            attempt = min(attempt + 1, 16)
            self._reconnects += 1
            await asyncio.sleep(delay)

    def _record_down(self, error: Exception) -> None:
        kind = getattr(error, "fault", None)
        if kind is None:
            if isinstance(error, TimeoutError):
                kind = "timeout"
            elif isinstance(error, OSError | EOFError):
                kind = "connection"
            else:
                kind = "driver_bug"
        self._faults[kind] += 1
        self._last_fault_mono = time.monotonic()
        message = str(error) or type(error).__name__
        self._last_error = self._down_reason = f"{kind}: {message}"
        self._observe_fault(kind, 1, health=False)  # DOWN, told next: not DEGRADED first
        self._set_connected(False)

    def _set_connected(self, connected: bool) -> None:
        self._connected = connected
        now = time.monotonic()
        # Debug only: the observer writes the one line per transition (edge.metrics).
        if not connected and self._down_since is None:
            self._down_since = now
            log.debug("device %s down: %s", self.device_id, self._last_error)
        elif connected and self._down_since is not None:
            log.debug("device %s up again after %.1f s", self.device_id, now - self._down_since)
            self._down_since = None
        if self.observer is not None:
            self.observer.driver_health(self.device_id, self.health())

    def _observe_fault(self, kind: str, count: int, *, health: bool = True) -> None:
        observer = self.observer
        if observer is not None:
            observer.driver_fault(self.device_id, kind, count)
            if health and self._connected:  # a fault makes a connected device DEGRADED
                observer.driver_health(self.device_id, self.health())


def _summary(reading: Reading) -> str:
    """One line for `lane diag probe`: `weight: gross_kg 18,650, stable yes`."""
    names = getattr(reading, "__dataclass_fields__", {})
    shown = {
        name: getattr(reading, name)
        for name in names
        if name not in {"device_id", "captured_at", "monotonic", "image"}
        and getattr(reading, name) is not None
    }
    kind = type(reading).__name__.removesuffix("Reading").lower() or "reading"
    return f"{kind}: {text.fields(shown)}"[:240]
