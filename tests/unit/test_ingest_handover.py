"""The hand-over from paho's thread to the register's writer: bounded, whatever the broker
sends. Receive Maximum bounds it with a broker that keeps the spec; one that ignores it is held
back on paho's thread (back-pressure), never queued without bound."""

from __future__ import annotations

import threading
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.site.config import parse_ingest_config
from edge.site.ingest import Ingest
from tests.site.support import ingest_yaml


def test_a_broker_past_receive_maximum_is_held_back_not_queued(tmp_path: Path) -> None:
    config = parse_ingest_config(
        ingest_yaml(port=1883, dsn="postgresql:///unused", evidence_dir=tmp_path).replace(
            "client_id: ingest-test\n", "client_id: ingest-test\n  receive_maximum: 1\n"
        )
    )
    ingest = Ingest(config)  # nothing connects before start()
    bound = config.broker.receive_maximum * 4

    def deliver(count: int) -> None:
        for mid in range(count):
            msg = mqtt.MQTTMessage(mid=mid + 1, topic=b"border/KZ-TEST/T1/crossing")
            msg.qos = 1
            ingest._on_message(None, None, msg)

    deliver(bound)  # up to the bound: queued at once
    paho_thread = threading.Thread(target=deliver, args=(1,), daemon=True)
    paho_thread.start()
    paho_thread.join(0.5)
    assert paho_thread.is_alive()  # one more waits for room
    assert len(ingest._take(timeout_s=0)) == bound
    paho_thread.join(10)
    assert not paho_thread.is_alive()
    assert [m.mid for m in ingest._take(timeout_s=0)] == [1]
