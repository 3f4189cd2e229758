"""X-ray scans on crossings: matching by time, the mismatch alarm, the unscanned note."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from drivers.readings import ScanFile, XrayScan
from edge.cargo.xray import (
    CrossingWindow,
    container_codes,
    match_scan,
    overlap_s,
    plates_agree,
    scanner_comparable,
    unchecked_note,
    unscanned_note,
    xray_field,
    xray_mismatch_alarm,
)

T0 = datetime(2026, 12, 2, 3, 0, tzinfo=UTC)


def _at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _scan(
    start: float,
    end: float,
    *,
    scanner_plate: str | None = None,
    scanner_container: str | None = None,
) -> XrayScan:
    return XrayScan(
        device_id="xray1",
        scan_id="S1",
        started=_at(start),
        finished=_at(end),
        files=(ScanFile(name="scan.img", size=10, sha256="ab" * 32),),
        scanner_plate=scanner_plate,
        scanner_container=scanner_container,
    )


def test_overlap_widens_the_scan_by_the_clock_tolerance() -> None:
    window = CrossingWindow("c1", _at(0), _at(60))
    assert overlap_s(_scan(10, 40), window, now=_at(100), clock_tolerance_s=0) == 30
    assert overlap_s(_scan(58, 90), window, now=_at(100), clock_tolerance_s=5) == 7
    assert overlap_s(_scan(70, 90), window, now=_at(100), clock_tolerance_s=5) == 0
    open_window = CrossingWindow("c2", _at(80), None)  # still in the lane: up to now
    assert overlap_s(_scan(85, 120), open_window, now=_at(100), clock_tolerance_s=0) == 15


def test_match_picks_the_crossing_the_scan_overlaps_most() -> None:
    windows = [
        CrossingWindow("first", _at(0), _at(50), ("01A123BC",)),
        CrossingWindow("second", _at(45), _at(110), ("777XYZ02",)),
    ]
    now = _at(200)
    assert match_scan(_scan(10, 44), windows, now=now) == "first"
    assert match_scan(_scan(60, 100), windows, now=now) == "second"
    assert match_scan(_scan(300, 340), windows, now=now) is None  # no crossing then
    assert match_scan(_scan(10, 44), [], now=now) is None


def test_a_tie_is_settled_by_the_scanners_plate_or_left_alone() -> None:
    windows = [
        CrossingWindow("a", _at(0), _at(100), ("01A123BC",)),
        CrossingWindow("b", _at(0), _at(100), ("777XYZ02",)),
    ]
    now = _at(200)
    assert match_scan(_scan(10, 40, scanner_plate="777 xyz 02"), windows, now=now) == "b"
    assert match_scan(_scan(10, 40), windows, now=now) is None
    assert match_scan(_scan(10, 40, scanner_plate="999ZZZ99"), windows, now=now) is None


def test_container_codes_from_a_scanner_field() -> None:
    assert container_codes("CSQU 305438 3") == ["CSQU3054383"]
    assert container_codes("CSQU3054383, BICU1234565") == ["CSQU3054383", "BICU1234565"]
    assert container_codes("CSQU3054383BICU1234565") == ["CSQU3054383", "BICU1234565"]
    assert container_codes(None) == [] and container_codes("  ") == []


def test_mismatch_alarm() -> None:
    scan = _scan(0, 30, scanner_plate="01 A 123 BC", scanner_container="CSQU3054383")
    assert xray_mismatch_alarm(scan, plates=["01A123BC"], containers=["CSQU3054383"]) is None
    # Cyrillic look-alikes on our side fold to the same Latin text.
    assert xray_mismatch_alarm(scan, plates=["01А123ВС"], containers=[]) is None
    alarm = xray_mismatch_alarm(scan, plates=["01A124BC"], containers=["BICU1234565"])
    assert alarm is not None and alarm.code == "cargo.xray_mismatch"
    assert alarm.severity == "warning" and alarm.device == "xray1"
    assert alarm.message == (
        "X-ray scan S1 has plate 01A123BC (lane read 01A124BC); "
        "container CSQU3054383 (lane read BICU1234565)"
    )
    # No evidence either way: nothing read by us, or nothing sent by the scanner.
    assert xray_mismatch_alarm(scan, plates=[], containers=[]) is None
    assert xray_mismatch_alarm(_scan(0, 30), plates=["X"], containers=["BICU1234565"]) is None
    # One of two boxes read is no mismatch.
    two = _scan(0, 30, scanner_container="CSQU3054383,BICU1234565")
    assert xray_mismatch_alarm(two, plates=[], containers=["BICU1234565"]) is None


def test_a_plate_one_reader_misread_is_no_mismatch() -> None:
    scan = _scan(0, 30, scanner_plate="01A123BC")
    for ours in ("O1A123BC", "01A1238C", "01A123B", "1A123BC", "01A123BC7"):
        assert xray_mismatch_alarm(scan, plates=[ours], containers=[]) is None, ours
    # Any other glyph, two look-alikes, or a fragment too short to say anything: another plate.
    for ours in ("01A124BC", "O1A1238C", "23BC", "999XRY99"):
        assert xray_mismatch_alarm(scan, plates=[ours], containers=[]) is not None, ours
    # A province character dropped by our reader (CN): the same plate.
    cn = _scan(0, 30, scanner_plate="沪A78258")
    assert xray_mismatch_alarm(cn, plates=["A78258"], containers=[]) is None
    assert plates_agree("A78258", "A78258") and not plates_agree("A78258", "A79258")
    # A glyph dropped and a look-alike slip in what is left: the same plate; a second slip
    # or another glyph is not.
    assert plates_agree("01K579OO", "01K5790") and plates_agree("01K5790", "01K579OO")
    assert not plates_agree("01K579OO", "01K5791") and not plates_agree("01K579OO", "O1K5790")


def test_unscanned_note() -> None:
    def note(lane: str, devices: list[str], scanned: bool, vehicle: str | None) -> str | None:
        return unscanned_note(
            lane_type=lane, xray_devices=devices, scanned=scanned, vehicle_class=vehicle
        )

    assert note("truck", ["xray1"], False, "heavy_vehicle") == "unscanned: no X-ray scan from xray1"
    assert note("truck", ["xray1"], False, None) is not None  # class unknown: still a truck lane
    assert note("truck", ["xray1"], True, "heavy_vehicle") is None
    assert note("truck", ["xray1"], False, "light_vehicle") is None
    assert note("car", ["xray1"], False, None) is None
    assert note("truck", [], False, None) is None


def test_xray_field_is_the_crossing_object() -> None:
    scan = _scan(0, 30, scanner_plate="01A123BC")
    field = xray_field(scan)
    assert field == {
        "device": "xray1", "scan_id": "S1", "started": _at(0), "finished": _at(30),
        "files": [{"name": "scan.img", "size": 10, "sha256": "ab" * 32}],
        "scanner_plate": "01A123BC",
    }  # fmt: skip


def test_a_scanner_plate_is_checked_against_the_tractor_not_a_trailer() -> None:
    """The portal reads the tractor: an articulated truck's rear plate is its trailer's."""
    reads = {"front": ["925MTB17"], "rear": ["7231TT05"], "trailer": ["7231TT05"]}
    assert scanner_comparable(reads, "articulated") == ("925MTB17",)
    assert scanner_comparable(reads, None) == ("925MTB17",)  # class unknown: the same
    assert scanner_comparable(reads, "heavy_vehicle") == ("7231TT05", "925MTB17")
    only_rear = {"rear": ["7231TT05"]}
    assert scanner_comparable(only_rear, "articulated") == ()
    assert scanner_comparable(only_rear, "heavy_vehicle") == ("7231TT05",)  # rigid: one plate
    scan = _scan(0, 30, scanner_plate="925MTB17")
    rear_only = scanner_comparable(only_rear, "articulated")
    assert xray_mismatch_alarm(scan, plates=rear_only, containers=[]) is None
    wrong = _scan(0, 30, scanner_plate="999XRY99")
    assert xray_mismatch_alarm(
        wrong, plates=scanner_comparable(reads, "articulated"), containers=[]
    )
    # With no tractor plate read, the scanner's plate is not checked, and the crossing says so.
    assert (
        unchecked_note(wrong, rear_only)
        == "X-ray plate 999XRY99 not checked: no tractor plate read"
    )
    assert unchecked_note(wrong, ("925MTB17",)) is None  # checked (and an alarm)
    assert unchecked_note(_scan(0, 30), rear_only) is None  # the scanner sent no plate
