"""Country and layout of a read, decided from the judge's candidates: per country, per layout,
and the confidence as the winner's share. Pure: reads are built glyph by glyph."""

from __future__ import annotations

import numpy as np
import pytest

from edge.recognize import grammar, origin
from edge.recognize.judge import PlateResult, best_result, judge_read
from edge.recognize.ocr import ALPHABET_INDEX, PLATE_ALPHABET, LineRead


def _read(text: str, sure: float = 0.98) -> LineRead:
    """A read whose every glyph is ``sure`` likely, the rest spread over the alphabet."""
    dists = np.full((len(text), len(PLATE_ALPHABET)), (1 - sure) / (len(PLATE_ALPHABET) - 1))
    for i, ch in enumerate(text):
        dists[i, ALPHABET_INDEX[ch]] = sure
    positions = (np.arange(len(text), dtype=np.float32) + 0.5) / max(1, len(text))
    return LineRead(text, dists.astype(np.float32), positions)


def _plate(read: LineRead, rows: int = 1) -> PlateResult:
    judged = judge_read(read, rows, None)
    assert judged, f"{read.text} fits nothing"
    return best_result(judged, (0, 0, 100, 30), rows, 5)


@pytest.mark.parametrize(
    ("text", "country", "least"),
    [
        ("123ABC01", "KZ", 0.95),
        ("A123BC77", "RU", 0.95),
        ("A123BC777", "RU", 0.95),
        ("01A123BC", "UZ", 0.9),
        ("05123ABC", "KG", 0.95),  # 05 is no Uzbek region: the KG layout alone
        ("1234AB7", "BY", 0.85),
        ("AA1234BB", "UA", 0.85),  # BB is no Turkmen region
        ("京A12345", "CN", 0.8),
        ("AB123CD", "EU", 0.95),  # the layout Italy, France, Croatia ... share
        ("1A23456", "CZ", 0.7),  # one member's own format, at a low prior
    ],
)
def test_country_of_each_format(text: str, country: str, least: float) -> None:
    plate = _plate(_read(text))
    assert plate.text == text
    assert plate.country == country
    assert plate.country_confidence >= least
    assert plate.layout == "one-row" and plate.row_texts == (text,)


def test_eu_member_codes_are_eu() -> None:
    assert {"CZ", "DE", "PL", "LT"} <= origin.EU_MEMBERS
    assert not {"RU", "UA", "BY", "KZ", "EU"} & origin.EU_MEMBERS


def test_a_read_no_format_fits_is_unknown() -> None:
    plate = _plate(_read("M5XSX"))
    assert plate.text == "M5XSX" and plate.type == "standard"
    assert plate.country == origin.UNKNOWN


def test_one_text_two_countries_splits_the_confidence() -> None:
    # 01 123 ABC: a KG plate and an Uzbek legal entity's read the same, equal priors.
    # Each is at most its prior's share of the two: other fits (trimmed, corrected) take a
    # little of the rest.
    plate = _plate(_read("01123ABC"))
    assert plate.country in {"KG", "UZ"}
    assert 0.4 < plate.country_confidence <= 0.5 + 1e-6
    # A Turkmen plate fits the Ukrainian layout too, at a lower prior (1.0 against 0.8).
    plate = _plate(_read("AG1234MR"))
    assert plate.country == "TM"
    assert 0.45 < plate.country_confidence <= 1 / 1.8 + 1e-6


def test_an_unsure_read_fitting_other_countries_only_by_trimming_stays_sure() -> None:
    # 123ABC01 also fits KZ legal, EU and others once glyphs are cut or corrected; each such
    # fit explains fewer glyphs or less likely ones and counts for little.
    plate = _plate(_read("123ABC01", sure=0.9))
    assert plate.country == "KZ" and plate.country_confidence > 0.9


def test_two_rows_carry_each_row_and_the_two_row_layout() -> None:
    read = LineRead.stacked([_read("175")], [_read("YJD09")])
    assert read.text == "175YJD09" and read.row_break == 3
    plate = _plate(read, rows=2)
    assert (plate.text, plate.country, plate.rows) == ("175YJD09", "KZ", 2)
    assert plate.layout == "two-row" and plate.layout_confidence > 0.95
    assert plate.row_texts == ("175", "YJD09")
    assert plate.as_dict()["row_texts"] == ["175", "YJD09"]


def test_rows_split_where_read_after_a_flag_is_trimmed() -> None:
    # The top row read with a stray glyph before it (a flag, a sticker): the plate starts one
    # glyph later and so does its row break.
    read = LineRead.stacked([_read("K175")], [_read("YJD09")])
    plate = _plate(read, rows=2)
    assert plate.text == "175YJD09"
    assert plate.row_texts == ("175", "YJD09")


@pytest.mark.parametrize(
    ("top", "bottom", "text", "country"),
    [
        ("1234", "AB05", "1234AB05", "KZ"),  # KZ trailer, two rows
        ("京A1234", "挂", "京A1234挂", "CN"),  # CN trailer
    ],
)
def test_trailer_formats_are_the_trailer_layout(
    top: str, bottom: str, text: str, country: str
) -> None:
    plate = _plate(LineRead.stacked([_read(top)], [_read(bottom)]), rows=2)
    assert (plate.text, plate.country, plate.type) == (text, country, "trailer")
    assert plate.layout == "trailer"
    assert plate.row_texts == (top, bottom)


def test_motorcycle_two_rows_is_two_row_not_trailer() -> None:
    plate = _plate(LineRead.stacked([_read("5836")], [_read("OP163")]), rows=2)
    assert (plate.text, plate.country, plate.type) == ("5836OP163", "RU", "motorcycle")
    assert plate.layout == "two-row"


def test_share_and_weight() -> None:
    assert origin.share([("KZ", 0.9)], "KZ") == 1.0
    assert origin.share([("KZ", 0.6), ("RU", 0.2), ("KZ", 0.3)], "KZ") == pytest.approx(0.75)
    assert origin.share([], "KZ") == 0.0
    interp = grammar.Interpretation("123ABC01", "KZ", "standard", 0, 0.81)
    # score = conf * sqrt(prior): conf 0.9 over 8 glyphs, times the prior.
    assert origin.weight(0.9 * 0.9, interp) == pytest.approx(0.9**8 * 0.81)
    assert origin.weight(0.0, interp) == 0.0


def test_layout_of_a_format_type() -> None:
    def interp(kind: str) -> grammar.Interpretation:
        return grammar.Interpretation("X", "RU", kind, 0, 1.0)

    assert origin.plate_layout(interp("standard"), 1) == "one-row"
    assert origin.plate_layout(interp("standard"), 2) == "two-row"
    for kind in ("trailer", "transit", "diplomatic"):
        assert origin.plate_layout(interp(kind), 1) == kind
    assert set(origin.LAYOUTS) == {"one-row", "two-row", "trailer", "transit", "diplomatic"}


def test_row_texts_split_only_inside_the_text() -> None:
    assert origin.row_texts("175YJD09", 3) == ("175", "YJD09")
    assert origin.row_texts("175YJD09", None) == ("175YJD09",)
    assert origin.row_texts("175YJD09", 0) == ("175YJD09",)
    assert origin.row_texts("175YJD09", 8) == ("175YJD09",)
