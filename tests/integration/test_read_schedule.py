"""A controller too busy to read every frame still reads every vehicle.

The simulated lane (cameras on HTTP/MJPEG, weighbridge on a pty, RPM on TCP, lane I/O on
Modbus) drives the agent's acquisition stage in this process. Its recogniser is the real one,
handed in where the agent hands it in (``Acquisition(recognizer=...)``), each read made slow as
on a loaded controller: every vehicle must still get at least one read per plate camera, as its
crossing's coverage (``frames_read``) tells.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from edge.acquire import Acquisition
from edge.config import parse_config
from edge.crossing import LaneIdentity, make_event
from edge.devtools.harness import DEFAULT_SCENARIO
from edge.devtools.score import match_crossings
from edge.events import EventType
from edge.fusion.model import Emission
from edge.metrics import LaneMetrics
from edge.recognize.origin import LAYOUTS
from edge.recognize.pipeline import PlateRecognizer, PlateResult
from simulators.scenario import RandomVehicles, Scenario, SimulatedLane

READ_DELAY_S = 0.3  # on top of each real read: the frames of one vehicle outnumber the reads
VEHICLES = 4


class SlowRecognizer:
    """The real recogniser, each read ``delay_s`` longer (its CPU taken by other work)."""

    def __init__(self, recognizer: PlateRecognizer, delay_s: float) -> None:
        self.recognizer = recognizer
        self.delay_s = delay_s
        self.reads = 0

    def read(self, image: np.ndarray) -> list[PlateResult]:
        time.sleep(self.delay_s)
        self.reads += 1
        return self.recognizer.read(image)


def _config(lane: SimulatedLane, tmp_path: Path) -> str:
    config = lane.lane_config()
    for device in config["devices"]:
        if "password" in device:  # never inline: a file reference, as on site
            secret = tmp_path / f"{device['id']}.password"
            secret.write_text(str(device["password"]))
            secret.chmod(0o600)
            device["password"] = {"file": str(secret)}
        if device["kind"].startswith("anpr."):
            device["plate_area"] = [0.0, 0.08, 1.0, 0.92]  # below the date/name overlay
    config["storage"] = {"state_dir": str(tmp_path / "state")}
    config["fusion"] = {"settle_s": 1.5, "min_gap_s": 0.3}
    return yaml.safe_dump(config, sort_keys=False, allow_unicode=True)


async def _run_lane(
    config_text: str, recognizer: SlowRecognizer, vehicles_done: Any, metrics: LaneMetrics
) -> list[Emission]:
    ends: list[Emission] = []

    async def emit(emission: Emission) -> None:
        if emission.type == EventType.END:
            ends.append(emission)
            metrics.crossing_finished(emission.record)  # as the agent does

    acquisition = Acquisition(
        parse_config(config_text),
        emit=emit,
        on_health=lambda *_: None,
        recognizer=recognizer,
        metrics=metrics,
    )
    await acquisition.start()
    try:
        deadline = time.monotonic() + 300
        while not vehicles_done.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        # The last vehicle's end: after its settle time and any read still holding it.
        expected = len(vehicles_done.result()) if vehicles_done.done() else 0
        deadline = time.monotonic() + 60
        while len(ends) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        await acquisition.stop()
    return ends


def test_every_vehicle_gets_a_read_per_camera_when_reads_are_slow(tmp_path: Path) -> None:
    scenario = Scenario.load(DEFAULT_SCENARIO)
    scenario = scenario.model_copy(
        update={
            "speedup": 2,
            "start_delay_s": 2,
            "vehicles": scenario.vehicles[:VEHICLES],
            "random_vehicles": RandomVehicles(count=0),
            "faults": [],
        }
    )
    sim_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=sim_loop.run_forever, daemon=True)
    thread.start()
    lane = SimulatedLane(scenario, truth_path=tmp_path / "truth.jsonl")
    metrics = LaneMetrics(checkpoint="KZ-SIM", lane="SIM1", agent_version="test")
    try:
        asyncio.run_coroutine_threadsafe(lane.start(), sim_loop).result(60)
        config_text = _config(lane, tmp_path)
        recognizer = SlowRecognizer(
            PlateRecognizer(parse_config(config_text).recognition), READ_DELAY_S
        )

        async def vehicles() -> list[dict[str, Any]]:
            await lane.wait()
            return list(lane.truth)

        done = asyncio.run_coroutine_threadsafe(vehicles(), sim_loop)
        ends = asyncio.run(_run_lane(config_text, recognizer, done, metrics))
    finally:
        asyncio.run_coroutine_threadsafe(lane.stop(), sim_loop).result(30)
        sim_loop.call_soon_threadsafe(sim_loop.stop)
        thread.join(5)

    truth = list(lane.truth)
    assert len(truth) == VEHICLES
    identity = LaneIdentity(checkpoint="KZ-SIM", lane="SIM1", direction="entry", boot_seq=1)
    bodies = [
        (make_event(e.record, EventType.END, identity, k).model_dump(mode="json"), 0.0)
        for k, e in enumerate(ends, start=1)
    ]
    matching = match_crossings(truth, bodies)
    assert sorted(matching.matches) == list(range(VEHICLES)), (matching, bodies)
    for vehicle, crossings in matching.matches.items():
        for camera in ("cam_front", "cam_rear"):
            read = sum(
                s["frames_read"]
                for ci in crossings
                for s in bodies[ci][0]["coverage"]["sensors"]
                if s["device"] == camera
            )
            assert read >= 1, (vehicle, camera, [bodies[ci][0]["coverage"] for ci in crossings])
    # Each plate of a crossing carries the read's country and layout as the recogniser gave
    # them (edge.recognize.origin), through fusion's vote, and its text once per row.
    plates = [plate for body, _ in bodies for plate in body["plates"]]
    assert plates
    for plate in plates:
        assert plate["layout"] in LAYOUTS and plate["country"] is not None
        assert 0 < plate["country_confidence"] <= 1 and 0 < plate["layout_confidence"] <= 1
        assert "".join(plate["row_texts"]) == plate["text"]
        assert 1 <= len(plate["row_texts"]) <= plate["rows"]
    # The reads were fewer than the frames offered: the scheduler chose, it did not queue all.
    text = metrics.render().decode()
    offered = _sample(text, 'lane_recognition_frames_offered_total{camera="cam_front"}')
    read = _sample(text, 'lane_recognition_frames_read_total{camera="cam_front"}')
    assert 0 < read < offered, text
    assert _sample(text, 'lane_recognition_vehicles_unread_total{camera="cam_front"}') == 0


def _sample(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return 0.0
