"""Cross-check with the neighbouring lane over the broker: a plate our lane reads while the
next lane reports the same plate is flagged; the same plate long before is not."""

from __future__ import annotations

import json
import time
from datetime import timedelta
from pathlib import Path

import paho.mqtt.client as mqtt

from edge.devtools.harness import DEFAULT_SCENARIO, LaneHarness
from edge.recognize.grammar import score_key
from simulators.scenario import RandomVehicles, Scenario

ALARM = "crossing.plate_in_neighbour_lane"


def test_plate_read_in_the_neighbouring_lane_at_the_same_time(tmp_path: Path) -> None:
    scenario = Scenario.load(DEFAULT_SCENARIO)
    scenario = scenario.model_copy(
        update={
            "speedup": 4,
            "vehicles": scenario.vehicles[:3],
            "random_vehicles": RandomVehicles(count=0),
            "faults": [],
        }
    )
    harness = LaneHarness(
        scenario, tmp_path, settle_s=1.0, fusion={"neighbour_lanes": ["SIM2"]}
    ).start()
    try:
        lane = harness.lane
        first, _, third = lane.vehicles

        def sighting(vehicle: object, name: str, shift_s: float) -> bytes:
            v = vehicle
            start = lane._wall(v.start_s) + timedelta(seconds=shift_s)  # type: ignore[attr-defined]
            texts = {score_key(p.text) for p in v.plates.values()}  # type: ignore[attr-defined]
            return json.dumps(
                {
                    "schema": "lane.crossing/1",
                    "type": "update",
                    "crossing_id": name,
                    "lane": "SIM2",
                    "start": start.isoformat(),
                    "plates": [{"text": t} for t in sorted(texts)],
                }
            ).encode()

        # Wait for the agent's devices to be up (it is subscribed and fusing), then play the
        # neighbour lane: it sees the first vehicle's plates at the same time, the third's two
        # minutes earlier.
        deadline = time.monotonic() + 60
        while not any("/device/" in d.topic for d in harness.delivered):
            assert time.monotonic() < deadline, "no device came up"
            harness.poll(0.2)
        time.sleep(0.5)
        neighbour = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        neighbour.connect("127.0.0.1", harness.broker.port)
        neighbour.loop_start()
        topic = "border/KZ-SIM/SIM2/crossing"
        neighbour.publish(topic, b"{not json", qos=1).wait_for_publish(5)  # survives garbage
        # ... and what once killed the publisher thread: RecursionError, then oversized.
        neighbour.publish(topic, b"[" * 100_000, qos=1).wait_for_publish(5)
        neighbour.publish(topic, b'{"a": "' + b"x" * 300_000 + b'"}', qos=1).wait_for_publish(5)
        neighbour.publish(topic, b'{"crossing_id": [], "plates": 5}', qos=1).wait_for_publish(5)
        neighbour.publish(topic, sighting(first, "sim2-a", 0.5), qos=1).wait_for_publish(5)
        neighbour.publish(topic, sighting(third, "sim2-b", -120), qos=1).wait_for_publish(5)
        neighbour.loop_stop()
        neighbour.disconnect()

        while not harness.vehicles_done():
            assert harness.agent_alive(), harness.agent_log.read_text()[-2000:]
            harness.poll(0.5)
        deadline = time.monotonic() + 8
        while len(harness.crossings("end")) < 3 and time.monotonic() < deadline:
            harness.poll(0.2)
    finally:
        harness.stop()

    ends = sorted((d.body for d in harness.crossings("end")), key=lambda b: b["start"])
    assert len(ends) == 3, ends
    flagged = [[a for a in e.get("alarms", []) if a["code"] == ALARM] for e in ends]
    truth_texts = [{score_key(p.text) for p in v.plates.values()} for v in lane.vehicles]
    read = [{p["text"] for p in e.get("plates", [])} for e in ends]
    # The first vehicle: flagged exactly when one of its reads is a plate the neighbour saw.
    assert read[0] & truth_texts[0], f"no plate of the first vehicle read: {read[0]}"
    assert flagged[0], ends[0]
    assert "lane SIM2" in flagged[0][0]["message"] and "sim2-a" in flagged[0][0]["message"]
    assert not flagged[1]  # the neighbour never saw it
    assert not flagged[2]  # seen there, but two minutes apart: another time, no alarm
    log = harness.agent_log.read_text()
    assert "unreadable crossing event from lane SIM2" in log
    assert "Traceback" not in log
