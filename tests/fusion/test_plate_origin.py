"""A crossing's plate carries the country and layout of the read that won the vote, as the
recogniser gave them, and each row's text (recorded lanes through the correlator)."""

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
    ],
    "settings": {"lane_type": "truck"},
}


def _plate(t: float, position: str, text: str, confidence: float, **origin: Any) -> dict[str, Any]:
    camera = "cam-front" if position == "front" else "cam-rear"
    plate = {"camera": camera, "position": position, "text": text, "confidence": confidence}
    if "layout" in origin:  # as the agent hands a read on: each row's text, one row here
        origin.setdefault("row_texts", [text])
    return {"t": t, "plate": {**plate, **origin}}


def _end(tmp_path: Path, steps: list[dict[str, Any]]) -> CrossingRecord:
    steps = [
        {"t": 1.0, "io": {"entry_loop": True}},
        *steps,
        {"t": 4.4, "io": {"entry_loop": False, "exit_loop": True}},
        {"t": 5.0, "io": {"exit_loop": False}},
        {"t": 30.0, "tick": True},
    ]
    path = tmp_path / "lane.jsonl"
    path.write_text("\n".join(json.dumps(line) for line in [HEADER, *steps]) + "\n")
    correlator, loaded = load(path)
    ends = [e.record for step in loaded for e in feed(correlator, step) if e.type == EventType.END]
    assert len(ends) == 1
    return ends[0]


def test_the_winning_read_gives_country_layout_and_rows(tmp_path: Path) -> None:
    kz = {"country": "KZ", "rows": 1, "layout": "one-row", "layout_confidence": 1.0}
    trailer = {"country": "KZ", "rows": 2, "layout": "trailer", "type": "trailer"}
    record = _end(
        tmp_path,
        [
            _plate(1.2, "front", "123ABC01", 0.9, **kz, country_confidence=0.97),
            # A misread of the same plate, as sure but alone: it loses the vote, and its
            # country and layout go with it.
            _plate(1.4, "front", "123ABC07", 0.95, **{**kz, "country": "UZ"}),
            _plate(1.6, "front", "123ABC01", 0.8, **kz, country_confidence=0.9),
            _plate(
                3.8,
                "rear",
                "1234AB05",
                0.9,
                **trailer,
                row_texts=["1234", "AB05"],
                country_confidence=0.56,
                layout_confidence=0.99,
            ),
        ],
    )
    plates = {p.position: p for p in record.plates}
    front, rear = plates["front"], plates["rear"]
    assert (front.text, front.country, front.layout) == ("123ABC01", "KZ", "one-row")
    assert front.country_confidence == 0.97  # the best read of the winning text
    assert front.row_texts == ["123ABC01"]  # the recogniser's own, from each read
    assert (rear.text, rear.layout, rear.rows, rear.type) == ("1234AB05", "trailer", 2, "trailer")
    assert rear.row_texts == ["1234", "AB05"] and rear.layout_confidence == 0.99
    wire = json.loads(rear.to_json())
    assert wire["row_texts"] == ["1234", "AB05"] and wire["country_confidence"] == 0.56


def test_a_read_without_them_publishes_none_of_the_keys(tmp_path: Path) -> None:
    record = _end(tmp_path, [_plate(1.2, "front", "123ABC01", 0.9, country="KZ")])
    wire = json.loads(record.plates[0].to_json())
    assert not {"country_confidence", "layout", "layout_confidence", "row_texts"} & set(wire)
