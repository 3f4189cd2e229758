"""Plate grammar: per-country formats, look-alike mapping, confusable correction. No I/O.

A plate read from OCR is a string of glyphs. Cyrillic plates (KZ, RU, BY, ...) use only the
Cyrillic letters that look like Latin ones, so every read is first folded to Latin capitals.
Then each known format is tried: a format fixes, per position, whether a digit or a letter
belongs there, which lets the confusable glyphs (O/0, B/8, I/1, S/5, Z/2, ...) be put right.
A read that fits no specific format falls back to the generic one, with a lower prior.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

# Cyrillic letters with a Latin look-alike on plates (scoring convention of the eval data).
CYRILLIC_TO_LATIN = str.maketrans(
    "АВЕКМНОРСТУХавекмнорстухЗз",
    "ABEKMHOPCTYXABEKMHOPCTYX33",
)  # З is no plate letter; an OCR that knows Cyrillic reads the digit 3 as З.
# Chinese province (and special) characters that open a CN plate.
CN_PROVINCES = "京津沪渝冀晋蒙辽吉黑苏浙皖闽赣鲁豫鄂湘粤桂琼川贵云藏陕甘青宁新"
CN_SUFFIXES = "挂学警港澳领使"
# Letters allowed on RU and BY plates: the twelve with a Cyrillic twin.
RU_LETTERS = "ABEKMHOPCTYX"
BY_LETTERS = "ABEIKMHOPCTX"
# China omits I and O to avoid 1/0 confusion.
CN_LETTERS = "ABCDEFGHJKLMNPQRSTUVWXYZ"

# What a letter read where a digit belongs most likely was, and the other way round.
LETTER_TO_DIGIT = {
    "O": "0", "Q": "0", "D": "0", "U": "0", "C": "0",
    "I": "1", "L": "1", "J": "1", "T": "1",
    "Z": "2", "S": "5", "B": "8", "G": "6", "A": "4", "E": "8", "Y": "7",
}  # fmt: skip
DIGIT_TO_LETTER = {
    "0": "O", "1": "I", "2": "Z", "3": "B", "4": "A", "5": "S", "6": "G", "7": "T", "8": "B",
}  # fmt: skip
# How much a correction of the pair costs: near-identical glyphs in plate fonts cost little.
_STRONG = {frozenset(p) for p in ("O0", "I1", "D0", "Q0")}
_MEDIUM = {frozenset(p) for p in ("B8", "S5", "Z2", "G6", "A4", "T7", "T1", "L1", "J1", "U0")}


def look_alike(a: str, b: str) -> bool:
    """Two glyphs plate readers confuse (``O``/``0``, ``B``/``8``, ...)."""
    return frozenset((a, b)) in _STRONG | _MEDIUM


def penalty(read: str, fixed: str) -> float:
    pair = frozenset((read, fixed))
    if pair in _STRONG:
        return 0.8
    if pair in _MEDIUM:
        return 0.6
    return 0.35


# When the required letter set excludes the plain look-alike, the next best guess.
_LETTER_FALLBACK = {"O": "D", "I": "T", "Z": "Z", "S": "C", "G": "C", "D": "O", "Q": "O"}

# Countries whose plates print the region code in a small frame of its own at the left, and
# its length: UZ 01 | A 123 BC, KG 01 | 123 ABC.
REGION_CELL = {"UZ": 2, "KG": 2}
UZ_REGIONS = {"01", "10", "20", "25", "30", "40", "50", "60", "70", "75", "80", "85", "90", "95"}
KG_REGIONS = {f"{n:02d}" for n in range(1, 10)}
KZ_REGIONS = {f"{n:02d}" for n in range(1, 21)}
TM_REGIONS = {"AG", "AH", "BN", "DZ", "LB", "MR"}

DIGIT = "0123456789"
LATIN = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


@dataclass(frozen=True, slots=True)
class PlateFormat:
    """One layout. ``pattern``: D digit, L Latin letter, R RU letter, B BY letter, C CN letter,
    P CN province, N CN letter or digit (no I, no O), X any Latin letter or digit, S CN
    suffix. ``check`` sees the corrected text."""

    country: str
    type: str
    pattern: str
    rows: tuple[int, ...] = (1,)
    prior: float = 1.0
    check: Callable[[str], bool] | None = None
    example: str = ""

    @property
    def region_cell(self) -> int:
        """How many leading glyphs sit in a small frame of their own at the left."""
        return REGION_CELL.get(self.country, 0)


def _region(start: int, end: int, allowed: set[str]) -> Callable[[str], bool]:
    return lambda text: text[start:end] in allowed


def _ru_region(start: int) -> Callable[[str], bool]:
    # RU regions: 01..99 and three-digit codes starting with 1, 7 or 9; never 00.
    def check(text: str) -> bool:
        code = text[start:]
        if len(code) == 2:
            return code != "00"
        return len(code) == 3 and code[0] in "1279"

    return check


FORMATS: tuple[PlateFormat, ...] = (
    # Kazakhstan (2012 standard): 123 ABC 01; legal entities 123 AB 01; region 01..20.
    PlateFormat("KZ", "standard", "DDDLLLDD", (1, 2), 1.0, _region(6, 8, KZ_REGIONS), "123ABC01"),
    PlateFormat("KZ", "legal", "DDDLLDD", (1, 2), 0.9, _region(5, 7, KZ_REGIONS), "123AB01"),
    PlateFormat("KZ", "trailer", "DDDDLLDD", (1, 2), 0.9, _region(6, 8, KZ_REGIONS), "1234AB01"),
    # Russia: A123BC 77 / 777; trailer AB1234 77; taxi AB123 77; police A1234 77.
    PlateFormat("RU", "standard", "RDDDRRDD", (1,), 1.0, _ru_region(6), "A123BC77"),
    PlateFormat("RU", "standard", "RDDDRRDDD", (1,), 1.0, _ru_region(6), "A123BC777"),
    PlateFormat("RU", "trailer", "RRDDDDDD", (1, 2), 0.9, _ru_region(6), "AB123477"),
    PlateFormat("RU", "trailer", "RRDDDDDDD", (1, 2), 0.9, _ru_region(6), "AB1234777"),
    PlateFormat("RU", "taxi", "RRDDDDD", (1,), 0.8, _ru_region(5), "AB12377"),
    PlateFormat("RU", "taxi", "RRDDDDDD", (1,), 0.7, _ru_region(5), "AB123777"),
    PlateFormat("RU", "motorcycle", "DDDDRRDD", (2,), 0.7, _ru_region(6), "1234AB77"),
    PlateFormat("RU", "motorcycle", "DDDDRRDDD", (2,), 0.7, _ru_region(6), "1234AB777"),
    # Uzbekistan: 01 A 123 AA (private), 01 123 AAA (legal); region codes fixed.
    PlateFormat("UZ", "standard", "DDLDDDLL", (1, 2), 1.0, _region(0, 2, UZ_REGIONS), "01A123BC"),
    PlateFormat("UZ", "legal", "DDDDDLLL", (1, 2), 1.0, _region(0, 2, UZ_REGIONS), "01123ABC"),
    PlateFormat("UZ", "trailer", "DDLDDDD", (1, 2), 0.8, _region(0, 2, UZ_REGIONS), "01A1234"),
    # Kyrgyzstan (2016): 01 123 ABC; region 01..09 (shares a layout with UZ legal).
    PlateFormat("KG", "standard", "DDDDDLLL", (1, 2), 1.0, _region(0, 2, KG_REGIONS), "01123ABC"),
    PlateFormat("KG", "legal", "DDDDDLL", (1, 2), 0.8, _region(0, 2, KG_REGIONS), "01123AB"),
    # Turkmenistan: AG 1234 AG (region letters), older 1234 AG.
    PlateFormat("TM", "standard", "LLDDDDLL", (1, 2), 1.0, _region(6, 8, TM_REGIONS), "AG1234AG"),
    PlateFormat("TM", "standard", "DDDDLL", (1, 2), 0.7, _region(4, 6, TM_REGIONS), "1234AG"),
    # Ukraine: AA 1234 BB (many transit trucks).
    PlateFormat("UA", "standard", "LLDDDDLL", (1, 2), 0.8, None, "AA1234BB"),
    # Belarus: 1234 AB-7.
    PlateFormat("BY", "standard", "DDDDBBD", (1, 2), 0.9, None, "1234AB7"),
    # China: province + letter + 5 (blue) or 6 (green, new energy); 挂 trailer, 学 learner ...
    PlateFormat("CN", "standard", "PCNNNNN", (1,), 1.0, None, "京A12345"),
    PlateFormat("CN", "new_energy", "PCNNNNNN", (1,), 0.9, None, "京AD12345"),
    PlateFormat("CN", "trailer", "PCNNNNS", (2,), 0.9, None, "京A1234挂"),
    # Europe's commonest fixed layout (Italy, France SIV, Croatia ...): AB 123 CD.
    PlateFormat("EU", "standard", "LLDDDLL", (1,), 0.6, None, "AB123CD"),
    # Czechia (since 2001): 1A2 3456, a digit, the region letter, a letter or digit, 4 digits.
    PlateFormat("CZ", "standard", "DLXDDDD", (1,), 0.6, None, "1A23456"),
    # Brazil (old and Mercosul) for the evaluation scenes.
    PlateFormat("BR", "standard", "LLLDDDD", (1,), 0.6, None, "ABC1234"),
    PlateFormat("BR", "mercosul", "LLLDLDD", (1,), 0.6, None, "ABC1D23"),
)

GENERIC_PRIOR = 0.4
_PLATE_GLYPHS = frozenset(LATIN + DIGIT + CN_PROVINCES + CN_SUFFIXES)
_GENERIC = re.compile(r"^[A-Z0-9]{2,9}$")


@dataclass(frozen=True, slots=True)
class Interpretation:
    """A read put into a country's format."""

    text: str
    country: str | None
    type: str | None
    corrections: int
    score: float
    """In 0..1: format prior, lowered for every corrected glyph."""
    generic: bool = False
    """The generic plate (letters and digits, no country's format): its country is unknown."""
    row_break: int | None = None
    """Where in ``text`` the second printed row starts (two-row reads), else None."""


