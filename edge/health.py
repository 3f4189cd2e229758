"""What the lane says about itself: watchdog, STATUS= line, lane status, alarms, storage state.

``LaneHealth`` is owned by ``edge.lane.LaneAgent`` and runs three of its parts:

- ``watchdog`` (:meth:`LaneHealth.supervise`): ``WATCHDOG=1`` only while every stage is
  alive and making progress (``edge.notify.Heartbeats``), one log line when a stage newly
  stalls and one when all recover, and the ``STATUS=`` line for ``systemctl status``;
- ``refresh``: outbox and MQTT figures for ``STATUS=`` and ``/metrics``, once a second;
- ``alarms``: the outbox's alarms; a change is a new retained lane status.

The retained lane status carries the outbox alarms and the storage alarm of the crossing
writer (``storage.full`` / ``storage.error``, docs/delivery.md) while it lasts; each device
change is a retained device status and a new lane status.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable

from edge.config import MqttConfig
from edge.control.messages import BrokerReport, DeviceReport, StatusResult, StorageState
from edge.errors import StorageError
from edge.events import LaneState, LaneStatus, SensorState, agent_version, utc_now
from edge.metrics import LaneMetrics, LaneSnapshot
from edge.notify import Heartbeats, Notifier
from edge.outbox import Outbox
from edge.outgoing import Outgoing
from edge.redact import redact_text
from edge.supervisor import Supervisor
from edge.topics import PRIORITY_CONTROL, Topics
from edge.writer import CrossingWriter

log = logging.getLogger(__name__)


class LaneHealth:
    """The lane's health and status, from the parts it is given."""

    def __init__(
        self,
        *,
        checkpoint: str,
        lane: str,
        mqtt: MqttConfig,
        boot_seq: int,
        started: float,
        alarms: tuple[str, ...],
        outbox: Outbox,
        writer: CrossingWriter,
        outgoing: Outgoing,
        topics: Topics,
        metrics: LaneMetrics,
        notifier: Notifier,
        heartbeats: Heartbeats,
        supervisor: Supervisor,
        watchdog_s: float | None,
        crossings_total: Callable[[], int],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        self.checkpoint = checkpoint
        self.lane = lane
        self.mqtt = mqtt
        self.boot_seq = boot_seq
        self.started = started
        self.alarms = alarms  # the outbox's own (outbox_high, outbox_full)
        self.storage_alarm: str | None = None  # storage.full / storage.error while it lasts
        self.outbox = outbox
        self.writer = writer
        self.outgoing = outgoing
        self.topics = topics
        self.metrics = metrics
        self.notifier = notifier
        self.heartbeats = heartbeats
        self.supervisor = supervisor
        self.watchdog_s = watchdog_s
        self.crossings_total = crossings_total
        self.loop = loop
        self.healthy = True
        self.problems: dict[str, str] = {}  # stalled stages, by part
        self.snapshot: LaneSnapshot | None = None

    # --- the retained lane and device status ----------------------------------------------

    def lane_status(self, state: LaneState) -> LaneStatus:
        return LaneStatus(
            state=state,
            checkpoint=self.checkpoint,
            lane=self.lane,
            boot_seq=self.boot_seq or None,
            agent_version=agent_version(),
            devices=self.metrics.device_states(),
            alarms=[*self.alarms, *([self.storage_alarm] if self.storage_alarm else [])],
            produced=utc_now(),
        )

    def queue_status(self, state: LaneState = LaneState.ONLINE) -> None:
        self.outgoing.store(
            kind="status",
            topic=self.topics.status,
            payload=self.lane_status(state).to_json(),
            priority=PRIORITY_CONTROL,
            retain=True,
            unstored_on_fault=True,  # the disk is full: the retained alarm must still go out
        )

    def connected(self) -> None:
        """Publisher thread, on every connect (the broker may have lost the retained state):
        the status is made on the loop."""
        if not self.loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self.loop.call_soon_threadsafe(self.queue_status, LaneState.ONLINE)

    def device_changed(
        self, device: str, kind: str, state: SensorState, reason: str | None
    ) -> None:
        """A retained device status and the lane status; ``metrics`` logs the one line."""
        reason = redact_text(reason) if reason is not None else None  # retained: no secret
        self.metrics.device_state(device, state, reason=reason, kind=kind)
        self.outgoing.device_status(device, kind, state, reason)
        self.queue_status(LaneState.ONLINE)

    async def watch_alarms(self) -> None:
        while True:
            await self.supervisor.idle("alarms", 1.0)
            alarms = await asyncio.to_thread(self.outbox.alarms)
            if alarms != self.alarms:
                log.warning("lane alarms now: %s", ", ".join(alarms) or "none")
                self.alarms = alarms
                self.queue_status(LaneState.ONLINE)

    # --- storage faults -------------------------------------------------------------------

    def storage_changed(self, fault: StorageError | None) -> None:
        """The writer's alarm began, changed or cleared: a retained lane status says so."""
        self.storage_alarm = fault.alarm if fault is not None else None
        self.queue_status(LaneState.ONLINE)

    def storage_state(self) -> dict[str, object]:
        """The storage alarm and what is held in memory (for `lane diag`)."""
        writer = self.writer
        return {
            "alarm": self.storage_alarm,
            "error": str(writer.fault) if writer.fault else None,
            "held_events": writer.held,
            "held_crossings": writer.held_crossings(),
            "held_limit": writer.limit,  # storage.held_events, also after a reload
        }

    async def report(self, devices: list[DeviceReport]) -> StatusResult:
        """The control socket's ``status`` (`lane diag status` of a running lane)."""
        stats = await asyncio.to_thread(self.outbox.stats)
        publisher = self.outgoing.publisher
        return StatusResult(
            pid=os.getpid(),
            uptime_s=time.monotonic() - self.started,
            boot_seq=self.boot_seq,
            healthy=self.healthy,
            stalled=sorted(self.problems.values()),
            crossings_total=self.crossings_total(),
            broker=BrokerReport(
                host=self.mqtt.host,
                port=self.mqtt.port,
                connected=bool(publisher and publisher.connected),
                last_error=publisher.stats.last_error if publisher else None,
            ),
            outbox={"path": str(self.outbox.path), **stats.as_dict()},
            storage=StorageState.model_validate(self.storage_state()),
            devices=devices,
        )

    # --- figures, STATUS= and the watchdog ------------------------------------------------

    def take_snapshot(self) -> LaneSnapshot:
        """Runs in a worker thread: reads the outbox."""
        stats = self.outbox.stats()
        publisher = self.outgoing.publisher
        return LaneSnapshot(
            uptime_s=time.monotonic() - self.started,
            boot_seq=self.boot_seq,
            outbox_pending=stats.pending,
            outbox_pending_crossings=stats.pending_crossings,
            outbox_rejected=stats.rejected,
            outbox_bytes=stats.bytes,
            outbox_oldest_age_s=stats.oldest_pending_age_s,
            crossings_total=self.crossings_total(),
            mqtt_connected=bool(publisher and publisher.connected),
            mqtt_published=publisher.stats.published if publisher else 0,
            mqtt_connection_losses=publisher.stats.connection_losses if publisher else 0,
            watchdog_healthy=self.healthy,
        )

    async def take_snapshot_now(self) -> LaneSnapshot:
        """A new snapshot (off the loop), kept for STATUS=."""
        self.snapshot = await asyncio.to_thread(self.take_snapshot)
        return self.snapshot

    def status_line(self) -> str:
        """One line for `systemctl status`: health, broker, outbox depth, devices."""
        parts = []
        if self.problems:
            parts.append("STALLED: " + ", ".join(self.problems.values()))
        snap = self.snapshot
        if snap is not None:
            parts.append("mqtt " + ("connected" if snap.mqtt_connected else "DISCONNECTED"))
            age = (
                f", oldest {snap.outbox_oldest_age_s:.0f} s"
                if snap.outbox_oldest_age_s is not None
                else ""
            )
            parts.append(f"outbox {snap.outbox_pending} pending{age}")
            parts.append(f"{snap.crossings_total} crossings")
        devices = self.metrics.device_states()
        if devices:
            parts.append(
                "devices: "
                + ", ".join(f"{d} {state.value}" for d, state in sorted(devices.items()))
            )
        if self.alarms:
            parts.append("alarms: " + ", ".join(self.alarms))
        return "; ".join(parts)

    async def refresh(self) -> None:
        """Outbox and MQTT figures for STATUS= and /metrics, once a second."""
        while True:
            await self.supervisor.idle("refresh", 1.0)
            self.metrics.update(await self.take_snapshot_now())

    async def supervise(self) -> None:
        """Ping the watchdog only while every stage is healthy; keep STATUS= current."""
        period = self.watchdog_s
        tick = min(1.0, period / 4) if period else 1.0
        last_status = ""
        while True:
            problems = self.heartbeats.stalled()
            # One line when a stage newly stalls and one when all recover, never one per tick.
            if problems.keys() - self.problems.keys():
                log.error(
                    "lane unhealthy, %s: %s",
                    "withholding watchdog pings" if period else "no watchdog configured",
                    "; ".join(problems.values()),
                )
            elif self.problems and not problems:
                log.warning("lane healthy again: every stage makes progress")
            self.problems = problems
            self.healthy = not problems
            self.metrics.watchdog_healthy.set(1 if self.healthy else 0)
            if self.healthy and period:
                self.notifier.watchdog()
            status = self.status_line()
            if status != last_status:
                self.notifier.status(status)
                last_status = status
            await asyncio.sleep(tick)
