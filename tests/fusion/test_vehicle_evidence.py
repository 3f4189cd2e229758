"""What proves a presence is a vehicle: a thermal camera reports every poll, vehicle or not,
so only a region warmer than the empty lane counts; and a vehicle that just left, read again
on its way out, keeps its plate when a loop glitch opens a presence behind it."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.crossing import CrossingRecord
from edge.events import EventType
from edge.fusion.model import Emission
from edge.replay import replay

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"
HEADER = {
    "devices": [
        {"id": "io", "kind": "laneio.modbus"},
        {"id": "scale", "kind": "weighbridge.toledo"},
        {"id": "thermal", "kind": "thermal.modbus"},
    ],
    "settings": {"lane_type": "truck"},
}
ROAD = [{"index": i, "max_c": 9.5} for i in range(3)]
ENGINE = [{"index": 0, "max_c": 9.5}, {"index": 1, "max_c": 38.0}, {"index": 2, "max_c": 10.0}]


def _thermal(t: float, regions: list[dict[str, Any]]) -> dict[str, Any]:
    return {"t": t, "thermal": {"device": "thermal", "regions": regions}}


def _replay(tmp_path: Path, steps: list[dict[str, Any]]) -> list[Emission]:
    """``steps`` written as a recording of the lane in HEADER, replayed."""
    path = tmp_path / "lane.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in [HEADER, *steps]) + "\n")
    return list(replay(path))


def _crossings(tmp_path: Path, steps: list[dict[str, Any]]) -> list[CrossingRecord]:
    return [e.record for e in _replay(tmp_path, steps) if e.type == EventType.END]


def _blip(tmp_path: Path, during: list[dict[str, Any]]) -> list[Emission]:
    """The empty lane seen by the thermal camera, then a 0.3 s loop blip."""
    steps = [
        _thermal(0.0, ROAD),
        {"t": 1.0, "io": {"entry_loop": True}},
        _thermal(1.1, during),
        {"t": 1.3, "io": {"entry_loop": False}},
        {"t": 5.0, "tick": True},
    ]
    return _replay(tmp_path, steps)


def test_a_loop_blip_over_an_empty_lane_is_no_vehicle(tmp_path: Path) -> None:
    assert _blip(tmp_path, ROAD) == []


def test_a_warm_region_makes_a_short_presence_a_vehicle(tmp_path: Path) -> None:
    emissions = _blip(tmp_path, ENGINE)
    assert [e.type for e in emissions] == [EventType.NEW, EventType.END]
    sensors = {s.device: s.saw_vehicle for s in emissions[-1].record.coverage.sensors}
    assert sensors["thermal"] is True


def test_a_thermal_camera_showing_only_the_road_did_not_see_the_vehicle(tmp_path: Path) -> None:
    steps = [
        _thermal(0.0, ROAD),
        {"t": 1.0, "io": {"entry_loop": True}},
        _thermal(1.5, ROAD),
        {"t": 2.0, "weight": {"gross_kg": 18_000, "stable": True}},
        {"t": 4.0, "io": {"entry_loop": False, "exit_loop": True}},
        {"t": 4.5, "io": {"exit_loop": False}},
        {"t": 8.0, "tick": True},
    ]
    (end,) = _crossings(tmp_path, steps)
    sensors = {s.device: s.saw_vehicle for s in end.coverage.sensors}
    assert sensors == {"io": True, "scale": True, "thermal": False}


def test_a_chattering_exit_loop_behind_a_leaving_truck_makes_no_second_crossing() -> None:
    # The exit loop chatters after the truck left; the driver flags it only after seven
    # changes in a second, and the rear camera reads the truck again meanwhile.
    emissions = list(replay(RECORDINGS / "chatter_after_the_vehicle_left.jsonl"))
    ends = [e.record for e in emissions if e.type == EventType.END]
    assert len(ends) == 1
    assert {p.position: p.text for p in ends[0].plates} == {
        "front": "608HYR17",
        "rear": "608HYR17",
    }


def test_the_next_trucks_hot_brakes_are_not_the_last_ones(tmp_path: Path) -> None:
    # Truck 1 leaves (lane clear at 4.0) and settles; in the meantime the camera already sees
    # truck 2's 240 C brakes coming. The thermal.hot alarm is truck 2's alone.
    hot = [{"index": 0, "max_c": 240.0}, {"index": 1, "max_c": 30.0}, {"index": 2, "max_c": 9.5}]
    ends = _crossings(
        tmp_path,
        [
            _thermal(0.0, ROAD),
            {"t": 1.0, "io": {"entry_loop": True}},
            _thermal(2.0, ENGINE),
            {"t": 3.0, "io": {"entry_loop": False, "exit_loop": True}},
            {"t": 4.0, "io": {"exit_loop": False}},
            _thermal(4.5, hot),
            {"t": 5.0, "io": {"entry_loop": True}},
            _thermal(6.0, hot),
            {"t": 7.0, "io": {"entry_loop": False, "exit_loop": True}},
            {"t": 8.0, "io": {"exit_loop": False}},
            {"t": 12.0, "tick": True},
        ],
    )
    assert [[a.code for a in end.alarms] for end in ends] == [[], ["thermal.hot"]]
    assert [max(r.max_c for r in end.thermal.regions) for end in ends] == [38.0, 240.0]


def test_a_hot_truck_queueing_in_view_does_not_become_the_empty_lane(tmp_path: Path) -> None:
    # 30 s of a 45 C engine in view before the loop: the empty-lane floor rises 0.5 C, so the
    # truck is still seen warm once it is in; a blip then is a vehicle.
    queued = [{"index": 0, "max_c": 9.5}, {"index": 1, "max_c": 45.0}, {"index": 2, "max_c": 9.5}]
    steps = [_thermal(0.0, ROAD)] + [_thermal(float(t), queued) for t in range(1, 31)]
    steps += [
        {"t": 31.0, "io": {"entry_loop": True}},
        _thermal(31.1, queued),
        {"t": 31.3, "io": {"entry_loop": False}},
        {"t": 36.0, "tick": True},
    ]
    (end,) = _crossings(tmp_path, steps)
    sensors = {s.device: s.saw_vehicle for s in end.coverage.sensors}
    assert sensors["thermal"] is True


def test_a_scale_degraded_during_a_weighed_crossing_is_not_called_not_weighed(
    tmp_path: Path,
) -> None:
    """Issue 24 item 5: the note says what happened to this vehicle."""
    steps: list[dict[str, Any]] = [
        {"t": 0.0, "io": {"entry_loop": True}},
        {"t": 0.5, "weight": {"gross_kg": 18650, "stable": True}},
        {"t": 1.0, "health": {"device": "scale", "state": "DEGRADED", "reason": "garbage"}},
        {"t": 2.0, "io": {"entry_loop": False}},
        {"t": 2.5, "weight": {"gross_kg": 0, "stable": True}},
        {"t": 8.0, "tick": True},
    ]
    (crossing,) = _crossings(tmp_path, steps)
    assert crossing.weight is not None and crossing.weight.gross_kg == 18650
    notes = crossing.coverage.notes
    assert not any(n.startswith("not weighed") for n in notes), notes
    assert "scale DEGRADED during this crossing (garbage); weighed all the same" in notes


def test_a_scale_degraded_and_no_weight_is_not_weighed(tmp_path: Path) -> None:
    steps: list[dict[str, Any]] = [
        {"t": 0.0, "health": {"device": "scale", "state": "DEGRADED", "reason": "garbage"}},
        {"t": 0.1, "io": {"entry_loop": True}},
        {"t": 2.0, "io": {"entry_loop": False}},
        {"t": 8.0, "tick": True},
    ]
    (crossing,) = _crossings(tmp_path, steps)
    assert crossing.weight is None
    assert "not weighed: scale DEGRADED (garbage)" in crossing.coverage.notes