def fold(text: str) -> str:
    """Upper-case, map Cyrillic look-alikes to Latin, keep only plate glyphs."""
    text = text.translate(CYRILLIC_TO_LATIN).upper().translate(CYRILLIC_TO_LATIN)
    return "".join(ch for ch in text if ch in _PLATE_GLYPHS)


def score_key(text: str) -> str:
    """The scoring convention of the evaluation data: only A-Z and 0-9 compared."""
    return "".join(ch for ch in fold(text) if ch.isascii())


def coerce(ch: str, kind: str) -> tuple[str, int] | None:
    """Put one glyph into a position's class: (glyph, corrections) or None when impossible."""
    if kind == "X":
        return (ch, 0) if ch.isascii() and ch.isalnum() else None
    if kind == "P":
        return (ch, 0) if ch in CN_PROVINCES else None
    if kind == "S":
        return (ch, 0) if ch in CN_SUFFIXES else None
    if kind == "N":
        if ch in CN_LETTERS or (ch.isascii() and ch.isdigit()):
            return ch, 0
        return ({"O": "0", "I": "1", "Q": "0"}[ch], 1) if ch in "OIQ" else None
    if kind == "D":
        if ch.isascii() and ch.isdigit():
            return ch, 0
        digit = LETTER_TO_DIGIT.get(ch)
        return (digit, 1) if digit else None
    allowed = {"L": LATIN, "R": RU_LETTERS, "B": BY_LETTERS, "C": CN_LETTERS}[kind]
    if ch in allowed:
        return ch, 0
    letter = DIGIT_TO_LETTER.get(ch, ch)
    if letter in allowed:
        return letter, 1
    fallback = _LETTER_FALLBACK.get(letter)
    if fallback is not None and fallback in allowed:
        return fallback, 1
    return None


