"""A frame still in plate recognition holds the end of the vehicle it may show: on every input,
not only on an idle tick (a 10 Hz weighbridge never lets the agent's queue idle), and never for
longer than ``recognition_wait_s`` past the settle time."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.crossing import CrossingRecord
from edge.events import EventType
from edge.fusion.settings import FusionSettings
from edge.replay import feed, load, replay

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"
HEADER = {
    "devices": [
        {"id": "io", "kind": "laneio.modbus"},
        {"id": "cam-front", "kind": "anpr.stream", "role": "front"},
        {"id": "cam-rear", "kind": "anpr.stream", "role": "rear"},
        {"id": "scale", "kind": "weighbridge.toledo"},
    ],
    "settings": {"lane_type": "truck"},
}
SETTINGS = FusionSettings()


def _weights(start: float, stop: float) -> list[dict[str, Any]]:
    """An empty deck reported at 10 Hz: an input every 0.1 s, so the agent never idles."""
    steps = []
    k = round(start * 10)
    while k / 10 <= stop:
        steps.append({"t": k / 10, "weight": {"gross_kg": 0, "stable": True}})
        k += 1
    return steps


def _lane(reads: list[dict[str, Any]], *, until: float = 14.0) -> list[dict[str, Any]]:
    """One truck: entry at 0.2, the lane clear at 4.4; ``reads`` and 10 Hz weight around."""
    steps = [
        {"t": 0.2, "io": {"entry_loop": True}},
        {"t": 1.0, "weight": {"gross_kg": 20_000, "stable": True}},
        {"t": 3.8, "io": {"entry_loop": False, "exit_loop": True}},
        {"t": 4.4, "io": {"exit_loop": False}},
        *reads,
        *_weights(4.5, until),
    ]
    return sorted(steps, key=lambda s: s["t"])


def _end_time(tmp_path: Path, steps: list[dict[str, Any]]) -> tuple[float, CrossingRecord]:
    """When (the step's ``t``) the one crossing ended, and its record."""
    path = tmp_path / "lane.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in [HEADER, *steps]) + "\n")
    correlator, loaded = load(path)
    ends = [
        (float(step["t"]), e.record)
        for step in loaded
        for e in feed(correlator, step)
        if e.type == EventType.END
    ]
    assert len(ends) == 1, ends
    return ends[0]


def _rear_read(*, captured: float, done: float) -> list[dict[str, Any]]:
    """A rear frame read from ``captured`` to ``done``, finding plate 1234AB01."""
    frame = {"camera": "cam-rear", "captured": captured}
    plate = {"camera": "cam-rear", "position": "rear", "text": "1234AB01", "confidence": 0.9}
    return [
        {"t": captured, "recognition_started": frame},
        {"t": done, "plate": {**plate, "seen": captured}},
        {"t": done, "recognition_done": frame},
    ]


def test_a_slow_read_of_a_frame_taken_before_the_lane_went_clear_holds_the_end(
    tmp_path: Path,
) -> None:
    reads = _rear_read(captured=4.3, done=6.3)
    ended_at, record = _end_time(tmp_path, _lane(reads))
    assert {p.position: p.text for p in record.plates} == {"rear": "1234AB01"}
    assert ended_at == 6.3  # the read's done released it, past settle_s (5.9)
    assert record.end_reason == "exit"


def test_without_a_read_in_flight_the_end_comes_after_settle_s(tmp_path: Path) -> None:
    ended_at, _record = _end_time(tmp_path, _lane([]))
    assert ended_at == round(4.4 + SETTINGS.settle_s, 1)


def test_a_read_that_never_finishes_holds_the_end_at_most_recognition_wait_s(
    tmp_path: Path,
) -> None:
    reads = [{"t": 4.3, "recognition_started": {"camera": "cam-rear", "captured": 4.3}}]
    ended_at, _record = _end_time(tmp_path, _lane(reads))
    # Held past settle_s, given up once the read has run settle_s + recognition_wait_s.
    assert 4.4 + SETTINGS.settle_s + 1.0 < ended_at
    assert ended_at <= 4.4 + SETTINGS.settle_s + SETTINGS.recognition_wait_s


def test_a_front_frame_captured_after_the_lane_went_clear_holds_nothing(tmp_path: Path) -> None:
    """A front camera then looks at the next vehicle coming, not at this one."""
    reads = [{"t": 4.6, "recognition_started": {"camera": "cam-front", "captured": 4.6}}]
    ended_at, _record = _end_time(tmp_path, _lane(reads))
    assert ended_at == round(4.4 + SETTINGS.settle_s, 1)


def test_a_rear_frame_captured_after_the_lane_went_clear_holds_the_end(tmp_path: Path) -> None:
    """A rear camera sees the vehicle leaving: its best frames come after the lane went clear
    (a loaded controller reads them late), and until the next vehicle comes they show it."""
    reads = _rear_read(captured=4.6, done=6.8)
    ended_at, record = _end_time(tmp_path, _lane(reads))
    assert ended_at == 6.8  # past settle_s (5.9): the read's done released it
    assert {p.position: p.text for p in record.plates} == {"rear": "1234AB01"}
    assert record.coverage is not None
    rear = next(s for s in record.coverage.sensors if s.device == "cam-rear")
    assert rear.frames_read == 1


def test_a_rear_frame_captured_after_the_next_vehicle_came_holds_nothing_more(
    tmp_path: Path,
) -> None:
    """Once the next vehicle is in, a rear frame is counted for it, and holds only it."""
    reads = [{"t": 5.2, "recognition_started": {"camera": "cam-rear", "captured": 5.2}}]
    steps = [*_lane(reads), {"t": 5.0, "io": {"entry_loop": True}}]
    steps.sort(key=lambda s: s["t"])
    path = tmp_path / "lane.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in [HEADER, *steps]) + "\n")
    correlator, loaded = load(path)
    first_end = next(
        float(step["t"])
        for step in loaded
        for e in feed(correlator, step)
        if e.type == EventType.END
    )
    assert first_end == round(4.4 + SETTINGS.settle_s, 1)


def test_a_stuck_read_stops_holding_later_vehicles(tmp_path: Path) -> None:
    """A read whose done never comes is given up; the next vehicle ends on time."""
    reads = [{"t": 4.3, "recognition_started": {"camera": "cam-rear", "captured": 4.3}}]
    steps = [
        *_lane(reads, until=30.0),
        {"t": 20.0, "io": {"entry_loop": True}},
        {"t": 21.0, "weight": {"gross_kg": 20_000, "stable": True}},
        {"t": 23.0, "io": {"entry_loop": False, "exit_loop": True}},
        {"t": 23.5, "io": {"exit_loop": False}},
    ]
    steps.sort(key=lambda s: s["t"])
    path = tmp_path / "lane.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in [HEADER, *steps]) + "\n")
    correlator, loaded = load(path)
    ends = [
        float(step["t"])
        for step in loaded
        for e in feed(correlator, step)
        if e.type == EventType.END
    ]
    assert len(ends) == 2
    assert ends[1] == round(23.5 + SETTINGS.settle_s, 1)


def test_the_golden_10hz_lane_keeps_the_rear_plate_on_its_own_vehicle() -> None:
    emissions = list(replay(RECORDINGS / "weighbridge_10hz_late_rear_plate.jsonl"))
    ends = [e.record for e in emissions if e.type == EventType.END]
    plates = [{p.position: p.text for p in r.plates} for r in ends]
    assert plates == [
        {"front": "111AAA01", "rear": "1234AB01"},
        {"front": "333CCC02", "rear": "5678CD02"},
    ]
    # Not even for a while: no event of the second truck ever carried the first one's plate.
    second = ends[1].crossing_id
    for e in emissions:
        if e.record.crossing_id == second:
            assert "1234AB01" not in {p.text for p in e.record.plates}, e.type
