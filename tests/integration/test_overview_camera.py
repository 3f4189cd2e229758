"""An overview (scene) camera on a simulated lane: never a plate position, its picture of each
vehicle goes with the crossing's ``end`` as evidence, and nothing in the agent dies of it."""

from __future__ import annotations

import hashlib
import time
from pathlib import Path

import cv2
import numpy as np

from edge.devtools.harness import DEFAULT_SCENARIO, LaneHarness
from simulators.scenario import CameraSpec, RandomVehicles, Scenario


def test_an_overview_camera_gives_each_crossing_a_picture_and_no_plate(tmp_path: Path) -> None:
    scenario = Scenario.load(DEFAULT_SCENARIO)
    cameras = CameraSpec(roles=["front", "overview"], fps=8, width=640, height=360)
    scenario = scenario.model_copy(
        update={
            "speedup": 4,
            "vehicles": scenario.vehicles[:2],
            "random_vehicles": RandomVehicles(count=0),
            "faults": [],
            "lane": scenario.lane.model_copy(update={"cameras": cameras}),
        }
    )
    harness = LaneHarness(scenario, tmp_path, settle_s=1.0).start()
    try:
        while not harness.vehicles_done():
            assert harness.agent_alive(), harness.agent_log.read_text()[-2000:]
            harness.poll(0.5)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and not (
            len(harness.crossings("end")) >= 2
            and all(
                f"{e.body['crossing_id']}/{ref['file']}" in harness.evidence
                for e in harness.crossings("end")
                for ref in e.body.get("overview", [])
            )
        ):
            harness.poll(0.2)
        assert harness.agent_alive(), harness.agent_log.read_text()[-2000:]
    finally:
        harness.stop()

    ends = [d.body for d in harness.crossings("end")]
    assert len(ends) == 2, ends
    for end in ends:
        # Plates come from the plate camera only; the overview camera fills no position. (Whether
        # the front plate was read in time depends on the machine's load: not asserted here.)
        assert all(p["camera"] == "cam_front" for p in end["plates"]), end["plates"]
        sensors = {s["device"]: s["state"] for s in end["coverage"]["sensors"]}
        assert sensors["cam_overview"] == "UP"
        (picture,) = end["overview"]
        assert picture["kind"] == "overview" and picture["file"] == "overview-cam_overview.jpg"
        data = harness.evidence[f"{end['crossing_id']}/{picture['file']}"]
        assert hashlib.sha256(data).hexdigest() == picture["sha256"]
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape[:2] == (360, 640)
    log = harness.agent_log.read_text()
    assert "Traceback" not in log and "ValueError" not in log, log[-3000:]
