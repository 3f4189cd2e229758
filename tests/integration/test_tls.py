"""The agent publishes over TLS, verifying the broker against the configured CA."""

from __future__ import annotations

from pathlib import Path

import paho.mqtt.client as mqtt

from tests.conftest import lane_yaml
from tests.diag.test_tls import tls_broker  # noqa: F401 - the fixture
from tests.integration.support import Agent, wait_until
from tests.integration.test_delivery import stats


def test_agent_delivers_over_tls_and_refuses_an_unknown_ca(
    tls_broker: tuple[int, Path, Path],  # noqa: F811
    tmp_path: Path,
) -> None:
    port, ca, other_ca = tls_broker
    received: list[bytes] = []
    consumer = mqtt.Client(callback_api_version=mqtt.CallbackAPIVersion.VERSION2)
    consumer.tls_set(ca_certs=str(ca))
    consumer.on_connect = lambda c, *_a: c.subscribe("border/#", qos=1)
    consumer.on_message = lambda _c, _u, msg: received.append(msg.payload)
    consumer.connect("127.0.0.1", port)
    consumer.loop_start()
    scripted = "scripted:\n  vehicles: 3\n  interval_ms: 0\n"
    good = tmp_path / "good.yaml"
    good.write_text(
        lane_yaml(tmp_path / "good", port, mqtt_extra=f"  tls: {{ca_file: {ca}}}\n", extra=scripted)
    )
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        lane_yaml(
            tmp_path / "bad", port, mqtt_extra=f"  tls: {{ca_file: {other_ca}}}\n", extra=scripted
        )
    )
    try:
        with Agent(good) as agent:
            wait_until(
                lambda: stats(good).last_lane_seq == 6 and stats(good).pending == 0,
                30,
                "6 events delivered over TLS",
            )
            assert agent.stop() == 0, agent.output()[-8000:]
        assert sum(b'"lane.crossing/2"' in p for p in received) == 6
        with Agent(bad) as agent:
            wait_until(
                lambda: "certificate verify failed" in agent.output(), 30, "a clear TLS error"
            )
            wait_until(lambda: stats(bad).pending_crossings == 6, 30, "all 6 kept, not lost")
            assert agent.stop() == 0, agent.output()[-8000:]
    finally:
        consumer.disconnect()
        consumer.loop_stop()
