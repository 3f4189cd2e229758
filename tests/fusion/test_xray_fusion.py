"""X-ray scans fused into crossings: the hold, the scanner's clock, scans sent alone."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from edge.cargo.xray_link import ClockOffset, LinkedScan
from edge.events import EventType
from edge.fusion.correlator import Correlator
from edge.fusion.model import Emission
from edge.replay import feed, load

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"
T0 = datetime(2026, 1, 1, tzinfo=UTC)


Run = tuple[Correlator, list[tuple[float, Emission]], list[tuple[float, LinkedScan]]]


def run(recording: Path) -> Run:
    """Every emission and every scan sent alone, with the step time it came out at."""
    correlator, steps = load(recording)
    emissions: list[tuple[float, Emission]] = []
    scans: list[tuple[float, LinkedScan]] = []
    for step in steps:
        t = float(step["t"])
        emissions += [(t, e) for e in feed(correlator, step)]
        scans += [(t, s) for s in correlator.take_scans()]
    return correlator, emissions, scans


def run_lines(tmp_path: Path, lines: list[str]) -> Run:
    path = tmp_path / "recording.jsonl"
    path.write_text("\n".join(lines) + "\n")
    return run(path)


def truck_lines() -> list[str]:
    """One truck, scanner clock on time, lane clear at 11 s; no scan yet."""
    return (RECORDINGS / "xray_late_and_unmatched.jsonl").read_text().splitlines()[:6]


def ends(emissions: list[tuple[float, Emission]]) -> list[tuple[float, Emission]]:
    return [(t, e) for t, e in emissions if e.type == EventType.END]


def test_back_to_back_trucks_each_get_their_own_scan_and_the_lane_stays_free() -> None:
    _c, emissions, scans = run(RECORDINGS / "xray_back_to_back.jsonl")
    assert scans == []
    (t1, first), (t2, second) = ends(emissions)
    # The first truck's end waited for its scan (at 16 s), the second came in meanwhile.
    assert t1 == 16.0 and t2 == 27.0
    news = [(t, e.record.crossing_id) for t, e in emissions if e.type == EventType.NEW]
    assert news[1] == (14.5, second.record.crossing_id)  # announced at its plate
    # The end is when the lane went clear, not when the scan came.
    assert first.record.end == T0 + timedelta(seconds=11)
    assert first.record.xray is not None and second.record.xray is not None
    assert first.record.xray.scan_id == "GATE2-0001"
    assert second.record.xray.scan_id == "GATE2-0002"
    # The scanner's clock is 42 s ahead: estimated from finished - received, least delayed.
    assert first.record.xray.clock_offset_s == 35.0  # 51 - 16: 7 s of export delay in it
    assert second.record.xray.clock_offset_s == 38.0  # 65 - 27: the better sample wins
    # The scanner's own times are carried as it gave them.
    assert first.record.xray.started == T0 + timedelta(seconds=45)
    assert [a.code for a in first.record.alarms] == []
    mismatch = [a for a in second.record.alarms if a.code == "cargo.xray_mismatch"]
    assert len(mismatch) == 1 and "222BBB09" in mismatch[0].message
    assert all("unscanned" not in n for _t, e in emissions for n in e.record.coverage.notes)


def test_a_scan_after_the_wait_goes_out_alone_linked_to_its_crossing() -> None:
    _c, emissions, scans = run(RECORDINGS / "xray_late_and_unmatched.jsonl")
    (t_truck, truck), (t_car, car) = ends(emissions)
    assert t_truck == 40.0  # the wait (11 + 1.5 + 20 s) was over at the next input
    assert truck.record.xray is None
    assert "unscanned: no X-ray scan from xray1" in truck.record.coverage.notes
    # A light vehicle does not wait for a scan, and is not called unscanned.
    assert t_car == 106.0
    assert not any("unscanned" in n for n in car.record.coverage.notes)
    (t_late, late), (t_orphan, orphan) = scans
    assert t_late == 40.0 and late.reason == "late"
    assert late.crossing_id == truck.record.crossing_id
    assert late.alarms == ()  # its plate is the truck's; the lane read no container
    assert t_orphan == 300.0 and orphan.reason == "unmatched" and orphan.crossing_id is None


def test_the_wait_is_bounded_by_xray_wait_s(tmp_path: Path) -> None:
    for limit, ended in ((32.4, False), (32.5, True)):
        _c, emissions, _s = run_lines(
            tmp_path, [*truck_lines(), json.dumps({"t": limit, "tick": True})]
        )
        assert bool(ends(emissions)) is ended


def test_a_scan_late_for_a_crossing_with_other_plates_raises_the_mismatch(tmp_path: Path) -> None:
    scan = {
        "device": "xray1",
        "scan_id": "S9",
        "started": 3.0,
        "finished": 9.0,
        "plate": "999ZZZ99",
    }
    _c, _e, scans = run_lines(tmp_path, [*truck_lines(), json.dumps({"t": 40.0, "xray": scan})])
    ((_t, late),) = scans
    assert late.reason == "late" and [a.code for a in late.alarms] == ["cargo.xray_mismatch"]


def test_a_second_scan_of_one_crossing_goes_out_alone(tmp_path: Path) -> None:
    scans_in = [
        {"t": 12.0, "xray": {"scan_id": f"S{i}", "started": 3.0, "finished": 9.0}} for i in (1, 2)
    ]
    _c, emissions, scans = run_lines(
        tmp_path, [*truck_lines(), *map(json.dumps, scans_in), '{"t": 13.0, "tick": true}']
    )
    ((_t, end),) = ends(emissions)
    assert end.record.xray is not None and end.record.xray.scan_id == "S1"
    ((_t2, second),) = scans
    assert second.reason == "second_scan" and second.crossing_id == end.record.crossing_id


def test_a_scanner_down_holds_no_end_and_says_why(tmp_path: Path) -> None:
    lines = truck_lines()
    health = json.dumps({"t": 0.1, "health": {"device": "xray1", "state": "DOWN", "reason": "x"}})
    _c, emissions, _s = run_lines(
        tmp_path, [lines[0], lines[1], health, *lines[2:], '{"t": 13.0, "tick": true}']
    )
    ((t, end),) = ends(emissions)
    assert t == 13.0
    assert any(n.startswith("not X-rayed: xray1 DOWN") for n in end.record.coverage.notes)


def test_clock_offset_takes_the_least_delayed_sample_and_refuses_wild_ones() -> None:
    clock = ClockOffset(samples=3, max_offset_s=600, tolerance_s=5)
    assert clock.best_s is None and clock.offset_s == 0.0
    clock.add(T0 + timedelta(seconds=42), T0 + timedelta(seconds=7))
    assert clock.offset_s == 35.0  # finished after it was received: ahead, whatever the delay
    for delay in (2.0, 4.0):
        clock.add(T0 + timedelta(seconds=42), T0 + timedelta(seconds=delay))
    assert clock.offset_s == 40.0
    clock.add(T0, T0 + timedelta(hours=5))  # an archived scan re-reported after a restart
    assert clock.refused == 1 and clock.offset_s == 40.0
    for _ in range(3):  # only the last `samples` count
        clock.add(T0 + timedelta(seconds=42), T0 + timedelta(seconds=10))
    assert clock.offset_s == 32.0


def test_a_late_sample_is_not_taken_for_a_clock_behind_until_it_repeats() -> None:
    clock = ClockOffset(samples=16, min_samples=3, tolerance_s=5)
    clock.add(T0, T0 + timedelta(seconds=31))  # one slow export
    assert clock.best_s == -31.0 and clock.offset_s == 0.0
    clock.add(T0, T0 + timedelta(seconds=3))
    assert clock.offset_s == 0.0  # -3 s: within the tolerance, not applied
    slow = ClockOffset(samples=16, min_samples=3, tolerance_s=5)
    for delay in (61.0, 60.5, 62.0):  # every scan a minute late: a scanner behind
        slow.add(T0, T0 + timedelta(seconds=delay))
    assert slow.offset_s == -60.5


def test_a_scanner_a_minute_behind_is_matched_once_its_offset_is_known(tmp_path: Path) -> None:
    header, *_ = truck_lines()
    lines = [header]
    for n in range(4):  # trucks every 100 s, scans 60 s behind, received 2 s after the scan
        t = 100.0 * n
        lines += [
            json.dumps({"t": t, "io": {"entry_loop": True}}),
            json.dumps(
                {
                    "t": t + 0.5,
                    "plate": {
                        "camera": "cam-front",
                        "position": "front",
                        "text": f"{n}00AAA01",
                        "confidence": 0.9,
                    },
                }
            ),
            json.dumps({"t": t + 2, "weight": {"gross_kg": 30000, "stable": True}}),
            json.dumps({"t": t + 10, "io": {"entry_loop": False, "exit_loop": True}}),
            json.dumps({"t": t + 11, "io": {"exit_loop": False}}),
            json.dumps(
                {
                    "t": t + 11.5,
                    "xray": {
                        "scan_id": f"S{n}",
                        "started": t + 3 - 60,
                        "finished": t + 9.5 - 60,
                        "plate": f"{n}00AAA01",
                    },
                }
            ),
        ]
    _c, emissions, scans = run_lines(tmp_path, [*lines, '{"t": 500.0, "tick": true}'])
    linked = [e.record.xray.scan_id if e.record.xray else None for _t, e in ends(emissions)]
    # The first scans cannot tell a slow export from a clock behind: not guessed.
    assert linked[:2] == [None, None] and {s.reason for _t, s in scans} == {"unmatched"}
    assert linked[2:] == ["S2", "S3"]
    assert all(e.record.xray.clock_offset_s == -62.0 for _t, e in ends(emissions)[2:])


@pytest.mark.parametrize("name", ["xray_back_to_back", "xray_late_and_unmatched"])
def test_every_scan_is_either_on_a_crossing_or_sent_alone(name: str) -> None:
    correlator, emissions, scans = run(RECORDINGS / f"{name}.jsonl")
    on_crossings = {e.record.xray.scan_id for _t, e in ends(emissions) if e.record.xray}
    alone = {s.scan.scan_id for _t, s in scans}
    recorded = {
        json.loads(line)["xray"]["scan_id"]
        for line in (RECORDINGS / f"{name}.jsonl").read_text().splitlines()
        if '"xray"' in line and '"scan_id"' in line
    }
    assert on_crossings | alone == recorded and not on_crossings & alone
    assert correlator.xray.linked == len(on_crossings)


def test_the_archive_re_read_after_a_restart_is_not_sent_again(tmp_path: Path) -> None:
    header = truck_lines()[0]
    old = {"scan_id": "OLD", "started": 0.0, "finished": 30.0}  # finished 2 h before receipt
    fresh = {"scan_id": "NEW", "started": 7000.0, "finished": 7150.0}  # 50 s ago: unmatched
    correlator, _e, scans = run_lines(
        tmp_path,
        [header, json.dumps({"t": 7200.0, "xray": fresh}), json.dumps({"t": 7230.0, "xray": old})],
    )
    assert [s.scan.scan_id for _t, s in scans] == ["NEW"]
    assert correlator.xray.stale == 1


def test_a_short_crossing_is_not_outweighed_by_a_longer_neighbour_inside_the_tolerance() -> None:
    from drivers.readings import XrayScan
    from edge.cargo.xray import CrossingWindow, match_scan

    at = lambda s: T0 + timedelta(seconds=s)  # noqa: E731
    windows = [
        CrossingWindow("long", at(0), at(4)),  # the truck before: 4 s in the lane
        CrossingWindow("short", at(5), at(7)),  # the scanned one: 2 s
    ]
    scan = XrayScan(device_id="x", scan_id="S", started=at(5.5), finished=at(6.5), files=())
    # Widened by 5 s both ways, the scan would overlap the long one more (4 s > 2 s).
    assert match_scan(scan, windows, now=at(20), clock_tolerance_s=5.0) == "short"
    early = XrayScan(device_id="x", scan_id="S", started=at(4.3), finished=at(4.8), files=())
    assert match_scan(early, windows, now=at(20), clock_tolerance_s=5.0) == "long"
