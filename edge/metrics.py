"""Prometheus metrics of one lane, served on loopback (``metrics.listen`` in the lane config).

Every figure lives in a private registry owned by ``LaneMetrics`` (one per agent, so tests can
run several). Other parts of the agent report into it through a few plain calls; they never
import prometheus_client themselves:

    metrics.device_state("scale", SensorState.UP)           # a pushed driver transition
    metrics.device_fault("scale", "timeout", 1)             # driver: failed transactions
    metrics.observe_recognition(0.042, camera="cam-front")  # recogniser: one frame
    metrics.frame_offered("cam-front")                      # scheduler: a frame came in
    metrics.frame_skipped("cam-front", "sure")              # scheduler: given up unread
    metrics.crossing_finished(record)                       # agent: one crossing ended
    metrics.stage_failed("fusion")                          # supervisor: a part raised
    metrics.part_restarted("recognize:cam-front")           # supervisor: ... and restarts

``device_state`` also writes the one log line per transition (down, back up, degraded) that a
technician reads in the journal: the only one; drivers log transitions at debug level only.
Counts that live elsewhere (commands dropped, resends after an ack timeout) are read at
scrape time through :meth:`LaneMetrics.watch_counts`.

The outbox and MQTT gauges are refreshed from the same snapshot that becomes the periodic
``telemetry`` message, so the two always agree.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    Info,
    disable_created_metrics,
    generate_latest,
    start_http_server,
)
from prometheus_client.core import CounterMetricFamily

from edge.events import SensorState

if TYPE_CHECKING:
    from wsgiref.simple_server import WSGIServer

    from edge.crossing import CrossingRecord

log = logging.getLogger(__name__)

# The `_created` series double every scrape for nothing a lane dashboard uses (process-wide).
disable_created_metrics()

PUBLISH_BUCKETS = (0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
LOOP_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
RECOGNITION_BUCKETS = (0.005, 0.01, 0.02, 0.04, 0.08, 0.15, 0.3, 0.6, 1.2, 2.5, 5.0)
FRAMES_PER_VEHICLE_BUCKETS = (0, 1, 2, 3, 4, 6, 8, 12, 20)


@dataclass(frozen=True, slots=True)
class LaneSnapshot:
    """The figures shared by ``/metrics`` and the MQTT ``telemetry`` message."""

    uptime_s: float
    boot_seq: int
    outbox_pending: int
    outbox_pending_crossings: int
    outbox_rejected: int
    outbox_bytes: int
    outbox_oldest_age_s: float | None
    crossings_total: int
    mqtt_connected: bool
    mqtt_published: int
    mqtt_connection_losses: int
    watchdog_healthy: bool


class LaneMetrics:
    def __init__(self, *, checkpoint: str, lane: str, agent_version: str) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        Info("lane", "Which lane this agent serves.", registry=r).info(
            {"checkpoint": checkpoint, "lane": lane, "agent_version": agent_version}
        )
        self.crossings = Counter(
            "lane_crossings", "Crossings ended, by end reason.", ["end_reason"], registry=r
        )
        self.plate_reads = Counter(
            "lane_plate_reads",
            "Plate reads attached to ended crossings, by camera.",
            ["camera"],
            registry=r,
        )
        self.unidentified = Counter(
            "lane_crossings_unidentified", "Crossings that ended without a plate.", registry=r
        )
        self.device_up = Gauge(
            "lane_device_up",
            "1 while the device answers (UP or DEGRADED), 0 while it is DOWN.",
            ["device"],
            registry=r,
        )
        self.device_state_gauge = Gauge(
            "lane_device_state",
            "1 for the device's current state (UP, DEGRADED, DOWN), 0 for the others.",
            ["device", "state"],
            registry=r,
        )
        self.device_faults = Counter(
            "lane_device_faults",
            "Failed device transactions, by kind.",
            ["device", "fault"],
            registry=r,
        )
        self.device_transitions = Counter(
            "lane_device_down_transitions", "Times the device went down.", ["device"], registry=r
        )
        self.recognition_latency = Histogram(
            "lane_recognition_latency_seconds",
            "Time from a frame's capture to the end of its read (waiting included), per camera.",
            ["camera"],
            buckets=RECOGNITION_BUCKETS,
            registry=r,
        )
        self.frames_offered = Counter(
            "lane_recognition_frames_offered",
            "Camera frames offered to plate recognition (moving, or a crossing open).",
            ["camera"],
            registry=r,
        )
        self.frames_read = Counter(
            "lane_recognition_frames_read",
            "Camera frames the recogniser read.",
            ["camera"],
            registry=r,
        )
        self.frames_skipped = Counter(
            "lane_recognition_frames_skipped",
            "Offered frames given up unread, by reason: sure (the vehicle has a sure read), "
            "budget (its frames_per_vehicle are spent), outranked (better frames of it wait), "
            "still (nothing moved and it was read already), late (waited past max_latency_s).",
            ["camera", "reason"],
            registry=r,
        )
        self.frames_per_vehicle = Histogram(
            "lane_recognition_frames_per_vehicle",
            "Frames read per ended crossing, per camera (0: the vehicle passed unread).",
            ["camera"],
            buckets=FRAMES_PER_VEHICLE_BUCKETS,
            registry=r,
        )
        self.vehicles_unread = Counter(
            "lane_recognition_vehicles_unread",
            "Ended crossings of which the camera read no frame.",
            ["camera"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "lane_loop_lag_seconds",
            "How late the event loop woke a 50 ms sleeper: time the loop was blocked (work "
            "that belongs on a thread; docs/architecture.md, Threads).",
            buckets=LOOP_LAG_BUCKETS,
            registry=r,
        )
        self.publish_latency = Histogram(
            "lane_publish_latency_seconds",
            "Time from PUBLISH to PUBACK.",
            buckets=PUBLISH_BUCKETS,
            registry=r,
        )
        self.outbox_pending = Gauge(
            "lane_outbox_pending", "Messages waiting for the broker.", registry=r
        )
        self.outbox_pending_crossings = Gauge(
            "lane_outbox_pending_crossings", "Crossing events waiting for the broker.", registry=r
        )
        self.outbox_rejected = Gauge(
            "lane_outbox_rejected", "Messages the broker refused, kept.", registry=r
        )
        self.outbox_bytes = Gauge("lane_outbox_bytes", "Payload bytes in the outbox.", registry=r)
        self.outbox_oldest_age = Gauge(
            "lane_outbox_oldest_age_seconds",
            "Age of the oldest pending message (0: none).",
            registry=r,
        )
        self.mqtt_connected = Gauge(
            "lane_mqtt_connected", "1 while connected to the broker.", registry=r
        )
        self.mqtt_published = Gauge(
            "lane_mqtt_published", "Messages acknowledged by the broker since start.", registry=r
        )
        self.mqtt_connection_losses = Gauge(
            "lane_mqtt_connection_losses", "Broker connections lost since start.", registry=r
        )
        self.uptime = Gauge("lane_uptime_seconds", "Seconds since the agent started.", registry=r)
        self.boot_seq = Gauge("lane_boot_seq", "Agent start counter of this lane.", registry=r)
        self.watchdog_healthy = Gauge(
            "lane_watchdog_healthy",
            "1 while every stage is healthy (watchdog pinged).",
            registry=r,
        )
        self.reloads = Counter(
            "lane_config_reloads", "SIGHUP reloads, by result.", ["result"], registry=r
        )
        self.stage_failures = Counter(
            "lane_stage_failures",
            "Parts of the agent (tasks, threads, device sessions) that raised unexpectedly.",
            ["part"],
            registry=r,
        )
        self.supervisor_restarts = Counter(
            "lane_supervisor_restarts",
            "Parts restarted with backoff after an unexpected exception.",
            ["part"],
            registry=r,
        )
        self._counts = _LiveCounts()
        r.register(self._counts)
        self._devices: dict[str, SensorState] = {}
        self._live = False
        self._lock = threading.Lock()
        self._server: WSGIServer | None = None
        self._thread: threading.Thread | None = None

    # --- reported by the rest of the agent ----------------------------------------------

    def device_state(
        self,
        device: str,
        state: SensorState,
        *,
        reason: str | None = None,
        kind: str | None = None,
    ) -> None:
        """A device's current state; call it as often as you like, it logs transitions only.

        This is the one log line per transition (drivers and the agent log none)."""
        state = SensorState(state)
        with self._lock:
            previous = self._devices.get(device)
            self._devices[device] = state
        self.device_up.labels(device).set(0 if state == SensorState.DOWN else 1)
        for each in SensorState:
            self.device_state_gauge.labels(device, each.value).set(1 if each == state else 0)
        if state == previous:
            return
        extra = {"device": device}
        name = f"{device} ({kind})" if kind else device
        why = f": {reason}" if reason else ""
        if state == SensorState.DOWN:
            self.device_transitions.labels(device).inc()
            log.warning("device %s is DOWN%s", name, why, extra=extra)
        elif previous == SensorState.DOWN:
            log.info("device %s is back %s%s", name, state.value, why, extra=extra)
        elif state == SensorState.DEGRADED:
            log.warning("device %s is DEGRADED%s", name, why, extra=extra)
        else:
            log.info("device %s is %s%s", name, state.value, why, extra=extra)

    def device_fault(self, device: str, fault: str, count: int = 1) -> None:
        self.device_faults.labels(device, fault).inc(count)

    def stage_failed(self, part: str) -> None:
        self.stage_failures.labels(part).inc()

    def part_restarted(self, part: str) -> None:
        self.supervisor_restarts.labels(part).inc()

    def watch_counts(self, **counts: tuple[str, Callable[[], int]]) -> None:
        """Counters kept elsewhere, read at scrape: ``name=(help, read)``, exported as
        ``lane_<name>_total``."""
        self._counts.sources.update(counts)

    def device_states(self) -> dict[str, SensorState]:
        with self._lock:
            return dict(self._devices)

    def observe_recognition(self, seconds: float, *, camera: str) -> None:
        """One frame read, ``seconds`` after its capture."""
        self.frames_read.labels(camera).inc()
        self.recognition_latency.labels(camera).observe(seconds)

    def frame_offered(self, camera: str) -> None:
        self.frames_offered.labels(camera).inc()

    def frame_skipped(self, camera: str, reason: str) -> None:
        self.frames_skipped.labels(camera, reason).inc()

    def observe_publish(self, seconds: float) -> None:
        self.publish_latency.observe(seconds)

    def crossing_finished(self, record: CrossingRecord) -> None:
        self.crossings.labels(record.end_reason or "unknown").inc()
        if not record.plates:
            self.unidentified.inc()
        for plate in record.plates:
            self.plate_reads.labels(plate.camera or "unknown").inc()
        for sensor in record.coverage.sensors:
            if sensor.frames_read is not None:
                self.frames_per_vehicle.labels(sensor.device).observe(sensor.frames_read)
                if sensor.frames_read == 0:
                    self.vehicles_unread.labels(sensor.device).inc()

    def watch_mqtt(
        self,
        *,
        connected: Callable[[], bool],
        published: Callable[[], int],
        connection_losses: Callable[[], int],
    ) -> None:
        """Read the MQTT figures at scrape time, so they agree with the latency histogram."""
        self._live = True
        self.mqtt_connected.set_function(lambda: 1.0 if connected() else 0.0)
        self.mqtt_published.set_function(lambda: float(published()))
        self.mqtt_connection_losses.set_function(lambda: float(connection_losses()))

    def update(self, snapshot: LaneSnapshot) -> None:
        s = snapshot
        self.uptime.set(s.uptime_s)
        self.boot_seq.set(s.boot_seq)
        self.outbox_pending.set(s.outbox_pending)
        self.outbox_pending_crossings.set(s.outbox_pending_crossings)
        self.outbox_rejected.set(s.outbox_rejected)
        self.outbox_bytes.set(s.outbox_bytes)
        self.outbox_oldest_age.set(s.outbox_oldest_age_s or 0.0)
        if not self._live:
            self.mqtt_connected.set(1 if s.mqtt_connected else 0)
            self.mqtt_published.set(s.mqtt_published)
            self.mqtt_connection_losses.set(s.mqtt_connection_losses)
        self.watchdog_healthy.set(1 if s.watchdog_healthy else 0)

    # --- the endpoint ---------------------------------------------------------------------

    def render(self) -> bytes:
        return generate_latest(self.registry)

    def serve(self, host: str, port: int) -> tuple[str, int]:
        """Start the HTTP endpoint; returns the bound address. Raises OSError if it cannot."""
        server, thread = start_http_server(port, addr=host, registry=self.registry)
        self._server, self._thread = server, thread
        bound_host, bound_port = server.server_address[:2]
        log.info("metrics on http://%s:%d/metrics", bound_host, bound_port)
        return str(bound_host), int(bound_port)

    def serving(self) -> bool:
        """The endpoint's thread runs (liveness for the supervisor)."""
        return self._thread is not None and self._thread.is_alive()

    def close(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None


class _LiveCounts:
    """A collector for counters another object keeps (read when scraped)."""

    def __init__(self) -> None:
        self.sources: dict[str, tuple[str, Callable[[], int]]] = {}

    def describe(self) -> list[CounterMetricFamily]:
        return []

    def collect(self) -> list[CounterMetricFamily]:
        families = []
        for name, (help_text, read) in sorted(self.sources.items()):
            family = CounterMetricFamily(f"lane_{name}", help_text)
            family.add_metric([], float(read()))
            families.append(family)
        return families
