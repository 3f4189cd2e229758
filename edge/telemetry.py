"""The ``telemetry`` part: the lane's figures as one MQTT message every ``telemetry.interval_s``.

The figures are the same snapshot ``/metrics`` and ``STATUS=`` show (``edge.health``);
each message expires after ten intervals, so a consumer that was away is not flooded with
stale figures. The interval is read on every tick, so a SIGHUP reload applies at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from edge.config import TelemetryConfig
from edge.events import Telemetry, utc_now
from edge.health import LaneHealth
from edge.metrics import LaneMetrics
from edge.outgoing import Outgoing
from edge.supervisor import Supervisor
from edge.topics import PRIORITY_TELEMETRY


async def send_telemetry(
    settings: Callable[[], TelemetryConfig],
    *,
    topic: str,
    health: LaneHealth,
    metrics: LaneMetrics,
    outgoing: Outgoing,
    supervisor: Supervisor,
) -> None:
    """Runs as the ``telemetry`` part; ``settings`` is the running config's (reloadable)."""
    sent_at = time.monotonic()
    while True:
        # Short ticks, so a reloaded interval applies without waiting out the old one.
        await supervisor.idle("telemetry", min(0.25, settings().interval_s))
        interval_s = settings().interval_s
        if time.monotonic() - sent_at < interval_s:
            continue
        sent_at = time.monotonic()
        snapshot = await health.take_snapshot_now()
        metrics.update(snapshot)
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
            devices=metrics.device_states(),
        )
        outgoing.store(
            kind="telemetry",
            topic=topic,
            payload=telemetry.to_json(),
            priority=PRIORITY_TELEMETRY,
            properties={"expiry_s": int(settings().interval_s * 10)},
        )
