"""ADR orange plates: the shipped table, reading Kemler/UN numbers, and the alarm rules."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.cargo.adr import (
    AdrTable,
    adr_mismatch_alarm,
    dangerous_goods_alarm,
    describe_kemler,
    kemler_ok,
    read_plate,
    summarise,
    un_ok,
)


def test_shipped_table_has_the_common_entries() -> None:
    table = AdrTable.shipped()
    assert table.un["1203"].name.startswith("motor spirit") and table.un["1203"].hazard_class == "3"
    assert table.un["1202"].hazard_class == "3" and table.un["1830"].hazard_class == "8"
    assert table.un["1075"].hazard_class == "2" and "LPG" in table.un["1075"].name
    assert table.kemler["33"].startswith("highly flammable liquid")
    assert "reacts dangerously with water" in table.kemler["X423"]
    assert table.kemler["606"] == "infectious substance"
    assert len(table.kemler) >= 90 and len(table.un) >= 90


def test_every_shipped_kemler_code_is_well_formed() -> None:
    table = AdrTable.shipped()
    assert all(kemler_ok(code) for code in table.kemler)
    assert all(un_ok(number) for number in table.un)


def test_table_rejects_malformed_entries() -> None:
    with pytest.raises(ValueError, match="X1"):
        AdrTable.from_json({"kemler": {"X1": "?"}, "un": {}})
    with pytest.raises(ValueError, match="120"):
        AdrTable.from_json({"kemler": {}, "un": {"120": {"name": "x", "class": "3"}}})


@pytest.mark.parametrize(
    ("code", "ok"),
    [("33", True), ("X423", True), ("30", True), ("606", True), ("268", True), ("886", True),
     ("X88", True), ("10", False), ("3", False), ("3333", False), ("Y33", False), ("303", False),
     ("", False), ("XX33", False)],
)  # fmt: skip
def test_kemler_form(code: str, ok: bool) -> None:
    assert kemler_ok(code) is ok


def test_un_form() -> None:
    assert un_ok("1203") and un_ok("0004") and un_ok("3550")
    assert not un_ok("0000") and not un_ok("120") and not un_ok("12034") and not un_ok("9999")


def test_reading_a_plate() -> None:
    plate = read_plate("33", "1203", position="front", device="cam1")
    assert (plate.kemler, plate.un, plate.readable, plate.blank) == ("33", "1203", True, False)
    assert read_plate(" x 4 2 3 ", "1428", position="rear").kemler == "X423"
    assert read_plate("33", "12O3", position="rear").un == "1203"  # O read for 0
    blank = read_plate(None, "", position="front")
    assert blank.blank and blank.readable and blank.label == "blank"
    for top, bottom in [("33", None), ("12", "1203"), ("33", "99999"), ("3" * 500, "1203")]:
        unread = read_plate(top, bottom, position="rear")
        assert not unread.readable and not unread.blank and unread.label == "unread"


def test_descriptions_from_the_table_and_from_the_digits() -> None:
    assert describe_kemler("X338") == AdrTable.shipped().kemler["X338"]
    assert describe_kemler("366") == (
        "flammable liquid or gas, or self-heating liquid; highly toxic or infectious"
    )
    assert describe_kemler("12") is None


def test_summary_names_the_substance_and_checks_the_class() -> None:
    summary = summarise([read_plate("33", "1203", position="front")])
    assert summary.present and (summary.kemler, summary.un) == ("33", "1203")
    assert summary.description is not None and "petrol" in summary.description
    assert summary.consistent is True
    assert summarise([read_plate("33", "1830", position="front")]).consistent is False
    assert summarise([read_plate("33", "3499", position="front")]).consistent is None
    assert summarise([]).as_dict() == {"present": False}
    assert summarise([read_plate("", "", position="rear")]).as_dict() == {
        "present": True, "description": "blank orange plate",
    }  # fmt: skip


def test_dangerous_goods_alarm_is_info_and_only_with_a_plate() -> None:
    assert dangerous_goods_alarm([]) is None
    alarm = dangerous_goods_alarm([read_plate("33", "1203", position="front", device="c1")])
    assert alarm is not None and alarm.code == "cargo.dangerous_goods"
    assert alarm.severity == "info" and alarm.device == "c1"
    assert alarm.message.startswith("dangerous goods: 33/1203 (motor spirit")
    blank = dangerous_goods_alarm([read_plate(None, None, position="front")])
    assert blank is not None and blank.message == "dangerous goods: blank orange plate"
    odd = dangerous_goods_alarm([read_plate("33", "1830", position="front")])
    assert odd is not None and "does not fit" in odd.message
    unread = dangerous_goods_alarm([read_plate("3", None, position="rear")])
    assert unread is not None and "numbers not read" in unread.message


def test_mismatch_alarm() -> None:
    front = read_plate("33", "1203", position="front", device="front_cam")
    same = read_plate("33", "1203", position="rear", device="rear_cam")
    other = read_plate("30", "1202", position="rear", device="rear_cam")
    blank = read_plate(None, None, position="rear", device="rear_cam")
    unread = read_plate("33", None, position="rear", device="rear_cam")
    assert adr_mismatch_alarm(front, same) is None
    assert adr_mismatch_alarm(front, None) is None and adr_mismatch_alarm(None, other) is None
    assert adr_mismatch_alarm(front, unread) is None  # not read is not evidence
    alarm = adr_mismatch_alarm(front, other)
    assert alarm is not None and alarm.code == "cargo.adr_mismatch"
    assert alarm.severity == "warning" and alarm.device == "rear_cam"
    assert alarm.message == "orange plates disagree: front 33/1203, rear 30/1202"
    blank_vs_numbered = adr_mismatch_alarm(front, blank)
    assert blank_vs_numbered is not None and "rear blank" in blank_vs_numbered.message
    assert adr_mismatch_alarm(read_plate("", "", position="front"), blank) is None


@settings(deadline=None)  # a loaded machine is no failure
@given(st.text(max_size=40) | st.none(), st.text(max_size=40) | st.none())
def test_read_plate_never_raises(top: str | None, bottom: str | None) -> None:
    plate = read_plate(top, bottom, position="front")
    if plate.readable and not plate.blank:
        assert plate.kemler is not None and kemler_ok(plate.kemler)
        assert plate.un is not None and un_ok(plate.un)
    summarise([plate])
    dangerous_goods_alarm([plate])
