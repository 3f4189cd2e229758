"""The lane agent: owns the lock, the outbox, the publisher and the crossing sources.

``LaneAgent.run`` runs until its stop event is set, then shuts down in order: sources end
the crossing in progress (``end_reason: shutdown``), pending messages are sent for a few
seconds, ``stopped`` is published, the outbox is closed.

Under systemd (``systemd/lane@.service``) it also speaks sd_notify: ``READY=1`` once the config
is valid and the outbox open, ``STATUS=`` lines, ``WATCHDOG=1`` only while every stage is
healthy (``edge.notify.Heartbeats``), ``RELOADING=1``/``READY=1`` around a SIGHUP reload and
``STOPPING=1`` on shutdown. See docs/operations.md.

Supervision (docs/architecture.md, "Supervision"): every task and thread the agent starts is
a part of one ``edge.supervisor.Supervisor``, and every cleanup is on one
``contextlib.AsyncExitStack``, so they are undone in reverse order, also when the start
fails half-way. A part that raises is logged once with its traceback and counted; device
sessions, recognisers, pumps, telemetry and the command worker are restarted with backoff;
fusion, the outbox writer, the scripted source and the publisher thread stop the agent,
which then exits 1 (``StageError``) and systemd restarts it.

Storage faults (docs/delivery.md): crossing events go through ``edge.writer.CrossingWriter``,
which holds them in memory while the outbox cannot be written and raises the retained
``storage.full`` / ``storage.error`` lane alarm; other messages are dropped meanwhile, except
the lane status, which goes out unstored. On start, crossings a crash left without an ``end``
are ended with ``end_reason: interrupted``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections.abc import Callable, Mapping

from drivers.base import Driver
from drivers.registry import create_driver
from edge.acquire import Acquisition, DriverFactory, Recognizer
from edge.commands import LaneCommands
from edge.config import LaneConfig, RecognitionConfig
from edge.control.messages import BrokerReport, DeviceReport, StatusResult, StorageState
from edge.control.server import start_control
from edge.crossing import CrossingRecord, LaneIdentity
from edge.crossings import LaneCrossings
from edge.errors import (
    ConfigError,
    ConfigProblem,
    OutboxError,
    StageError,
    StorageError,
)
from edge.events import (
    EventType,
    LaneState,
    LaneStatus,
    SensorState,
    Telemetry,
    agent_version,
    utc_now,
)
from edge.lock import LaneLock
from edge.logs import quiet_library_logs, set_lane_context
from edge.metrics import LaneMetrics, LaneSnapshot
from edge.notify import Heartbeats, Notifier, watchdog_period_s
from edge.outbox import Outbox, OutboxStats
from edge.outgoing import Outgoing
from edge.publish import Publisher
from edge.recognize.overlay import OverlayLearner
from edge.redact import redact_text
from edge.reload import Reloader, ReloadReport
from edge.supervisor import Policy, Supervisor, probe_loop_lag
from edge.topics import (
    PRIORITY_CONTROL,
    PRIORITY_TELEMETRY,
    Topics,
)
from edge.writer import CrossingWriter, WriteThread

log = logging.getLogger(__name__)

# Without a systemd watchdog a stage is still reported stalled (STATUS, metrics) after this.
DEFAULT_STALL_S = 30.0


def open_outbox(config: LaneConfig, *, read_only: bool = False) -> Outbox:
    """The lane's outbox; ``read_only`` for tools that look while the agent may be running."""
    storage = config.storage
    return Outbox(
        storage.resolved_state_dir() / "outbox.db",
        max_rows=storage.max_rows,
        max_bytes=storage.max_bytes,
        alarm_fill=storage.alarm_fill,
        live_window_s=storage.live_window_s,
        keep_crossings=storage.keep_crossings,
        read_only=read_only,
    )


RecognizerFactory = Callable[[RecognitionConfig], Recognizer]


def load_recognizer(config: RecognitionConfig) -> Recognizer:
    """The plate recogniser, models loaded and warmed up by one inference (blocking)."""
    from edge.recognize.pipeline import PlateRecognizer

    return PlateRecognizer(config)


