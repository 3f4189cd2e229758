"""/metrics after a scripted scenario, the endpoint's safety rules, and the device API."""

from __future__ import annotations

import logging
import subprocess
import sys
import time
from pathlib import Path

import pytest

from edge.config import parse_config
from edge.devtools.localbroker import LocalBroker, free_port
from edge.devtools.subscriber import Received, Subscriber
from edge.errors import ConfigError
from edge.events import SensorState
from edge.metrics import LaneMetrics
from tests.conftest import lane_yaml
from tests.ops.support import REPO, AgentProcess, collect, payloads, scrape

VEHICLES = 6


def test_metrics_after_a_scripted_scenario(broker: LocalBroker, tmp_path: Path) -> None:
    port = free_port()
    extra = (
        f"scripted:\n  vehicles: {VEHICLES}\n  interval_ms: 100\n"
        f"metrics:\n  listen: 127.0.0.1:{port}\n"
        "telemetry:\n  interval_s: 1\n"
    )
    config = tmp_path / "lane.yaml"
    config.write_text(lane_yaml(tmp_path / "state", broker.port, extra=extra))
    subscriber = Subscriber("127.0.0.1", broker.port, ["border/KZ-TEST/T1/#"])
    assert subscriber.wait_ready()
    agent = AgentProcess(config, log_path=tmp_path / "log")
    received: list[Received] = []
    try:

        def done(got: list[Received]) -> bool:
            ends = [c for c in payloads(got, "/crossing") if c["type"] == "end"]
            return len(ends) == VEHICLES and bool(payloads(got, "/telemetry"))

        collect(subscriber, done, 30, received)
        ends = [c for c in payloads(received, "/crossing") if c["type"] == "end"]
        published = len(payloads(received, "/crossing"))
        # Gauges refresh once a second; wait for the refresh after the last PUBACK.
        deadline = time.monotonic() + 10
        while True:
            m = scrape(port)
            if (
                m["lane_outbox_pending"] == 0
                and m["lane_mqtt_published"] >= published
                and m["lane_mqtt_published"] == m["lane_publish_latency_seconds_count"]
            ):
                break
            assert time.monotonic() < deadline, m
            time.sleep(0.2)
    finally:
        code = agent.stop()
        subscriber.close()
    assert code == 0, agent.log()

    info = [k for k in m if k.startswith("lane_info{")]
    assert len(info) == 1 and 'checkpoint="KZ-TEST",lane="T1"' in info[0] and m[info[0]] == 1
    assert m['lane_crossings_total{end_reason="exit"}'] == VEHICLES
    plates = sum(len(c["plates"]) for c in ends)
    assert m['lane_plate_reads_total{camera="cam-front"}'] == plates == VEHICLES
    assert m.get("lane_crossings_unidentified_total", 0) == 0
    # new + end per vehicle, the online status, telemetry: each one PUBACKed and timed.
    assert m["lane_publish_latency_seconds_count"] >= 2 * VEHICLES + 1
    assert m["lane_publish_latency_seconds_count"] == m["lane_mqtt_published"]
    assert 0 < m["lane_publish_latency_seconds_sum"] < m["lane_publish_latency_seconds_count"]
    assert m["lane_outbox_pending_crossings"] == 0
    assert m["lane_outbox_oldest_age_seconds"] == 0
    assert m["lane_outbox_rejected"] == 0
    assert m["lane_mqtt_connected"] == 1
    assert m["lane_mqtt_connection_losses"] == 0
    assert m["lane_boot_seq"] == 1
    assert m["lane_watchdog_healthy"] == 1
    # The loop-lag probe runs (20 samples a second), every sample in a bucket.
    assert m["lane_loop_lag_seconds_count"] >= 10
    assert m['lane_loop_lag_seconds_bucket{le="+Inf"}'] == m["lane_loop_lag_seconds_count"]
    assert m["lane_uptime_seconds"] > 0
    # The same figures as the MQTT telemetry message.
    telemetry = payloads(received, "/telemetry")[-1]
    assert telemetry["boot_seq"] == m["lane_boot_seq"]
    assert telemetry["outbox_rejected"] == m["lane_outbox_rejected"]
    assert telemetry["mqtt_connected"] is True


def test_outbox_depth_and_age_while_the_broker_is_down(tmp_path: Path) -> None:
    port = free_port()
    dead_broker = free_port()
    extra = f"scripted:\n  vehicles: 3\n  interval_ms: 50\nmetrics:\n  listen: 127.0.0.1:{port}\n"
    config = tmp_path / "lane.yaml"
    config.write_text(lane_yaml(tmp_path / "state", dead_broker, extra=extra))
    agent = AgentProcess(config, log_path=tmp_path / "log")
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                m = scrape(port)
            except OSError:
                m = {}
            if m.get("lane_outbox_pending_crossings") == 6 and m["lane_outbox_oldest_age_seconds"]:
                break
            assert time.monotonic() < deadline, m
            time.sleep(0.2)
        assert m["lane_mqtt_connected"] == 0
        assert m['lane_crossings_total{end_reason="exit"}'] == 3
        assert m["lane_outbox_pending"] >= 6  # the crossings and the online status
        assert 0 < m["lane_outbox_oldest_age_seconds"] < 20
    finally:
        assert agent.stop() == 0, agent.log()


