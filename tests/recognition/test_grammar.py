"""Plate grammar: look-alikes, confusable correction and country detection, per country."""

from __future__ import annotations

import numpy as np
import pytest

from edge.recognize.grammar import FORMATS, best, fit, fold, interpret, score_key
from edge.recognize.judge import fit_glyphs
from edge.recognize.ocr import PLATE_ALPHABET


def test_fold_maps_cyrillic_lookalikes_and_drops_separators() -> None:
    assert fold("а 123 вс-77") == "A123BC77"
    assert fold("АВЕКМНОРСТУХ") == "ABEKMHOPCTYX"
    assert fold("京A·12345") == "京A12345"
    assert fold("  ") == ""


def test_score_key_drops_province() -> None:
    assert score_key("皖A00E66") == "A00E66"
    assert score_key("х371нк96") == "X371HK96"


@pytest.mark.parametrize(
    ("raw", "text", "country", "plate_type"),
    [
        # Kazakhstan
        ("123ABC01", "123ABC01", "KZ", "standard"),
        ("I23ABCO1", "123ABC01", "KZ", "standard"),  # I->1, O->0
        ("777AB02", "777AB02", "KZ", "legal"),
        ("123 АВС 02", "123ABC02", "KZ", "standard"),  # Cyrillic look-alikes
        # Russia
        ("А123ВС77", "A123BC77", "RU", "standard"),
        ("X371HK96", "X371HK96", "RU", "standard"),
        ("A123BC777", "A123BC777", "RU", "standard"),
        ("0123BC77", "O123BC77", "RU", "standard"),  # 0 -> O at a letter position
        ("AB123477", "AB123477", "RU", "trailer"),
        # Uzbekistan
        ("01A177AA", "01A177AA", "UZ", "standard"),
        ("O1A177AA", "01A177AA", "UZ", "standard"),
        ("40123ABC", "40123ABC", "UZ", "legal"),
        ("0lA177AA", "01A177AA", "UZ", "standard"),  # l->1
        ("01A1778A", "01A177BA", "UZ", "standard"),  # 8->B
        # Kyrgyzstan
        ("05123ABC", "05123ABC", "KG", "standard"),
        ("O5123ABC", "05123ABC", "KG", "standard"),
        # Turkmenistan
        ("AG1234AG", "AG1234AG", "TM", "standard"),
        ("AG1Z34MR", "AG1234MR", "TM", "standard"),  # Z->2
        # China
        ("京A12345", "京A12345", "CN", "standard"),
        ("皖AD12345", "皖AD12345", "CN", "new_energy"),
        # Belarus, Ukraine
        ("2914KC7", "2914KC7", "BY", "standard"),
        ("AA0013BM", "AA0013BM", "UA", "standard"),
        ("AAOO13BM", "AA0013BM", "UA", "standard"),  # O->0 twice (near-identical glyphs)
        # Russia, two-row motorcycle with a three-digit region
        ("5836OP163", "5836OP163", "RU", "motorcycle"),
        # Europe: no position rules, kept as read
        ("M5XSX", "M5XSX", "EU", "standard"),
        ("BS47040", "BS47040", "EU", "standard"),
        ("WA56660", "WA56660", "EU", "standard"),
        ("AB123CD", "AB123CD", "EU", "standard"),
        ("AB1O3CD", "AB103CD", "EU", "standard"),  # fixed European layout corrects O->0
    ],
)
def test_best_reading(raw: str, text: str, country: str, plate_type: str) -> None:
    result = best(raw)
    assert (result.text, result.country, result.type) == (text, country, plate_type)


def test_two_weak_corrections_lose_to_the_plain_reading() -> None:
    # l->1 and 8->B together are too much guessing: the read stays as it was.
    assert best("0lA1778A").text == "0LA1778A"


def test_corrections_are_counted_and_cost_score() -> None:
    clean = best("01A177AA")
    fixed = best("O1A177AA")
    assert clean.corrections == 0 and fixed.corrections == 1
    assert fixed.score < clean.score


def test_region_codes_reject_impossible_plates() -> None:
    # 02 is no Uzbek region and no Kyrgyz one (KG stops at 09 but 02 is KG): KG wins.
    assert best("02123ABC").country == "KG"
    # 99 is neither.
    assert all(r.country not in {"UZ", "KG"} for r in interpret("99123ABC"))
    # KZ regions stop at 20.
    assert all(r.country != "KZ" for r in interpret("123ABC55"))
    # RU region 00 does not exist.
    assert all(r.country != "RU" for r in interpret("A123BC00"))


def test_ru_letters_outside_the_twelve_are_refused() -> None:
    # D, F, G ... are not on Russian plates: no RU reading keeps them.
    for result in interpret("D123FG77"):
        if result.country == "RU":
            assert set(result.text[0] + result.text[4:6]) <= set("ABEKMHOPCTYX")


def test_two_row_favours_two_row_formats() -> None:
    one = {(r.country, r.type): r.score for r in interpret("1234AB77", rows=1)}
    two = {(r.country, r.type): r.score for r in interpret("1234AB77", rows=2)}
    assert two[("RU", "motorcycle")] > one[("RU", "motorcycle")]


def test_country_filter() -> None:
    assert {r.country for r in interpret("01123ABC", countries=["KG"])} == {"KG"}
    assert interpret("M5XSX", countries=["KZ"]) == []


def test_garbage_is_rejected() -> None:
    assert interpret("") == []
    assert interpret("HELLO") == []  # no digit: no plate
    assert interpret("A") == []
    assert interpret("1234567890ABC") == []
    unknown = best("!!!")
    assert unknown.country is None and unknown.score == 0.0


@pytest.mark.parametrize("plate_format", FORMATS, ids=lambda f: f"{f.country}-{f.type}")
def test_every_format_reads_its_own_example(plate_format) -> None:  # type: ignore[no-untyped-def]
    assert plate_format.example, "every format documents an example"
    result = fit(fold(plate_format.example), plate_format)
    assert result is not None and result.corrections == 0


def _dists(glyphs: list[dict[str, float]]) -> np.ndarray:
    out = np.zeros((len(glyphs), len(PLATE_ALPHABET)), np.float32)
    for i, probs in enumerate(glyphs):
        for glyph, p in probs.items():
            out[i, PLATE_ALPHABET.index(glyph)] = p
    return out


def test_the_readers_own_letter_beats_the_confusable_tables_look_alike() -> None:
    """A 7 where the layout wants a letter is a T by the confusable table; but where the
    reader itself gives a Z a fair chance and the T none, it is the Z (01Z787ZZ, a real
    Uzbek crop); with no letter offered, the table's T stands."""
    uz = next(f for f in FORMATS if f.country == "UZ" and f.type == "standard")
    plain = [{c: 1.0} for c in "01Z787"]
    last = {"Z": 1.0}
    offered = fit_glyphs(_dists([*plain, {"7": 0.63, "Z": 0.25, "2": 0.12}, last]), uz)
    assert offered is not None and offered[0] == "01Z787ZZ"
    not_offered = fit_glyphs(_dists([*plain, {"7": 0.9, "2": 0.1}, last]), uz)
    assert not_offered is not None and not_offered[0] == "01Z787TZ"
