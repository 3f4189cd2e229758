"""A controller too busy to read every frame still reads every truck's cargo.

The simulated cargo lane (front, rear and container cameras on HTTP/MJPEG, weighbridge, RPM,
lane I/O, the X-ray portal's drop folder) drives the agent's acquisition stage in this
process, with the real recogniser's models, every read made slow as on a loaded controller:
the container camera keeps each truck's sharpest frames and reads them after the truck has
passed, the orange plates are found by colour in every frame and the frames showing them
read, so each truck still gets its container codes and its ADR numbers, and a truck without
an orange plate gets none.
"""

from __future__ import annotations

import asyncio
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from edge.acquire import CONTAINER_READS, Acquisition
from edge.config import parse_config
from edge.crossing import LaneIdentity, make_event
from edge.devtools.score import match_crossings
from edge.events import EventType
from edge.fusion.model import Emission
from edge.recognize.pipeline import PlateRecognizer, PlateResult
from simulators.scenario import RandomVehicles, Scenario, SimulatedLane
from tests.integration.test_read_schedule import _config

ROOT = Path(__file__).resolve().parents[2]
TRUCKS = 4
READ_DELAY_S = 0.3  # on top of each plate read
TEXT_SEARCH_DELAY_S = 0.8  # on top of each container frame's text search


class _SlowDetector:
    def __init__(self, detector: Any, delay_s: float) -> None:
        self.detector, self.delay_s = detector, delay_s

    def __call__(self, image: np.ndarray, **kw: Any) -> Any:
        time.sleep(self.delay_s)
        return self.detector(image, **kw)


class SlowRecognizer:
    """The real recogniser and its models, each plate read and text search made slower."""

    def __init__(self, recognizer: PlateRecognizer) -> None:
        self.recognizer = recognizer
        self.detector = _SlowDetector(recognizer.detector, TEXT_SEARCH_DELAY_S)
        self.reader = recognizer.reader

    def read(self, image: np.ndarray) -> list[PlateResult]:
        time.sleep(READ_DELAY_S)
        return self.recognizer.read(image)


async def _run(config_text: str, recognizer: SlowRecognizer, done: Any) -> list[Emission]:
    ends: list[Emission] = []

    async def emit(emission: Emission) -> None:
        if emission.type == EventType.END:
            ends.append(emission)

    acquisition = Acquisition(
        parse_config(config_text), emit=emit, on_health=lambda *_: None, recognizer=recognizer
    )
    await acquisition.start()
    try:
        deadline = time.monotonic() + 300
        while not done.done() and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
        expected = len(done.result()) if done.done() else 0
        deadline = time.monotonic() + 90
        while len(ends) < expected and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    finally:
        await acquisition.stop()
    return ends


def test_each_trucks_containers_and_orange_plates_are_read_when_reads_are_slow(
    tmp_path: Path,
) -> None:
    scenario = Scenario.load(ROOT / "simulators/scenarios/cargo.yaml")
    base = scenario.random_vehicles or RandomVehicles()
    scenario = scenario.model_copy(
        update={
            "start_delay_s": 2,
            "random_vehicles": base.model_copy(update={"count": TRUCKS}),
        }
    )
    sim_loop = asyncio.new_event_loop()
    thread = threading.Thread(target=sim_loop.run_forever, daemon=True)
    thread.start()
    lane = SimulatedLane(scenario, truth_path=tmp_path / "truth.jsonl")
    try:
        asyncio.run_coroutine_threadsafe(lane.start(), sim_loop).result(60)
        config_text = _config(lane, tmp_path)
        recognizer = SlowRecognizer(PlateRecognizer(parse_config(config_text).recognition))

        async def vehicles() -> list[dict[str, Any]]:
            await lane.wait()
            return list(lane.truth)

        done = asyncio.run_coroutine_threadsafe(vehicles(), sim_loop)
        ends = asyncio.run(_run(config_text, recognizer, done))
    finally:
        asyncio.run_coroutine_threadsafe(lane.stop(), sim_loop).result(30)
        sim_loop.call_soon_threadsafe(sim_loop.stop)
        thread.join(5)

    truth = list(lane.truth)
    assert len(truth) == TRUCKS
    # The plan this test relies on: boxes on several trucks, an orange plate on some, not all.
    assert sum(bool(v["cargo"]["containers"]) for v in truth) >= 2
    assert 0 < sum("adr" in v["cargo"] for v in truth) < TRUCKS
    identity = LaneIdentity(checkpoint="KZ-SIM", lane="SIM1", direction="entry", boot_seq=1)
    bodies = [
        (make_event(e.record, EventType.END, identity, k).model_dump(mode="json"), 0.0)
        for k, e in enumerate(ends, start=1)
    ]
    matching = match_crossings(truth, bodies)
    assert sorted(matching.matches) == list(range(TRUCKS)), (matching, bodies)
    for index, crossings in matching.matches.items():
        (ci,) = crossings
        event, cargo = bodies[ci][0], truth[index]["cargo"]
        codes = sorted(c["code"] for c in event.get("containers") or [])
        assert codes == sorted(c["code"] for c in cargo["containers"]), (index, event)
        container_reads = [
            s["frames_read"] for s in event["coverage"]["sensors"] if s["device"] == "cam_container"
        ]
        assert container_reads and container_reads[0] <= CONTAINER_READS, event["coverage"]
        adr = event.get("adr")
        if "adr" in cargo:
            assert adr is not None, (index, event)
            assert (adr["kemler"], adr["un"]) == (cargo["adr"]["kemler"], cargo["adr"]["un"])
        else:
            assert adr is None, (index, event)
            assert not [a for a in event["alarms"] if a["code"].startswith("cargo.adr")]


def test_one_read_is_enough_only_when_it_holds_every_box_a_unit_can_carry() -> None:
    """A container camera stops reading a vehicle after one frame only when that frame's
    codes are all a unit carries (one 40/45 ft box, or two boxes), every check digit right."""
    from edge.acquire import _every_box
    from edge.cargo.container_read import ContainerSighting
    from edge.cargo.iso6346 import read_code

    def seen(code: str, size_type: str | None) -> ContainerSighting:
        return ContainerSighting(code, read_code(code), 0.9, (0, 0, 10, 10), size_type)

    forty, twenty = seen("CSQU3054383", "45G1"), seen("BICU1234565", "22G1")
    assert _every_box([forty])
    assert _every_box([twenty, seen("CSQU3054383", "22G1")])
    assert not _every_box([twenty])  # a second 20 ft box may be beside it
    assert not _every_box([seen("CSQU3054384", "45G1")])  # a wrong check digit: read again
    assert not _every_box([twenty, seen("CSQU3054384", "22G1")])
    assert not _every_box([])
