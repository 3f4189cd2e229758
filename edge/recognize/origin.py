"""Country and layout of a plate read, from the candidates the judge kept. Pure, no I/O.

The judge (``judge.py``, ``cells.py``) puts one read into every format it fits and scores
each fit ``conf * sqrt(prior)``: ``conf`` the geometric mean of the glyphs' probabilities
(with the corrections' costs), ``prior`` the format's prior, lowered for glyphs trimmed off
the read and for a row count the format is not printed on. The read's country is the
country of the best fit, the one whose text is reported. Its confidence is that country's
share of the evidence, each fit weighed as the whole read's probability under it,
``conf ** glyphs * prior``, the best fit per country counted::

    country_confidence = weight(best fit of the winner)
                         / sum(weight(best fit of c) for each country c the read fits)

A read that fits only KZ formats is 1.0, and so is one whose other fits need a trimmed or
corrected text (each glyph less likely counts once per glyph, not once on average). The
same text fitting two countries' formats splits by their priors: ``01123ABC`` (a KG plate
and an Uzbek legal entity's alike) 0.5 each; a TM ``AG1234AG`` also fits the Ukrainian
layout, which has no region check, and gets 0.56. A read that fits no country's format
(the grammar's generic plate: letters and digits) is ``unknown``. The layout comes from
the rows the pipeline composed (two lines stacked, or one) and the format's type (trailer
...); its confidence is the same share over the layouts of the fits.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Final, get_args

from edge.events import PlateLayout as Layout
from edge.recognize import grammar

UNKNOWN: Final = "unknown"
# European Union members (ISO 3166-1 alpha-2). A format the grammar knows for one member
# (CZ) names it; the layout several members share (AB 123 CD: IT, FR, HR ...) is "EU".
EU_MEMBERS: Final = frozenset(
    {
        "AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU",
        "IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK",
    }
)  # fmt: skip
# Every country a read can carry, besides the EU members: the lane's neighbours and the
# Brazilian formats the bench's scenes need.
COUNTRIES: Final = ("KZ", "RU", "UZ", "KG", "TM", "CN", "UA", "BY", "EU", "BR", UNKNOWN)

LAYOUTS: Final[tuple[Layout, ...]] = get_args(Layout)
TRIMMED: Final = 0.6  # the judge's cost of a glyph trimmed off a read (judge_read)
# Format types that are a layout of their own, whatever the rows they are printed on.
_TYPE_LAYOUTS: Final[dict[str, Layout]] = {
    "trailer": "trailer",
    "transit": "transit",
    "diplomatic": "diplomatic",
}


@dataclass(frozen=True, slots=True)
class Origin:
    """Where a plate is from and how it is laid out, each with its share of the evidence."""

    country: str
    country_confidence: float
    layout: Layout
    layout_confidence: float


def plate_country(interp: grammar.Interpretation) -> str:
    """The country a fit names: its format's, ``unknown`` for the generic plate."""
    if interp.generic or interp.country is None:
        return UNKNOWN
    return interp.country


def plate_layout(interp: grammar.Interpretation, rows: int) -> Layout:
    """A trailer, transit or diplomatic format is that layout; any other is its rows."""
    by_type = _TYPE_LAYOUTS.get(interp.type or "")
    if by_type is not None:
        return by_type
    return "two-row" if rows == 2 else "one-row"


def weight(score: float, interp: grammar.Interpretation, raw: str = "") -> float:
    """The whole read's probability under a fit scored ``score = conf * sqrt(prior)``
    (``interp.score`` holds the prior): ``conf ** glyphs * prior``. A format's prior already
    pays for the glyphs trimmed off the read; the generic plate, which keeps only Latin
    letters and digits, pays ``TRIMMED`` here for each glyph of ``raw`` it leaves out (a
    Chinese province)."""
    prior = interp.score
    if score <= 0.0 or prior <= 0.0:
        return 0.0
    conf = min(1.0, score / math.sqrt(prior))
    if interp.generic:
        prior *= TRIMMED ** max(0, len(raw) - len(interp.text))
    return float(conf ** max(1, len(interp.text)) * prior)


def share(weights: Sequence[tuple[str, float]], winner: str) -> float:
    """``winner``'s best weight over the sum of every label's best weight (1.0 when alone)."""
    best: dict[str, float] = {}
    for label, value in weights:
        best[label] = max(best.get(label, 0.0), max(value, 0.0))
    total = sum(best.values())
    if total <= 0.0:
        return 0.0
    return best.get(winner, 0.0) / total


def decide(judged: Sequence[tuple[float, grammar.Interpretation, str]], rows: int) -> Origin:
    """The origin of the best of ``judged`` (best first, as ``judge_read`` orders them)."""
    _, top, _ = judged[0]
    country = plate_country(top)
    layout = plate_layout(top, rows)
    weights = [(interp, weight(score, interp, raw)) for score, interp, raw in judged]
    countries = [(plate_country(interp), w) for interp, w in weights]
    layouts = [(plate_layout(interp, rows), w) for interp, w in weights]
    return Origin(country, share(countries, country), layout, share(layouts, layout))


def row_texts(text: str, row_break: int | None) -> tuple[str, ...]:
    """The plate's text per printed row, top first: split at ``row_break`` when it falls
    inside the text (a two-row read), else the one row."""
    if row_break is not None and 0 < row_break < len(text):
        return text[:row_break], text[row_break:]
    return (text,)


def country_right(expected: str, said: str | None) -> bool:
    """Whether a read's country is a label's: ``EU`` is right for any member's code too."""
    if expected == "EU":
        return said == "EU" or said in EU_MEMBERS
    return said == expected
