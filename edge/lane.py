"""The lane agent's life cycle: the lock, the outbox, the publisher, the parts, in order.

``LaneAgent.run`` runs until its stop event is set, then shuts down in order: sources end
the crossing in progress (``end_reason: shutdown``), pending messages are sent for a few
seconds, ``stopped`` is published, the outbox is closed.

Under systemd (``systemd/lane@.service``) it also speaks sd_notify: ``READY=1`` once the config
is valid and the outbox open, ``STATUS=`` lines, ``WATCHDOG=1`` only while every stage is
healthy (``edge.health``), ``RELOADING=1``/``READY=1`` around a SIGHUP reload
(``edge.reload``) and ``STOPPING=1`` on shutdown. See docs/operations.md.

Supervision (docs/architecture.md, "Supervision"): every task and thread the agent starts is
a part of one ``edge.supervisor.Supervisor``, and every cleanup is on one
``contextlib.AsyncExitStack``, so they are undone in reverse order, also when the start
fails half-way. A part that raises is logged once with its traceback and counted; device
sessions, recognisers, pumps, telemetry and the command worker are restarted with backoff;
fusion, the outbox writer, the scripted source and the publisher thread stop the agent,
which then exits 1 (``StageError``) and systemd restarts it.

The agent owns its parts and hands each what it needs: ``edge.crossings`` (crossing events
into the ``edge.writer.CrossingWriter``; storage faults, docs/delivery.md),
``edge.outgoing`` (every other message, through the outbox writer thread),
``edge.health`` (watchdog, status, alarms), ``edge.commands`` (MQTT commands and replay),
``edge.telemetry``, ``edge.reload`` and the control socket (``edge.control.server``).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable, Mapping

from drivers.base import Driver
from drivers.registry import create_driver
from edge.acquire import Acquisition, DriverFactory, Recognizer
from edge.commands import LaneCommands
from edge.config import LaneConfig, RecognitionConfig
from edge.control.messages import DeviceReport, StatusResult
from edge.control.server import start_control
from edge.crossing import CrossingRecord, LaneIdentity
from edge.crossings import LaneCrossings
from edge.errors import ConfigError, ConfigProblem, OutboxError, StageError, StorageError
from edge.events import EventType, LaneState, agent_version
from edge.health import LaneHealth
from edge.lock import LaneLock
from edge.logs import quiet_library_logs, set_lane_context
from edge.metrics import LaneMetrics
from edge.notify import Heartbeats, Notifier, watchdog_period_s
from edge.outbox import Outbox
from edge.outgoing import Outgoing
from edge.publish import Publisher
from edge.recognize.overlay import OverlayLearner
from edge.reload import Reloader, ReloadReport
from edge.supervisor import Policy, Supervisor, probe_loop_lag
from edge.telemetry import send_telemetry
from edge.topics import Topics
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
        self._outbox: Outbox | None = None
        self._writes: WriteThread | None = None
        self._writer: CrossingWriter | None = None
        self._crossings: LaneCrossings | None = None
        self._outgoing: Outgoing | None = None
        self._health: LaneHealth | None = None
        self._reloader: Reloader | None = None
        self._fatal: OutboxError | None = None  # ends run() with exit 4 after the shutdown
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
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
        self._reload_requested = asyncio.Event()  # SIGHUP may come before the reloader runs

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
    def outgoing(self) -> Outgoing:
        assert self._outgoing is not None, "agent not started"
        return self._outgoing

    @property
    def health(self) -> LaneHealth:
        assert self._health is not None, "agent not started"
        return self._health

    @property
    def identity(self) -> LaneIdentity:
        c = self.config
        return LaneIdentity(c.checkpoint, c.lane, c.direction.value, self.boot_seq)

    @property
    def crossings_total(self) -> int:
        return self._crossings.total if self._crossings is not None else 0

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
            # Watched from its first job: a write stuck on the disk stalls the lane, and a bug
            # in one stops the agent.
            self.supervisor.watch_thread(
                "outbox-writer",
                alive=lambda: writes.alive,
                beat=lambda: writes.busy_since or time.monotonic(),
            )
            outbox = self._outbox = await writes.run(open_outbox, self.config)
            outbox.write_thread = writes.thread
            stack.push_async_callback(writes.run, outbox.close)
            await self._start(stack)
            health = self.health
            await health.take_snapshot_now()
            self.notifier.ready(health.status_line())
            # Pings only while every part is alive and making progress; stopped first.
            self.supervisor.spawn("watchdog", health.supervise, policy=Policy.FATAL)
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
        config, writes, outbox, loop = self.config, self.writes, self.outbox, self._loop
        assert loop is not None
        self.boot_seq = await writes.run(outbox.start_boot)
        alarms = await asyncio.to_thread(outbox.alarms)
        writer = self._writer = CrossingWriter(
            outbox,
            writes,
            self.topics.crossing,
            limit=config.storage.held_events,
            on_fault=lambda fault: self.health.storage_changed(fault),
            on_committed=lambda _events: self.outgoing.wake_publisher(),
            on_overflow=self._held_overflow,
        )
        outgoing = self._outgoing = Outgoing(
            outbox,
            writes,
            self.topics,
            checkpoint=config.checkpoint,
            lane=config.lane,
            boot_seq=self.boot_seq,
            on_storage_fault=self._storage_failed,
        )
        health = self._health = LaneHealth(
            checkpoint=config.checkpoint,
            lane=config.lane,
            mqtt=config.mqtt,
            boot_seq=self.boot_seq,
            started=self.started,
            alarms=alarms,
            outbox=outbox,
            writer=writer,
            outgoing=outgoing,
            topics=self.topics,
            metrics=self.metrics,
            notifier=self.notifier,
            heartbeats=self.heartbeats,
            supervisor=self.supervisor,
            watchdog_s=self.watchdog_s,
            crossings_total=lambda: self.crossings_total,
            loop=loop,
        )
        crossings = self._crossings = LaneCrossings(
            self.identity,
            outbox=outbox,
            writes=writes,
            writer=writer,
            metrics=self.metrics,
            on_storage_fault=self._storage_failed,
        )
        await crossings.end_interrupted()
        stats = await asyncio.to_thread(outbox.stats)
        log.info(
            "lane %s/%s starting: boot_seq %d, outbox %s (%d pending)",
            config.checkpoint,
            config.lane,
            self.boot_seq,
            outbox.path,
            stats.pending,
        )
        # Loaded and warmed up before anything announces the lane `online`.
        recognizer = await self._load_recognizer()
        commands = LaneCommands(
            config.mqtt,
            self.topics,
            boot_seq=self.boot_seq,
            outbox=outbox,
            writes=writes,
            outgoing=outgoing,
            supervisor=self.supervisor,
            metrics=self.metrics,
            republish_status=health.queue_status,
            on_storage_fault=self._storage_failed,
            loop=loop,
        )
        publisher = self.publisher = outgoing.publisher = Publisher(
            config,
            outbox,
            writes,
            will_payload=health.lane_status(LaneState.OFFLINE).to_json(),
            on_connected=health.connected,
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
        # Watched before it starts: a crash in its first instant must stop the agent too.
        self.supervisor.watch_thread(
            "publisher", alive=lambda: publisher.alive, beat=lambda: publisher.heartbeat
        )
        publisher.start()
        stack.push_async_callback(self._stop_publishing)
        if self._serve_metrics():
            self.supervisor.watch_thread("metrics-server", alive=self.metrics.serving)
        control = await start_control(self, self.state_dir)
        if control is not None:
            stack.push_async_callback(control.close)
            self.supervisor.watch_thread("control", alive=control.serving)
        reloader = self._reloader = Reloader(
            self._reload_requested,
            current=lambda: self.config,
            apply=self._reloaded,
            outbox=outbox,
            writer=writer,
            notifier=self.notifier,
            metrics=self.metrics,
            status_line=health.status_line,
        )
        stack.push_async_callback(self.supervisor.aclose)
        spawn = self.supervisor.spawn
        spawn("commands", commands.serve, policy=Policy.RESTART, progress=True)
        spawn("storage-retry", writer.run, policy=Policy.FATAL)
        spawn("alarms", health.watch_alarms, policy=Policy.RESTART, progress=True)
        spawn("telemetry", self._send_telemetry, policy=Policy.RESTART, progress=True)
        spawn("refresh", health.refresh, policy=Policy.RESTART, progress=True)
        spawn("reloader", reloader.run, policy=Policy.RESTART)
        spawn(
            "loop-lag", lambda: probe_loop_lag(self.metrics.loop_lag.observe), policy=Policy.RESTART
        )
        scripted = config.scripted
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
        self.health.queue_status(LaneState.STOPPED)
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

    async def _send_telemetry(self) -> None:
        await send_telemetry(
            lambda: self.config.telemetry,
            topic=self.topics.telemetry,
            health=self.health,
            metrics=self.metrics,
            outgoing=self.outgoing,
            supervisor=self.supervisor,
        )

    # --- storage faults -------------------------------------------------------------------

    def storage_state(self) -> dict[str, object]:
        """The storage alarm and what is held in memory (for `lane diag`)."""
        if self._health is None:  # not started: nothing held
            return {
                "alarm": None,
                "error": None,
                "held_events": 0,
                "held_crossings": 0,
                "held_limit": self.config.storage.held_events,
            }
        return self._health.storage_state()

    def _storage_failed(self, exc: StorageError) -> None:
        """A message write failed (any thread): the writer raises the alarm and retries."""
        if self._loop is not None and self._writer is not None:
            self._loop.call_soon_threadsafe(self._writer.failed, exc)

    def _held_overflow(self, held: int) -> None:
        log.error(
            "more than %d crossing events held in memory (storage.held_events) and the outbox "
            "still cannot be written: stopping, systemd restarts the agent",
            held - 1,
        )
        if self._stop is not None:
            self._stop.set()

    # --- crossings and devices ----------------------------------------------------------

    async def emit(self, record: CrossingRecord, event_type: EventType) -> None:
        """Commit one crossing event durably (or hold it while the store fails), then send
        (``edge.crossings.LaneCrossings.emit``)."""
        await self.crossings.emit(record, event_type)

    async def _load_recognizer(self) -> Recognizer | None:
        """The recogniser if a camera needs one (blocking load and warm-up, off the loop)."""
        if not any(d.kind.startswith("anpr.") for d in self.config.devices if d.enabled):
            return None
        return await asyncio.to_thread(self._recognizer_factory, self.config.recognition)

    async def _start_devices(self, recognizer: Recognizer | None) -> Acquisition | None:
        """Drivers and correlator for the configured devices (none: no-op)."""
        if not any(d.enabled for d in self.config.devices):
            return None
        outgoing = self.outgoing
        acquisition = Acquisition(
            self.config,
            emit=lambda emission: self.crossings.emit(emission.record, emission.type),
            on_health=self.health.device_changed,
            on_evidence=outgoing.evidence,
            on_scan=outgoing.scan,
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

    # --- reload, metrics, the control socket --------------------------------------------

    def request_reload(self) -> None:
        """SIGHUP handler: the reload itself runs as a task on the loop."""
        self._reload_requested.set()

    async def reload(self) -> ReloadReport:
        """Re-read the config file and apply what needs no restart (``edge.reload``)."""
        assert self._reloader is not None, "agent not started"
        return await self._reloader.reload()

    def _reloaded(self, config: LaneConfig) -> None:
        self.config = config

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

    # What the control server asks (edge.control.server.ControlledLane).

    async def lane_report(self) -> StatusResult:
        devices = [
            DeviceReport.from_health(name, driver.kind, driver.health())
            for name, driver in self.running_drivers().items()
        ]
        return await self.health.report(devices)

    def running_drivers(self) -> Mapping[str, Driver]:
        return dict(self.acquisition.drivers) if self.acquisition is not None else {}

    def camera_overlays(self) -> Mapping[str, OverlayLearner] | None:
        return dict(self.acquisition.overlays) if self.acquisition is not None else None
