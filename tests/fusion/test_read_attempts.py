"""Each crossing's coverage says how many frames each plate camera read of its vehicle
(``frames_read``): the count `lane score` turns into ``vehicles_without_read_attempt``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from edge.crossing import CrossingRecord
from edge.events import EventType
from edge.replay import feed, load

HEADER = {
    "devices": [
        {"id": "io", "kind": "laneio.modbus"},
        {"id": "cam-front", "kind": "anpr.stream", "role": "front"},
        {"id": "cam-rear", "kind": "anpr.stream", "role": "rear"},
        {"id": "cam-scene", "kind": "anpr.stream", "role": "overview"},
    ],
    "settings": {"lane_type": "truck"},
}


def _read(camera: str, captured: float, done: float, *, read: bool = True) -> list[dict[str, Any]]:
    return [
        {"t": captured, "recognition_started": {"camera": camera, "captured": captured}},
        {"t": done, "recognition_done": {"camera": camera, "captured": captured, "read": read}},
    ]


def _vehicle(entry: float) -> list[dict[str, Any]]:
    """Entry loop at ``entry``, the lane clear 4 s later."""
    return [
        {"t": entry, "io": {"entry_loop": True}},
        {"t": entry + 3.4, "io": {"entry_loop": False, "exit_loop": True}},
        {"t": entry + 4.0, "io": {"exit_loop": False}},
    ]


def _ends(tmp_path: Path, steps: list[dict[str, Any]]) -> list[CrossingRecord]:
    steps = sorted([*steps, {"t": 30.0, "tick": True}], key=lambda s: s["t"])
    path = tmp_path / "lane.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in [HEADER, *steps]) + "\n")
    correlator, loaded = load(path)
    return [e.record for step in loaded for e in feed(correlator, step) if e.type == EventType.END]


def _frames_read(record: CrossingRecord) -> dict[str, int | None]:
    return {s.device: s.frames_read for s in record.coverage.sensors}


def test_frames_read_per_camera_count_reads_not_frames_given_up(tmp_path: Path) -> None:
    steps = [
        *_vehicle(1.0),
        *_read("cam-front", 0.5, 0.8),  # the cab before the loop: this vehicle's
        *_read("cam-front", 1.5, 2.5),
        *_read("cam-front", 1.6, 2.6, read=False),  # waited, then given up unread
        *_read("cam-rear", 5.2, 5.6),  # the trailer leaving, after the lane went clear
    ]
    (record,) = _ends(tmp_path, steps)
    assert _frames_read(record) == {
        "io": None,
        "cam-front": 2,
        "cam-rear": 1,
        "cam-scene": None,  # a scene camera is never read for plates
    }


def test_a_vehicle_no_frame_of_which_was_read_shows_zero(tmp_path: Path) -> None:
    (record,) = _ends(tmp_path, [*_vehicle(1.0), *_read("cam-front", 1.5, 2.0, read=False)])
    assert _frames_read(record)["cam-front"] == 0
    assert _frames_read(record)["cam-rear"] == 0


def test_a_front_frame_after_the_lane_went_clear_is_the_next_vehicles(tmp_path: Path) -> None:
    steps = [
        *_vehicle(1.0),  # clear at 5.0, ends at 6.5
        *_read("cam-rear", 5.3, 5.5),  # the first vehicle leaving
        *_read("cam-front", 5.4, 5.7),  # the second one coming
        *_vehicle(7.0),
    ]
    first, second = _ends(tmp_path, steps)
    assert (_frames_read(first)["cam-front"], _frames_read(first)["cam-rear"]) == (0, 1)
    assert (_frames_read(second)["cam-front"], _frames_read(second)["cam-rear"]) == (1, 0)


def _plate(camera: str, position: str, text: str, seen: float, t: float) -> dict[str, Any]:
    return {
        "t": t,
        "plate": {
            "camera": camera,
            "position": position,
            "text": text,
            "confidence": 0.95,
            "seen": seen,
        },
    }


def test_a_front_plate_seen_while_the_last_vehicle_settles_is_the_next_vehicles(
    tmp_path: Path,
) -> None:
    """The next truck comes into the front camera's view while the last one, its lane clear,
    waits out settle_s: its plate is neither the last one's nor a tailgater's."""
    steps = [
        *_vehicle(1.0),  # clear at 5.0; settles until 6.5
        *_read("cam-front", 1.5, 1.7),
        _plate("cam-front", "front", "111AAA01", 1.5, 1.6),
        *_read("cam-rear", 5.2, 5.5),
        _plate("cam-rear", "rear", "111AAA01", 5.2, 5.4),
        *_read("cam-front", 5.3, 5.8),
        _plate("cam-front", "front", "222BBB02", 5.3, 5.7),
        *_vehicle(6.0),  # its entry loop before the first one ended
    ]
    first, second = _ends(tmp_path, steps)
    assert {p.position: p.text for p in first.plates} == {"front": "111AAA01", "rear": "111AAA01"}
    assert {p.position: p.text for p in second.plates} == {"front": "222BBB02"}
    assert (_frames_read(first)["cam-front"], _frames_read(first)["cam-rear"]) == (1, 1)
    assert (_frames_read(second)["cam-front"], _frames_read(second)["cam-rear"]) == (1, 0)


def test_a_vehicle_held_for_a_read_past_settle_s_does_not_swallow_the_next(
    tmp_path: Path,
) -> None:
    """The exit loop missed (a poll under load): the lane clear at 4.0 ends the vehicle at 5.5,
    but a frame still being read holds it; the next presence at 6.0 is the next vehicle."""
    steps = [
        {"t": 1.0, "io": {"entry_loop": True}},
        {"t": 4.0, "io": {"entry_loop": False}},
        {"t": 3.9, "recognition_started": {"camera": "cam-front", "captured": 3.9}},
        {"t": 6.0, "io": {"entry_loop": True}},
        {"t": 7.5, "recognition_done": {"camera": "cam-front", "captured": 3.9}},
        {"t": 9.0, "io": {"entry_loop": False, "exit_loop": True}},
        {"t": 9.5, "io": {"exit_loop": False}},
    ]
    first, second = _ends(tmp_path, steps)
    assert first.end_reason == "reversed"  # as it would have ended without the read
    assert _frames_read(first)["cam-front"] == 1
    assert second.end_reason == "exit"