def test_metrics_port_in_use_is_a_clear_config_error(tmp_path: Path) -> None:
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        config = tmp_path / "lane.yaml"
        config.write_text(
            lane_yaml(
                tmp_path / "state", free_port(), extra=f"metrics:\n  listen: 127.0.0.1:{port}\n"
            )
        )
        out = subprocess.run(
            [sys.executable, "-m", "edge", "run", "--config", str(config)],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=30,
        )
    assert out.returncode == 2, out.stderr
    assert f"metrics.listen: cannot listen on 127.0.0.1:{port}" in out.stderr


@pytest.mark.parametrize(
    ("listen", "message"),
    [
        ("0.0.0.0:9108", "not loopback"),
        ("10.1.2.3:9108", "not loopback"),
        ("127.0.0.1", "not host:port"),
        ("127.0.0.1:99999", "not host:port"),
        ("localhost:http", "not host:port"),
    ],
)
def test_metrics_listen_is_validated(listen: str, message: str) -> None:
    text = f"checkpoint: C\nlane: L\ndirection: entry\nmetrics:\n  listen: '{listen}'\n"
    with pytest.raises(ConfigError) as err:
        parse_config(text)
    assert message in str(err.value)
    assert "metrics" in str(err.value)


def test_metrics_remote_listen_needs_explicit_consent() -> None:
    text = (
        "checkpoint: C\nlane: L\ndirection: entry\n"
        "metrics:\n  listen: '[::]:9108'\n  allow_remote: true\n"
    )
    assert parse_config(text).metrics.address() == ("::", 9108)  # type: ignore[union-attr]
    local = parse_config("checkpoint: C\nlane: L\ndirection: entry\nmetrics: {}\n")
    assert local.metrics is not None and local.metrics.address() == ("127.0.0.1", 9108)
    assert parse_config("checkpoint: C\nlane: L\ndirection: entry\n").metrics is None


def test_device_state_counts_and_logs_transitions_only(caplog: pytest.LogCaptureFixture) -> None:
    metrics = LaneMetrics(checkpoint="C", lane="L", agent_version="t")
    caplog.set_level(logging.INFO, logger="edge.metrics")
    metrics.device_state("scale", SensorState.UP)
    for _ in range(50):  # a driver retrying: faults counted, one line only
        metrics.device_fault("scale", "timeout", 1)
        metrics.device_state("scale", SensorState.DOWN, reason="no answer in 1000 ms")
    metrics.device_state("scale", SensorState.UP)
    metrics.device_state("scale", SensorState.UP)
    metrics.observe_recognition(0.03, camera="cam-front")
    lines = [r.getMessage() for r in caplog.records]
    assert lines == [
        "device scale is UP",
        "device scale is DOWN: no answer in 1000 ms",
        "device scale is back UP",
    ]
    assert [getattr(r, "device", None) for r in caplog.records] == ["scale"] * 3
    text = metrics.render().decode()
    assert 'lane_device_faults_total{device="scale",fault="timeout"} 50.0' in text
    assert 'lane_device_down_transitions_total{device="scale"} 1.0' in text
    assert 'lane_device_up{device="scale"} 1.0' in text
    assert 'lane_device_state{device="scale",state="DOWN"} 0.0' in text
    assert 'lane_device_state{device="scale",state="UP"} 1.0' in text
    assert 'lane_recognition_latency_seconds_bucket{camera="cam-front",le="0.04"} 1.0' in text
    assert metrics.device_states() == {"scale": SensorState.UP}


def test_frames_offered_read_skipped_and_read_per_vehicle() -> None:
    from datetime import UTC, datetime

    from edge.crossing import CrossingRecord
    from edge.events import Coverage, SensorCoverage

    metrics = LaneMetrics(checkpoint="C", lane="L", agent_version="t")
    for _ in range(5):
        metrics.frame_offered("cam-front")
    metrics.frame_skipped("cam-front", "sure")
    metrics.observe_recognition(0.3, camera="cam-front")

    def crossing(front: int, rear: int) -> CrossingRecord:
        record = CrossingRecord.begin(datetime(2026, 1, 1, tzinfo=UTC))
        record.end_reason = "exit"
        record.coverage = Coverage(
            sensors=[
                SensorCoverage(device="io", kind="laneio.modbus", state="UP", saw_vehicle=True),
                SensorCoverage(
                    device="cam-front", kind="anpr.stream", state="UP", saw_vehicle=True,
                    frames_read=front,
                ),
                SensorCoverage(
                    device="cam-rear", kind="anpr.stream", state="UP", saw_vehicle=True,
                    frames_read=rear,
                ),
            ]
        )  # fmt: skip
        return record

    metrics.crossing_finished(crossing(front=2, rear=0))
    metrics.crossing_finished(crossing(front=1, rear=3))
    text = metrics.render().decode()
    assert 'lane_recognition_frames_offered_total{camera="cam-front"} 5.0' in text
    assert 'lane_recognition_frames_read_total{camera="cam-front"} 1.0' in text
    assert 'lane_recognition_frames_skipped_total{camera="cam-front",reason="sure"} 1.0' in text
    assert 'lane_recognition_frames_per_vehicle_sum{camera="cam-front"} 3.0' in text
    assert 'lane_recognition_frames_per_vehicle_bucket{camera="cam-rear",le="0.0"} 1.0' in text
    assert 'lane_recognition_vehicles_unread_total{camera="cam-rear"} 1.0' in text
    assert 'lane_recognition_vehicles_unread_total{camera="io"}' not in text
