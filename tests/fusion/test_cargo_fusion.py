"""Container codes and orange plates voted into the crossing (recordings through the correlator)."""

from __future__ import annotations

import json
from pathlib import Path

from edge.events import EventType
from tests.fusion.test_xray_fusion import RECORDINGS, ends, run, run_lines


def test_two_boxes_a_misread_dropped_and_the_orange_plates_disagreeing() -> None:
    _c, emissions, scans = run(RECORDINGS / "cargo_two_boxes_and_adr.jsonl")
    (_t, first), (_t2, second) = ends(emissions)
    boxes = first.record.containers or []
    assert [(b.position, b.code, b.size_type) for b in boxes] == [
        ("front", "CSQU3054383", "22G1"),
        ("rear", "MSCU1234566", "22G1"),
    ]  # CSQU3054388, the same box misread with a wrong check digit, is gone
    assert all(b.check_digit_ok and b.verification == "check_digit" for b in boxes)
    assert first.record.adr is not None
    assert (first.record.adr.kemler, first.record.adr.un) == ("33", "1203")
    codes = [a.code for a in first.record.alarms]
    assert codes == ["cargo.dangerous_goods", "cargo.adr_mismatch"]
    # The scanner lists one of the two boxes: no mismatch.
    assert "cargo.xray_mismatch" not in codes
    (box,) = second.record.containers or []
    assert (box.position, box.code) == ("whole", "MAEU1234567")  # one 45 ft box
    assert second.record.adr is None and second.record.alarms == []
    assert scans == []


def _one_truck(reads: list[dict[str, object]], scan: dict[str, object] | None = None) -> list[str]:
    lines = (RECORDINGS / "cargo_two_boxes_and_adr.jsonl").read_text().splitlines()
    header, start, plate = lines[:3]
    out = [header, start, plate]
    out += [json.dumps({"t": 3.0 + 0.1 * i, "container": r}) for i, r in enumerate(reads)]
    out += [
        json.dumps({"t": 10.0, "io": {"entry_loop": False, "exit_loop": True}}),
        json.dumps({"t": 11.0, "io": {"exit_loop": False}}),
    ]
    if scan is not None:
        out.append(json.dumps({"t": 12.0, "xray": scan}))
    return [*out, json.dumps({"t": 60.0, "tick": True})]


def test_a_wrong_check_digit_is_carried_as_read_only(tmp_path: Path) -> None:
    reads = [{"text": "CSQU3054384", "size_type": "42G1", "confidence": 0.9}] * 3
    _c, emissions, _s = run_lines(tmp_path, _one_truck(reads))
    ((_t, end),) = ends(emissions)
    (box,) = end.record.containers or []
    assert box.code == "CSQU3054384" and box.verification == "read_only"
    assert box.check_digit_ok is False


def test_the_scanners_container_disagreeing_raises_the_mismatch(tmp_path: Path) -> None:
    reads = [{"text": "CSQU3054383", "size_type": "45G1", "confidence": 0.9}] * 2
    scan = {"scan_id": "S1", "started": 2.0, "finished": 9.0, "container": "MSCU1234566"}
    _c, emissions, _s = run_lines(tmp_path, _one_truck(reads, scan))
    ((_t, end),) = ends(emissions)
    (alarm,) = [a for a in end.record.alarms if a.code == "cargo.xray_mismatch"]
    assert "MSCU1234566" in alarm.message and "CSQU3054383" in alarm.message


def test_a_truck_without_cargo_carries_no_cargo_keys(tmp_path: Path) -> None:
    _c, emissions, _s = run_lines(tmp_path, _one_truck([]))
    for _t, e in emissions:
        assert e.record.containers is None and e.record.adr is None
        assert not any(a.code.startswith("cargo.") for a in e.record.alarms)
    assert any(e.type == EventType.END for _t, e in emissions)
