"""Orange plates voted over frames (edge.cargo.crossing_cargo.CargoVotes, pure)."""

from __future__ import annotations

from edge.cargo.adr import AdrPlate
from edge.cargo.crossing_cargo import CargoVotes


def _votes(*plates: AdrPlate) -> CargoVotes:
    votes = CargoVotes()
    for plate in plates:
        votes.add_adr(plate)
    return votes


def test_numbers_read_outrank_more_unread_sightings() -> None:
    unread = AdrPlate("front", readable=False)
    votes = _votes(unread, unread, unread, AdrPlate("front", "33", "1203"))
    assert votes.plates()["front"].label == "33/1203"
    summary = votes.adr_field()
    assert summary is not None and (summary.kemler, summary.un) == ("33", "1203")


def test_a_numbered_read_outranks_blank_ones() -> None:
    """The reader calls a plate blank only where it saw no marks (a plate far away, its
    digits lost to blur): one where numbers were read has numbers."""
    blank = AdrPlate("rear")
    votes = _votes(blank, blank, AdrPlate("rear", "80", "1830"))
    assert votes.plates()["rear"].label == "80/1830"
    assert votes.alarms()[0].code == "cargo.dangerous_goods"


def test_the_most_read_numbers_win_and_a_tie_goes_to_numbers_the_table_knows() -> None:
    right, wrong = AdrPlate("front", "33", "1203"), AdrPlate("front", "83", "1203")
    assert _votes(wrong, right, right).plates()["front"].label == "33/1203"
    # One read each: 33/1203 (petrol, class 3) is consistent, 83/1203 (corrosive) is not.
    assert _votes(wrong, right).plates()["front"].label == "33/1203"
    assert _votes(right, wrong).plates()["front"].label == "33/1203"


def test_only_blank_reads_are_a_blank_plate_and_nothing_is_no_plate() -> None:
    votes = _votes(AdrPlate("front"), AdrPlate("front", readable=False))
    assert votes.plates()["front"].blank
    summary = votes.adr_field()
    assert summary is not None and summary.present and summary.kemler is None
    assert CargoVotes().adr_field() is None and CargoVotes().alarms() == []
