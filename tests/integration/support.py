"""Test peers: a consumer that records what the lane publishes, and the agent as a process."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Self

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

ROOT = Path(__file__).resolve().parents[2]
CMD = "border/KZ-TEST/T1/cmd"  # the test lane's command topics (tests.conftest.lane_yaml)


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


class Consumer:
    """An integrator's subscriber: QoS 1, optionally a persistent session, auto-reconnect."""

    def __init__(
        self,
        port: int,
        *,
        topic: str = "border/#",
        client_id: str = "",
        persistent: bool = False,
    ) -> None:
        self.port = port
        self.messages: list[tuple[str, bytes, bool, Properties | None]] = []
        self._crossings: list[dict[str, object]] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda c, _u, _f, rc, _p: (
            None if rc.is_failure else c.subscribe(topic, qos=1)
        )
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = 3600 if persistent else 0
        self.client.connect_async(
            "127.0.0.1", port, keepalive=10, clean_start=not persistent, properties=props
        )
        self.client.loop_start()

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        crossing = json.loads(msg.payload) if msg.topic.endswith("/crossing") else None
        with self._lock:
            self.messages.append(
                (msg.topic, msg.payload, bool(msg.retain), getattr(msg, "properties", None))
            )
            if crossing is not None:
                self._crossings.append(crossing)

    def wait_subscribed(self, timeout_s: float = 10) -> None:
        assert self.subscribed.wait(timeout_s), "consumer did not subscribe"

    def bodies(self, suffix: str) -> list[dict[str, object]]:
        with self._lock:
            return [json.loads(p) for t, p, _r, _pr in self.messages if t.endswith(suffix)]

    def crossings(self) -> list[dict[str, object]]:
        with self._lock:
            return list(self._crossings)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def missing_seqs(events: list[dict[str, object]], last: int) -> list[int]:
    seen = {int(e["lane_seq"]) for e in events}  # type: ignore[call-overload]
    return sorted(set(range(1, last + 1)) - seen)


def check_delivery(events: list[dict[str, object]], expected_last: int) -> dict[int, str]:
    """Every lane_seq 1..expected_last arrived; a repeated lane_seq repeats its event_id."""
    by_seq: dict[int, str] = {}
    for event in events:
        seq, event_id = int(event["lane_seq"]), str(event["event_id"])  # type: ignore[arg-type]
        assert by_seq.setdefault(seq, event_id) == event_id, f"lane_seq {seq}: two event_ids"
    missing = missing_seqs(events, expected_last)
    assert not missing, f"{len(missing)} lane_seq missing, first {missing[:10]}"
    assert max(by_seq) == expected_last
    ids = list(by_seq.values())
    assert len(set(ids)) == len(ids), "one event_id under two lane_seq"
    return by_seq


class Agent:
    """`lane run` as a real process (``command``: another `lane` command taking --config)."""

    command = "run"

    def __init__(self, config: Path) -> None:
        self.config = config
        self.process: subprocess.Popen[bytes] | None = None
        self.log = config.with_suffix(f".{time.monotonic_ns()}.log")

    def start(self) -> Self:
        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge", self.command, "--config", str(self.config)],
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return self

    def output(self) -> str:
        return self.log.read_text(errors="replace")

    def kill(self) -> None:
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(10)

    def stop(self, timeout_s: float = 30) -> int:
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout_s)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)


def send_command(
    port: int,
    name: str,
    correlation: bytes,
    *,
    retain: bool = False,
    expiry_s: int | None = None,
    response_topic: str | None = None,
    payload: bytes = b"{}",
    cmd: str = CMD,
) -> None:
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5
    )
    client.connect("127.0.0.1", port)
    client.loop_start()
    props = Properties(PacketTypes.PUBLISH)
    props.CorrelationData = correlation
    if expiry_s is not None:
        props.MessageExpiryInterval = expiry_s
    if response_topic is not None:
        props.ResponseTopic = response_topic
    client.publish(
        f"{cmd}/{name}", payload, qos=1, retain=retain, properties=props
    ).wait_for_publish(5)
    client.disconnect()
    client.loop_stop()


def replies(consumer: Consumer) -> dict[bytes, dict[str, object]]:
    out = {}
    for topic, payload, _retain, props in list(consumer.messages):
        if topic.endswith("/reply") or topic.startswith("replies/"):
            correlation = getattr(props, "CorrelationData", None)
            out[bytes(correlation or b"")] = {"topic": topic, **json.loads(payload)}
    return out