class LaneAgent:
    """One lane. ``driver_factory`` and ``recognizer_factory`` make the devices' drivers and
    the plate recogniser (the registry and the ONNX recogniser unless told otherwise)."""

    def __init__(
        self,
        config: LaneConfig,
        *,
        driver_factory: DriverFactory = create_driver,
        recognizer_factory: RecognizerFactory = load_recognizer,
    ) -> None:
        self.config = config
        self._driver_factory = driver_factory
        self._recognizer_factory = recognizer_factory
        self.topics = Topics(config.mqtt.topic_prefix, config.checkpoint, config.lane)
        self.state_dir = config.storage.resolved_state_dir()
        self.lock = LaneLock(self.state_dir, lane=config.lane)
        self.started = time.monotonic()
        self.boot_seq = 0
        self._alarms: tuple[str, ...] = ()
        self._outbox: Outbox | None = None
        self._writes: WriteThread | None = None
        self._writer: CrossingWriter | None = None
        self._outgoing: Outgoing | None = None
        self._crossings: LaneCrossings | None = None
        self._storage_alarm: str | None = None  # storage.full / storage.error while it lasts
        self._fatal: OutboxError | None = None  # ends run() with exit 4 after the shutdown
        self._stop: asyncio.Event | None = None
        self.publisher: Publisher | None = None
        self.acquisition: Acquisition | None = None  # its drivers serve the control socket
        self.notifier = Notifier()
        self.heartbeats = Heartbeats()
        self.watchdog_s = watchdog_period_s()
        self.metrics = LaneMetrics(
            checkpoint=config.checkpoint, lane=config.lane, agent_version=agent_version()
        )
        self.supervisor = Supervisor(
            heartbeats=self.heartbeats,
            counter=self.metrics,
            on_fatal=self._part_failed,
            stall_s=self.watchdog_s or DEFAULT_STALL_S,
        )
        self._failure: StageError | None = None  # a fatal part: run() ends with exit 1
        self._reloader: Reloader | None = None
        self.healthy = True
        self._problems: dict[str, str] = {}
        self._snapshot: LaneSnapshot | None = None
        self._reload_requested = asyncio.Event()  # SIGHUP may come before the reloader runs
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def outbox(self) -> Outbox:
        assert self._outbox is not None, "agent not started"
        return self._outbox

    @property
    def writes(self) -> WriteThread:
        assert self._writes is not None, "agent not started"
        return self._writes

    @property
    def writer(self) -> CrossingWriter:
        assert self._writer is not None, "agent not started"
        return self._writer

    @property
    def crossings(self) -> LaneCrossings:
        assert self._crossings is not None, "agent not started"
        return self._crossings

    @property
    def crossings_total(self) -> int:
        return self._crossings.total if self._crossings is not None else 0

    @property
    def outgoing(self) -> Outgoing:
        assert self._outgoing is not None, "agent not started"
        return self._outgoing

    @property
    def identity(self) -> LaneIdentity:
        c = self.config
        return LaneIdentity(c.checkpoint, c.lane, c.direction.value, self.boot_seq)

    # --- life cycle ---------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        set_lane_context(self.config.checkpoint, self.config.lane)
        quiet_library_logs()
        self._stop = stop
        self._loop = asyncio.get_running_loop()
        async with contextlib.AsyncExitStack() as stack:
            # Undone in reverse: devices stop (ending the crossing in progress), then the
            # other parts, the control socket, the publisher (after a last flush and the
            # `stopped` status), the metrics server, the outbox, the lock.
            self.lock.acquire()
            stack.callback(self.lock.release)
            stack.callback(self.metrics.close)
            # Every outbox write runs on this one thread; the loop never waits on an fsync.
            writes = self._writes = WriteThread(
                on_error=lambda exc: self.supervisor.thread_failed("outbox-writer", exc)
            )
            stack.callback(writes.close)
            outbox = self._outbox = await writes.run(open_outbox, self.config)
            outbox.write_thread = writes.thread
            stack.push_async_callback(writes.run, outbox.close)
            await self._start(stack)
            self._snapshot = await asyncio.to_thread(self._take_snapshot)
            self.notifier.ready(self._status_line())
            # Pings only while every part is alive and making progress; stopped first.
            self.supervisor.spawn("watchdog", self._supervise, policy=Policy.FATAL)
            stack.push_async_callback(self.supervisor.stop, "watchdog")
            await stop.wait()
            log.info("stopping lane %s/%s", self.config.checkpoint, self.config.lane)
            self.notifier.stopping("stopping: ending the crossing in progress, flushing")
        self.notifier.close()
        if self._fatal is not None:
            raise self._fatal
        if self._failure is not None:
            raise self._failure
        log.info("lane agent stopped")

    async def _start(self, stack: contextlib.AsyncExitStack) -> None:
        """Open everything in order; each cleanup goes on ``stack`` as soon as it applies."""
        writes = self.writes
        self.boot_seq = await writes.run(self.outbox.start_boot)
        self._alarms = await asyncio.to_thread(self.outbox.alarms)
        self._writer = CrossingWriter(
            self.outbox,
            writes,
            self.topics.crossing,
            limit=self.config.storage.held_events,
            on_fault=self._storage_changed,
            on_committed=lambda _events: self.outgoing.wake_publisher(),
            on_overflow=self._held_overflow,
        )
        self._outgoing = Outgoing(
            self.outbox,
            writes,
            self.topics,
            checkpoint=self.config.checkpoint,
            lane=self.config.lane,
            boot_seq=self.boot_seq,
            on_storage_fault=self._storage_failed,
        )
        crossings = self._crossings = LaneCrossings(
            self.identity,
            outbox=self.outbox,
            writes=writes,
            writer=self.writer,
            metrics=self.metrics,
            on_storage_fault=self._storage_failed,
        )
        await crossings.end_interrupted()
        stats = await asyncio.to_thread(self.outbox.stats)
        log.info(
            "lane %s/%s starting: boot_seq %d, outbox %s (%d pending)",
            self.config.checkpoint,
            self.config.lane,
            self.boot_seq,
            self.outbox.path,
            stats.pending,
        )
        # Loaded and warmed up before anything announces the lane `online`.
        recognizer = await self._load_recognizer()
        assert self._loop is not None
        commands = LaneCommands(
            self.config.mqtt,
            self.topics,
            boot_seq=self.boot_seq,
            outbox=self.outbox,
            writes=writes,
            outgoing=self.outgoing,
            supervisor=self.supervisor,
            metrics=self.metrics,
            republish_status=lambda: self._queue_status(LaneState.ONLINE),
            on_storage_fault=self._storage_failed,
            loop=self._loop,
        )
        publisher = self.publisher = self.outgoing.publisher = Publisher(
            self.config,
            self.outbox,
            writes,
            will_payload=self._lane_status(LaneState.OFFLINE).to_json(),
            on_connected=self._connected,
            on_command=commands.admit,
            on_neighbour=self._neighbour_crossing,
        )
        publisher.on_latency = self.metrics.observe_publish
        publisher.on_crash = lambda exc: self.supervisor.thread_failed("publisher", exc)
        self.metrics.watch_mqtt(
            connected=lambda: publisher.connected,
            published=lambda: publisher.stats.published,
            connection_losses=lambda: publisher.stats.connection_losses,
        )
        self.metrics.watch_counts(
            mqtt_resent_after_timeout=(
                "Publishes not acknowledged within mqtt.ack_timeout_s (sent again on a new "
                "connection).",
                lambda: publisher.stats.resent_after_timeout,
            ),
        )
        publisher.start()
        stack.push_async_callback(self._stop_publishing)
        self.supervisor.watch_thread(
            "publisher", alive=lambda: publisher.alive, beat=lambda: publisher.heartbeat
        )
        if self._serve_metrics():
            self.supervisor.watch_thread("metrics-server", alive=self.metrics.serving)
        control = await start_control(self, self.state_dir)
        if control is not None:
            stack.push_async_callback(control.close)
            self.supervisor.watch_thread("control", alive=control.serving)
        # A write stuck on the disk (or a bug in one) stalls the lane / stops the agent.
        self.supervisor.watch_thread(
            "outbox-writer",
            alive=lambda: writes.alive,
            beat=lambda: writes.busy_since or time.monotonic(),
        )
        writer = self.writer
        reloader = self._reloader = Reloader(
            self._reload_requested,
            current=lambda: self.config,
            apply=self._reloaded,
            outbox=self.outbox,
            writer=writer,
            notifier=self.notifier,
            metrics=self.metrics,
            status_line=self._status_line,
        )
        stack.push_async_callback(self.supervisor.aclose)
        spawn = self.supervisor.spawn
        spawn("commands", commands.serve, policy=Policy.RESTART, progress=True)
        spawn("storage-retry", writer.run, policy=Policy.FATAL)
        spawn("alarms", self._watch_alarms, policy=Policy.RESTART, progress=True)
        spawn("telemetry", self._telemetry, policy=Policy.RESTART, progress=True)
        spawn("refresh", self._refresh, policy=Policy.RESTART, progress=True)
        spawn("reloader", reloader.run, policy=Policy.RESTART)
        spawn(
            "loop-lag", lambda: probe_loop_lag(self.metrics.loop_lag.observe), policy=Policy.RESTART
        )
        scripted = self.config.scripted
        if scripted is not None and scripted.vehicles:
            spawn(
                "scripted",
                lambda: crossings.run_scripted(scripted),
                policy=Policy.FATAL,
                may_finish=True,
            )
            stack.push_async_callback(self.supervisor.stop, "scripted")
        acquisition = self.acquisition = await self._start_devices(recognizer)
        if acquisition is not None:
            stack.push_async_callback(acquisition.stop)  # end_reason shutdown

    async def _stop_publishing(self) -> None:
        """The last try for held crossings, the `stopped` status, then the publisher."""
        self._fatal = await self.crossings.last_flush()
        self._queue_status(LaneState.STOPPED)
        await self.writes.settled()  # stored before the publisher sends what is pending
        if self.publisher is not None:
            await asyncio.to_thread(self.publisher.stop)

    def _part_failed(self, part: str, exc: BaseException) -> None:
        """A fatal part failed (the supervisor logged it): stop in order, then exit 1."""
        self._failure = StageError(
            f"{part} failed ({type(exc).__name__}: {exc}); the agent stopped so that systemd "
            "restarts it"
        )
        if self._stop is not None:
            self._stop.set()

    async def emit(self, record: CrossingRecord, event_type: EventType) -> None:
        """Commit one crossing event durably (or hold it while the store fails), then send
        (``edge.crossings.LaneCrossings.emit``)."""
        await self.crossings.emit(record, event_type)

    # --- storage faults -------------------------------------------------------------------

    def storage_state(self) -> dict[str, object]:
        """The storage alarm and what is held in memory (for `lane diag`)."""
        writer = self._writer
        return {
            "alarm": self._storage_alarm,
            "error": str(writer.fault) if writer is not None and writer.fault else None,
            "held_events": writer.held if writer is not None else 0,
            "held_crossings": writer.held_crossings() if writer is not None else 0,
            "held_limit": self.config.storage.held_events,
        }

    def _storage_failed(self, exc: StorageError) -> None:
        """A message write failed (any thread): the writer raises the alarm and retries."""
        if self._loop is not None and self._writer is not None:
            self._loop.call_soon_threadsafe(self._writer.failed, exc)

    def _storage_changed(self, fault: StorageError | None) -> None:
        """The writer's alarm began, changed or cleared: a retained lane status says so."""
        self._storage_alarm = fault.alarm if fault is not None else None
        self._queue_status(LaneState.ONLINE)

    def _held_overflow(self, held: int) -> None:
        log.error(
            "more than %d crossing events held in memory (storage.held_events) and the outbox "
            "still cannot be written: stopping, systemd restarts the agent",
            held - 1,
        )
        if self._stop is not None:
            self._stop.set()

    async def _load_recognizer(self) -> Recognizer | None:
        """The recogniser if a camera needs one (blocking load and warm-up, off the loop)."""
        if not any(d.kind.startswith("anpr.") for d in self.config.devices if d.enabled):
            return None
        return await asyncio.to_thread(self._recognizer_factory, self.config.recognition)

    async def _start_devices(self, recognizer: Recognizer | None) -> Acquisition | None:
        """Drivers and correlator for the configured devices (none: no-op)."""
        if not any(d.enabled for d in self.config.devices):
            return None
        acquisition = Acquisition(
            self.config,
            emit=lambda emission: self.crossings.emit(emission.record, emission.type),
            on_health=self._device_changed,
            on_evidence=self.outgoing.evidence,
            on_scan=self.outgoing.scan,
            recognizer=recognizer,
            supervisor=self.supervisor,
            metrics=self.metrics,
            driver_factory=self._driver_factory,
        )
        await acquisition.start()
        return acquisition

    def _neighbour_crossing(self, lane: str, payload: bytes) -> None:
        if self.acquisition is not None:
            self.acquisition.neighbour_crossing(lane, payload)

    def _device_changed(
        self, device: str, kind: str, state: SensorState, reason: str | None
    ) -> None:
        """A retained device status and the lane status; ``metrics`` logs the one line."""
        reason = redact_text(reason) if reason is not None else None  # retained: no secret
        self.metrics.device_state(device, state, reason=reason, kind=kind)
        self.outgoing.device_status(device, kind, state, reason)
        self._queue_status(LaneState.ONLINE)

    def request_reload(self) -> None:
        """SIGHUP handler: the reload itself runs as a task on the loop."""
        self._reload_requested.set()

    async def reload(self) -> ReloadReport:
        """Re-read the config file and apply what needs no restart (``edge.reload``)."""
        assert self._reloader is not None, "agent not started"
        return await self._reloader.reload()

    def _reloaded(self, config: LaneConfig) -> None:
        self.config = config

    # --- what the control server asks (edge.control.server.ControlledLane) ---------------

    async def lane_report(self) -> StatusResult:
        stats = await asyncio.to_thread(self.outbox.stats)
        publisher, mqtt = self.publisher, self.config.mqtt
        return StatusResult(
            pid=os.getpid(),
            uptime_s=time.monotonic() - self.started,
            boot_seq=self.boot_seq,
            healthy=self.healthy,
            stalled=sorted(self._problems.values()),
            crossings_total=self.crossings_total,
            broker=BrokerReport(
                host=mqtt.host,
                port=mqtt.port,
                connected=bool(publisher and publisher.connected),
                last_error=publisher.stats.last_error if publisher else None,
            ),
            outbox={"path": str(self.outbox.path), **stats.as_dict()},
            storage=StorageState.model_validate(self.storage_state()),
            devices=[
                DeviceReport.from_health(name, driver.kind, driver.health())
                for name, driver in self.running_drivers().items()
            ],
        )

    def running_drivers(self) -> Mapping[str, Driver]:
        return dict(self.acquisition.drivers) if self.acquisition is not None else {}

    def camera_overlays(self) -> Mapping[str, OverlayLearner] | None:
        return dict(self.acquisition.overlays) if self.acquisition is not None else None

    # --- health, watchdog, metrics, reload ----------------------------------------------

    def _serve_metrics(self) -> bool:
        if self.config.metrics is None:
            return False
        host, port = self.config.metrics.address()
        try:
            self.metrics.serve(host, port)
        except OSError as exc:
            raise ConfigError(
                [
                    ConfigProblem(
                        self.config.source,
                        None,
                        None,
                        "metrics.listen",
                        f"cannot listen on {host}:{port}: {exc.strerror or exc}",
                    )
                ]
            ) from None
        return True

    def _take_snapshot(self) -> LaneSnapshot:
        """Runs in a worker thread: reads the outbox."""
        stats: OutboxStats = self.outbox.stats()
        publisher = self.publisher
        return LaneSnapshot(
            uptime_s=time.monotonic() - self.started,
            boot_seq=self.boot_seq,
            outbox_pending=stats.pending,
            outbox_pending_crossings=stats.pending_crossings,
            outbox_rejected=stats.rejected,
            outbox_bytes=stats.bytes,
            outbox_oldest_age_s=stats.oldest_pending_age_s,
            crossings_total=self.crossings_total,
            mqtt_connected=bool(publisher and publisher.connected),
            mqtt_published=publisher.stats.published if publisher else 0,
            mqtt_connection_losses=publisher.stats.connection_losses if publisher else 0,
            watchdog_healthy=self.healthy,
        )

    def _status_line(self) -> str:
        """One line for `systemctl status`: health, broker, outbox depth, devices."""
        parts = []
        if self._problems:
            parts.append("STALLED: " + ", ".join(self._problems.values()))
        snap = self._snapshot
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
        if self._alarms:
            parts.append("alarms: " + ", ".join(self._alarms))
        return "; ".join(parts)

    async def _refresh(self) -> None:
        """Outbox and MQTT figures for STATUS= and /metrics, once a second."""
        while True:
            await self.supervisor.idle("refresh", 1.0)
            self._snapshot = await asyncio.to_thread(self._take_snapshot)
            self.metrics.update(self._snapshot)

    async def _supervise(self) -> None:
        """Ping the watchdog only while every stage is healthy; keep STATUS= current."""
        period = self.watchdog_s
        tick = min(1.0, period / 4) if period else 1.0
        last_status = ""
        while True:
            problems = self.heartbeats.stalled()
            # One line when a stage newly stalls and one when all recover, never one per tick.
            if problems.keys() - self._problems.keys():
                log.error(
                    "lane unhealthy, %s: %s",
                    "withholding watchdog pings" if period else "no watchdog configured",
                    "; ".join(problems.values()),
                )
            elif self._problems and not problems:
                log.warning("lane healthy again: every stage makes progress")
            self._problems = problems
            self.healthy = not problems
            self.metrics.watchdog_healthy.set(1 if self.healthy else 0)
            if self.healthy and period:
                self.notifier.watchdog()
            status = self._status_line()
            if status != last_status:
                self.notifier.status(status)
                last_status = status
            await asyncio.sleep(tick)

    def _lane_status(self, state: LaneState) -> LaneStatus:
        return LaneStatus(
            state=state,
            checkpoint=self.config.checkpoint,
            lane=self.config.lane,
            boot_seq=self.boot_seq or None,
            agent_version=agent_version(),
            devices=self.metrics.device_states(),
            alarms=[*self._alarms, *([self._storage_alarm] if self._storage_alarm else [])],
            produced=utc_now(),
        )

    def _queue_status(self, state: LaneState) -> None:
        self.outgoing.store(
            kind="status",
            topic=self.topics.status,
            payload=self._lane_status(state).to_json(),
            priority=PRIORITY_CONTROL,
            retain=True,
            unstored_on_fault=True,  # the disk is full: the retained alarm must still go out
        )

    def _queue_online(self) -> None:
        """Called on every (re)connect: the broker may have lost the retained state."""
        self._queue_status(LaneState.ONLINE)

    def _connected(self) -> None:
        """Publisher thread, on every connect: the status is made on the loop."""
        if self._loop is not None and not self._loop.is_closed():
            with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                self._loop.call_soon_threadsafe(self._queue_online)

    async def _watch_alarms(self) -> None:
        while True:
            await self.supervisor.idle("alarms", 1.0)
            alarms = await asyncio.to_thread(self.outbox.alarms)
            if alarms != self._alarms:
                log.warning("lane alarms now: %s", ", ".join(alarms) or "none")
                self._alarms = alarms
                self._queue_status(LaneState.ONLINE)

    async def _telemetry(self) -> None:
        sent_at = time.monotonic()
        while True:
            # Short ticks, so a reloaded interval applies without waiting out the old one.
            await self.supervisor.idle("telemetry", min(0.25, self.config.telemetry.interval_s))
            if time.monotonic() - sent_at < self.config.telemetry.interval_s:
                continue
            sent_at = time.monotonic()
            snapshot = await asyncio.to_thread(self._take_snapshot)
            self._snapshot = snapshot
            self.metrics.update(snapshot)
            telemetry = Telemetry(
                produced=utc_now(),
                uptime_s=round(snapshot.uptime_s, 3),
                boot_seq=snapshot.boot_seq,
                outbox_pending=snapshot.outbox_pending,
                outbox_rejected=snapshot.outbox_rejected,
                outbox_oldest_age_s=snapshot.outbox_oldest_age_s,
                crossings_total=snapshot.crossings_total,
                mqtt_connected=snapshot.mqtt_connected,
                outbox_pending_crossings=snapshot.outbox_pending_crossings,
                outbox_bytes=snapshot.outbox_bytes,
                mqtt_published=snapshot.mqtt_published,
                mqtt_connection_losses=snapshot.mqtt_connection_losses,
                watchdog_healthy=snapshot.watchdog_healthy,
                devices=self.metrics.device_states(),
            )
            self.outgoing.store(
                kind="telemetry",
                topic=self.topics.telemetry,
                payload=telemetry.to_json(),
                priority=PRIORITY_TELEMETRY,
                properties={"expiry_s": int(self.config.telemetry.interval_s * 10)},
            )
