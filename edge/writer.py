"""Crossing events -> the outbox, in production order, held in memory while the store fails.

A crossing event is committed before it is published (docs/delivery.md). When the commit fails
(disk full, I/O error, database locked past its busy timeout) the event is *held*: it and every
later event wait in a bounded in-memory queue, in order, and one task retries with capped
backoff. The first success commits all of them in one transaction, in the order they were
produced, each with the next ``lane_seq``: the sequence stays contiguous. While the store
fails the lane carries a ``storage.full`` or ``storage.error`` alarm (``on_fault``).

Only when more than ``limit`` events are held does the writer give up: ``on_overflow`` is told
once, and the agent stops with exit 4 after logging how many it still held.

``lane_seq`` is given at commit: an event is made (and frozen: later changes to its crossing
record do not reach it) with a placeholder sequence number, replaced in the transaction.

Every write of the agent into the outbox, this writer's and every other (status, evidence,
telemetry, replies, acks, rejects), runs on one thread, :class:`WriteThread` ("outbox-writer"):
the event loop never waits on an fsync, and the writes are applied in the order they were
handed over (docs/architecture.md, Threads).
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import ParamSpec, TypeVar

from edge.errors import StorageError
from edge.events import CrossingEvent
from edge.outbox import Outbox

log = logging.getLogger(__name__)

RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0

FaultFn = Callable[[StorageError | None], None]

P = ParamSpec("P")
T = TypeVar("T")

WRITE_THREAD = "outbox-writer"


class WriteThread:
    """The one thread that writes the outbox; jobs run one at a time, in the order given.

    ``run`` is for the event loop (awaits the result), ``call`` for another thread (blocks
    on it), ``post`` for a write nobody waits for: its own job handles expected faults, and
    anything else it raises goes to ``on_error`` (the agent's supervisor: the writer is a
    fatal part). ``busy_since`` is when the job in progress started (the watchdog's
    "outbox-writer" stage: a write stuck on the disk stalls the lane).
    """

    def __init__(self, on_error: Callable[[BaseException], None]) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix=WRITE_THREAD)
        self._on_error = on_error
        self.busy_since: float | None = None
        self.thread: threading.Thread = self._pool.submit(threading.current_thread).result()

    @property
    def alive(self) -> bool:
        return self.thread.is_alive()

    def submit(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> Future[T]:
        return self._pool.submit(self._timed, fn, *args, **kwargs)

    async def run(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        return await asyncio.wrap_future(self.submit(fn, *args, **kwargs))

    def call(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        if threading.current_thread() is self.thread:
            return fn(*args, **kwargs)  # already on it: waiting for itself would never end
        return self.submit(fn, *args, **kwargs).result()

    def post(self, fn: Callable[[], object]) -> None:
        self.submit(fn).add_done_callback(self._reported)

    async def settled(self) -> None:
        """Return once every job handed over before this call has run."""
        await self.run(lambda: None)

    def close(self) -> None:
        """Run what was handed over, then end the thread."""
        self._pool.shutdown(wait=True)

    def _timed(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        self.busy_since = time.monotonic()
        try:
            return fn(*args, **kwargs)
        finally:
            self.busy_since = None

    def _reported(self, future: Future[object]) -> None:
        exc = future.exception() if not future.cancelled() else None
        if exc is not None:
            self._on_error(exc)


def _sequenced(event: CrossingEvent) -> Callable[[int], CrossingEvent]:
    return lambda seq: event.model_copy(update={"lane_seq": seq})


class CrossingWriter:
    """The one path of crossing events into the outbox; owned by the agent's event loop."""

    def __init__(
        self,
        outbox: Outbox,
        writes: WriteThread,
        topic: str,
        *,
        limit: int,
        on_fault: FaultFn,
        on_committed: Callable[[list[CrossingEvent]], None],
        on_overflow: Callable[[int], None],
        retry_min_s: float = RETRY_MIN_S,
        retry_max_s: float = RETRY_MAX_S,
    ) -> None:
        self.outbox = outbox
        self.writes = writes
        self.topic = topic
        self.limit = limit
        self.fault: StorageError | None = None
        self.overflowed = False
        self._on_fault = on_fault
        self._on_committed = on_committed
        self._on_overflow = on_overflow
        self._retry_min_s = retry_min_s
        self._retry_max_s = retry_max_s
        self._held: deque[CrossingEvent] = deque()
        self._lock = asyncio.Lock()
        self._faulty = asyncio.Event()

    @property
    def held(self) -> int:
        """Events waiting in memory for the store."""
        return len(self._held)

    def held_crossings(self) -> int:
        return len({e.crossing_id for e in self._held})

    async def put(self, event: CrossingEvent) -> bool:
        """Commit one event (its ``lane_seq`` is replaced), or hold it. True if committed.

        While events are held this returns at once, also while a retry waits on the store:
        the task producing crossings never waits out a busy timeout per event.
        """
        if self._held:
            self._hold(event)  # behind the held ones: order is production order
            return False
        async with self._lock:
            if self._held:  # an event put just before this one was held meanwhile
                self._hold(event)
                return False
            try:
                committed = await self._commit([event])
            except StorageError as exc:
                self.failed(exc)
                self._hold(event)
                return False
        self._recovered([])
        self._on_committed(committed)
        return True

    def failed(self, exc: StorageError) -> None:
        """A write failed (this writer's or another outbox write): raise the alarm, retry."""
        previous, self.fault = self.fault, exc
        self._faulty.set()
        if previous is None or previous.alarm != exc.alarm:
            # One line when the store starts failing (or fails differently), not one per try.
            log.error(
                "%s: %s; holding crossing events in memory (at most %d, then the agent exits "
                "4) and retrying",
                exc.alarm,
                exc,
                self.limit,
            )
            self._on_fault(exc)

    async def run(self) -> None:
        """Retry while the store fails: the held events, or a probe write when none is held."""
        delay = self._retry_min_s
        while True:
            await self._faulty.wait()
            await asyncio.sleep(delay)
            worked = await self.flush()
            delay = self._retry_min_s if worked else min(self._retry_max_s, delay * 2)

    async def flush(self) -> bool:
        """One attempt: commit every held event (or probe the store). True once it works."""
        committed: list[CrossingEvent] = []
        async with self._lock:
            try:
                if self._held:
                    batch = list(self._held)
                    committed = await self._commit(batch)
                    for _ in batch:  # events put during the commit stay, in order
                        self._held.popleft()
                elif self.fault is not None:
                    await self.writes.run(self.outbox.probe)
            except StorageError as exc:
                self.failed(exc)
                return False
        self._recovered(committed)
        if committed:
            self._on_committed(committed)
        return True

    def _recovered(self, committed: list[CrossingEvent]) -> None:
        if not self._held:
            self._faulty.clear()  # else the retry task goes on with what was put meanwhile
        if self.fault is None:
            return
        cleared, self.fault = self.fault.alarm, None
        held = (
            f"committed {len(committed)} held crossing events in order, lane_seq "
            f"{committed[0].lane_seq}..{committed[-1].lane_seq}"
            if committed
            else "no crossing event was held"
        )
        log.warning("outbox writes work again (%s cleared): %s", cleared, held)
        self._on_fault(None)

    def _hold(self, event: CrossingEvent) -> None:
        self._held.append(event)
        self._faulty.set()
        if len(self._held) > self.limit and not self.overflowed:
            self.overflowed = True
            self._on_overflow(len(self._held))

    async def _commit(self, events: list[CrossingEvent]) -> list[CrossingEvent]:
        return await self.writes.run(
            self.outbox.add_crossings, [_sequenced(e) for e in events], self.topic
        )
