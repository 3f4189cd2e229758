"""Crossing events from the lane's sources to the crossing writer, one ``end`` for every ``new``.

``LaneCrossings`` is what fusion (through ``edge.acquire.Acquisition``) and the scripted
source emit into: each event is made when emitted, committed by ``edge.writer.CrossingWriter``
(held in memory while the outbox cannot be written, docs/delivery.md) and counted. On start,
crossings a crash left without an ``end`` are ended with ``end_reason: interrupted``
(docs/fusion.md); on stop, held events get one more try, and what is still held makes the
agent exit 4.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from edge.config import ScriptedConfig
from edge.crossing import INTERRUPTED, CrossingRecord, LaneIdentity, interrupted_end, make_event
from edge.errors import OutboxError, StorageError
from edge.events import EventType, parse_crossing, utc_now
from edge.metrics import LaneMetrics
from edge.outbox import Outbox
from edge.scripted import scripted_crossings
from edge.writer import CrossingWriter, WriteThread

log = logging.getLogger(__name__)


class LaneCrossings:
    """Crossing events into the outbox, in order; ``total`` counts the ended crossings."""

    def __init__(
        self,
        identity: LaneIdentity,
        *,
        outbox: Outbox,
        writes: WriteThread,
        writer: CrossingWriter,
        metrics: LaneMetrics,
        on_storage_fault: Callable[[StorageError], None],
    ) -> None:
        self.identity = identity
        self.outbox = outbox
        self.writes = writes
        self.writer = writer
        self.metrics = metrics
        self.on_storage_fault = on_storage_fault
        self.total = 0

    async def emit(self, record: CrossingRecord, event_type: EventType) -> None:
        """Commit one crossing event durably (or hold it while the store fails), then send.

        The event is made now, so later changes to ``record`` do not reach it; the writer
        gives it its ``lane_seq`` in the commit (1 until then). Never raises on a storage
        fault: the task producing crossings must not end on a full disk.
        """
        event = make_event(record, event_type, self.identity, 1)
        committed = await self.writer.put(event)  # watched: a write stuck on the disk stalls
        if event_type == EventType.END:
            self.total += 1
            self.metrics.crossing_finished(record)
            if record.trace and committed:
                try:
                    await self.writes.run(self.outbox.save_trace, record.crossing_id, record.trace)
                except StorageError as exc:  # the story for `diag explain`, not a delivery
                    self.on_storage_fault(exc)

    async def end_interrupted(self) -> None:
        """Every ``new`` has one ``end``: end what a crash (kill -9, power loss) left open."""
        ends = []
        for stored in await asyncio.to_thread(self.outbox.reader.unfinished_crossings):
            try:
                last = parse_crossing(stored)
            except ValueError as exc:  # an event no longer readable: say so, do not guess
                log.error("a stored crossing event cannot be read, not ended: %s", exc)
                continue
            ends.append(interrupted_end(last, self.identity.boot_seq))
        if not ends:
            return
        log.warning(
            "ending %d crossing(s) the last run left open (end_reason %s): %s",
            len(ends),
            INTERRUPTED,
            ", ".join(e.crossing_id for e in ends),
        )
        for end in ends:
            await self.writer.put(end)
            self.metrics.crossings.labels(INTERRUPTED).inc()
            self.total += 1

    async def last_flush(self) -> OutboxError | None:
        """On stop, one more try for held crossing events; what is still held is lost: the
        error the agent exits 4 with."""
        writer = self.writer
        if writer.held:
            await writer.flush()
        if not writer.held:
            return None
        held, crossings = writer.held, writer.held_crossings()
        message = (
            f"stopping with {held} crossing events of {crossings} crossings still held in "
            f"memory, never stored: {writer.fault or 'the outbox cannot be written'}"
        )
        log.critical("%s; they are lost, exiting 4", message)
        return OutboxError(message)

    async def run_scripted(self, scripted: ScriptedConfig) -> None:
        """The scripted crossing source (tests, demos): its vehicles, then it finishes."""
        open_record: CrossingRecord | None = None
        try:
            for step in scripted_crossings(scripted.vehicles, seed=scripted.seed):
                await self.emit(step.record, step.event_type)
                open_record = step.record if step.event_type == EventType.NEW else None
                await asyncio.sleep(scripted.interval_ms / 2000)
            log.info("scripted source finished: %d vehicles", scripted.vehicles)
        except asyncio.CancelledError:
            if open_record is not None:
                # Every `new` gets an `end`, also when the agent stops mid-crossing.
                open_record.end = utc_now()
                open_record.end_reason = "shutdown"
                await asyncio.shield(self.emit(open_record, EventType.END))
            raise
