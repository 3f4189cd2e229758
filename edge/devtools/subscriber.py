"""A test and demo consumer of lane topics: every message lands in a queue.

Developer tooling (the demo, `lane score`, `lane sim`'s device view, the tests), not the
runtime: the agent's own MQTT client is ``edge.publish.Publisher``.
"""

from __future__ import annotations

import queue
import threading
from dataclasses import dataclass

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    retain: bool


class Subscriber:
    """A consumer of lane topics (demo, score, tests): messages land in a queue."""

    def __init__(self, host: str, port: int, topics: list[str], *, client_id: str = "") -> None:
        self.messages: queue.Queue[Received] = queue.Queue()
        self._topics = topics
        self._ready = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda c, _u, _f, rc, _p: self._subscribe(rc)
        self.client.on_subscribe = lambda *_a: self._ready.set()
        self.client.on_message = lambda _c, _u, msg: self.messages.put(
            Received(msg.topic, bytes(msg.payload), bool(msg.retain))
        )
        self.client.connect(host, port, keepalive=15)
        self.client.loop_start()

    def _subscribe(self, rc: ReasonCode) -> None:
        if not rc.is_failure:
            self.client.subscribe([(t, 1) for t in self._topics])

    def wait_ready(self, timeout_s: float = 10.0) -> bool:
        return self._ready.wait(timeout_s)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()