def fit(text: str, plate_format: PlateFormat) -> Interpretation | None:
    """Fit a folded read to one format, correcting confusable glyphs; None when it cannot."""
    if len(text) != len(plate_format.pattern):
        return None
    out = []
    corrections = 0
    score = plate_format.prior
    for ch, kind in zip(text, plate_format.pattern, strict=True):
        coerced = coerce(ch, kind)
        if coerced is None:
            return None
        out.append(coerced[0])
        if coerced[1]:
            corrections += 1
            score *= penalty(ch, coerced[0])
    fixed = "".join(out)
    if plate_format.check is not None and not plate_format.check(fixed):
        return None
    return Interpretation(fixed, plate_format.country, plate_format.type, corrections, score)


def interpret(
    raw: str,
    *,
    rows: int = 1,
    countries: Iterable[str] | None = None,
) -> list[Interpretation]:
    """Every reading of ``raw`` as a plate, best first. Empty when it is no plate at all.

    ``countries`` limits the formats tried (e.g. the countries a checkpoint sees); ``rows``
    favours formats printed on that many rows.
    """
    text = fold(raw)
    wanted = {c.upper() for c in countries} if countries is not None else None
    found: dict[tuple[str, str | None], Interpretation] = {}
    for plate_format in FORMATS:
        if wanted is not None and plate_format.country not in wanted:
            continue
        result = fit(text, plate_format)
        if result is None:
            continue
        if rows not in plate_format.rows:
            result = Interpretation(
                result.text, result.country, result.type, result.corrections, result.score * 0.8
            )
        key = (result.text, result.country)
        if key not in found or found[key].score < result.score:
            found[key] = result
    ascii_text = "".join(ch for ch in text if ch.isascii())
    has_digit = any(ch.isdigit() for ch in ascii_text)
    seen = {r.text for r in found.values()}
    generic = _GENERIC.match(ascii_text) and has_digit and ascii_text not in seen
    # Generic European-style plate: letters and digits, no position rules we can trust.
    if generic and (wanted is None or "EU" in wanted):
        # Short reads are more often a fragment of a plate than a whole one.
        prior = GENERIC_PRIOR * min(1.0, 0.25 + 0.15 * (len(ascii_text) - 2))
        found[(ascii_text, None)] = Interpretation(
            ascii_text, "EU", "standard", 0, prior, generic=True
        )
    return sorted(found.values(), key=lambda r: (-r.score, r.corrections, r.text))


def best(raw: str, *, rows: int = 1, countries: Iterable[str] | None = None) -> Interpretation:
    """The best reading, or an unknown-country one holding the folded text."""
    found = interpret(raw, rows=rows, countries=countries)
    if found:
        return found[0]
    return Interpretation(fold(raw), None, None, 0, 0.0)


def countries() -> list[str]:
    return sorted({f.country for f in FORMATS} | {"EU"})
