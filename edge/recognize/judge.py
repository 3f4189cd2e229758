"""Text reads -> plates: compose boxes into one- and two-row candidates, fit each to the
grammar's formats with the reader's own glyph probabilities, and judge them.

Pure (numpy only): the recogniser (``pipeline.py``) runs the networks and calls these.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from edge.recognize import grammar, origin
from edge.recognize.ocr import ALPHABET_INDEX, PLATE_ALPHABET, LineRead, TextBox

MIN_SIDE = 8


@dataclass(frozen=True, slots=True)
class PlateCandidate:
    text: str
    confidence: float


@dataclass(frozen=True, slots=True)
class PlateResult:
    """One plate found in one frame: the recogniser's one output type.

    ``country`` is one of ``origin.COUNTRIES`` or an EU member's code, ``unknown`` when the
    read fits no country's format; ``layout`` one of ``origin.LAYOUTS``; each with its share
    of the evidence (``origin.decide``). ``row_texts`` is the text per printed row, top first.
    """

    text: str
    raw: str
    country: str | None
    type: str | None
    rows: int
    confidence: float
    box: tuple[int, int, int, int]
    candidates: tuple[PlateCandidate, ...] = field(default=())
    layout: origin.Layout = "one-row"
    country_confidence: float = 0.0
    layout_confidence: float = 0.0
    row_texts: tuple[str, ...] = ()

    def as_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "raw": self.raw,
            "country": self.country,
            "type": self.type,
            "rows": self.rows,
            "confidence": round(self.confidence, 4),
            "box": list(self.box),
            "candidates": [
                {"text": c.text, "confidence": round(c.confidence, 4)} for c in self.candidates
            ],
            "country_confidence": round(self.country_confidence, 4),
            "layout": self.layout,
            "layout_confidence": round(self.layout_confidence, 4),
            "row_texts": list(self.row_texts or (self.text,)),
        }


@dataclass(slots=True)
class Piece:
    box: tuple[int, int, int, int]
    read: LineRead


def union(boxes: Iterable[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
    boxes = list(boxes)
    x0 = min(b[0] for b in boxes)
    y0 = min(b[1] for b in boxes)
    x1 = max(b[0] + b[2] for b in boxes)
    y1 = max(b[1] + b[3] for b in boxes)
    return x0, y0, x1 - x0, y1 - y0


def _same_line(a: tuple[int, ...], b: tuple[int, ...]) -> bool:
    ah, bh = a[3], b[3]
    if max(ah, bh) > 1.8 * min(ah, bh):
        return False
    if abs((a[1] + ah / 2) - (b[1] + bh / 2)) > 0.45 * max(ah, bh):
        return False
    gap = b[0] - (a[0] + a[2])
    return -0.3 * min(ah, bh) < gap < 2.5 * max(ah, bh)


def _stacked(top: tuple[int, ...], bottom: tuple[int, ...]) -> bool:
    overlap = min(top[0] + top[2], bottom[0] + bottom[2]) - max(top[0], bottom[0])
    if overlap < 0.5 * min(top[2], bottom[2]):
        return False
    if max(top[2], bottom[2]) > 2.5 * min(top[2], bottom[2]):
        return False
    gap = bottom[1] - (top[1] + top[3])
    return -0.35 * min(top[3], bottom[3]) < gap < 0.8 * max(top[3], bottom[3])


def compose(pieces: list[Piece]) -> list[tuple[tuple[int, int, int, int], LineRead, int]]:
    """Single pieces, runs of pieces on one line, and two lines stacked."""
    order = sorted(range(len(pieces)), key=lambda i: pieces[i].box[0])
    lines: list[tuple[list[int], tuple[int, int, int, int]]] = []
    for start in order:
        chain = [start]
        lines.append((list(chain), pieces[start].box))
        while len(chain) < 4:
            last = pieces[chain[-1]].box
            nxt = [
                j
                for j in order
                if j not in chain and _same_line(last, pieces[j].box) and pieces[j].box[0] > last[0]
            ]
            if not nxt:
                break
            chain.append(min(nxt, key=lambda j: pieces[j].box[0]))
            lines.append((list(chain), union(pieces[k].box for k in chain)))
    out = []
    for members, box in lines:
        out.append((box, LineRead.join([pieces[k].read for k in members]), 1))
    # Two rows: any line directly above another one of similar width.
    limit = min(len(lines), 40)
    for i in range(limit):
        for j in range(limit):
            if i != j and _stacked(lines[i][1], lines[j][1]):
                top = [pieces[k].read for k in lines[i][0]]
                bottom = [pieces[k].read for k in lines[j][0]]
                read = LineRead.stacked(top, bottom)
                out.append((union([lines[i][1], lines[j][1]]), read, 2))
    return out


_KIND_GLYPHS = {
    "D": grammar.DIGIT,
    "L": grammar.LATIN,
    "R": grammar.RU_LETTERS,
    "B": grammar.BY_LETTERS,
    "C": grammar.CN_LETTERS,
    "P": grammar.CN_PROVINCES,
    "N": grammar.CN_LETTERS + grammar.DIGIT,
    "X": grammar.LATIN + grammar.DIGIT,
    "S": grammar.CN_SUFFIXES,
}


_MASKS = {
    kind: np.array([c in glyphs for c in PLATE_ALPHABET], np.float32)
    for kind, glyphs in _KIND_GLYPHS.items()
}


# A glyph of the wanted class that the reader gives at least this probability beats the
# confusable table's look-alike (bench/recognition/RESULTS.md: 0.05-0.2 read the same).
OWN_ALTERNATIVE = 0.1


_FORMATS_BY_LENGTH: dict[int, list[grammar.PlateFormat]] = {}


for _f in grammar.FORMATS:
    _FORMATS_BY_LENGTH.setdefault(len(_f.pattern), []).append(_f)


def fit_glyphs(
    dists: np.ndarray, plate_format: grammar.PlateFormat
) -> tuple[str, float, int] | None:
    """Best text under a format, from the reader's own glyph probabilities and the grammar.

    This is the format-aware correction. Where the layout wants a digit, the likeliest digit
    is taken; when the network was sure of a confusable letter instead (an O where a 0
    belongs), the grammar's confusable table maps it, at that pair's cost. The table gives
    one look-alike per glyph; where the network itself offers another glyph of the wanted
    class at least ``OWN_ALTERNATIVE`` likely, that glyph is taken instead (a Z read as 7 at
    0.63 with Z at 0.25 is a Z, not the table's T, which the network gave no chance).
    Returns (text, score, corrections) or None when the read cannot be this format.
    """
    top = dists.argmax(axis=1)
    top_p = dists[np.arange(len(top)), top]
    glyphs: list[str] = []
    probs = np.empty(len(top), np.float32)
    alternatives: list[tuple[float, int, str]] = []
    factor = 1.0
    corrections = 0
    for i, kind in enumerate(plate_format.pattern):
        row = dists[i] * _MASKS[kind]
        best = int(row.argmax())
        seen = PLATE_ALPHABET[top[i]]
        mapped = grammar.coerce(seen, kind)
        if mapped is not None and mapped[1] == 0:
            glyphs.append(seen)
            probs[i] = top_p[i]
        elif (
            mapped is not None
            and grammar.penalty(seen, mapped[0]) * top_p[i] > row[best]
            and (row[best] < OWN_ALTERNATIVE or PLATE_ALPHABET[best] == mapped[0])
        ):
            glyphs.append(mapped[0])
            probs[i] = top_p[i]
            factor *= grammar.penalty(seen, mapped[0])
            corrections += 1
        elif row[best] >= 0.01:
            glyphs.append(PLATE_ALPHABET[best])
            probs[i] = row[best]
            corrections += 1
        else:
            return None
        runner = row.copy()
        runner[ALPHABET_INDEX[glyphs[-1]]] = 0
        alt = int(runner.argmax())
        if runner[alt] >= 1e-3:
            alternatives.append((float(runner[alt]), i, PLATE_ALPHABET[alt]))
    text = "".join(glyphs)
    if plate_format.check is not None and not plate_format.check(text):
        # Try the runner-up glyph at the least sure positions before giving up the format.
        for p_alt, pos, glyph in sorted(alternatives, reverse=True):
            trial = text[:pos] + glyph + text[pos + 1 :]
            if plate_format.check(trial):
                text = trial
                probs[pos] = p_alt
                corrections += 1
                break
        else:
            return None
    score = float(np.exp(np.log(np.maximum(probs, 1e-6)).mean())) * factor
    return text, score, corrections


def judge_read(
    read: LineRead, rows: int, countries: Sequence[str] | None
) -> list[tuple[float, grammar.Interpretation, str]]:
    """(confidence, interpretation, raw) for every plausible plate in one read, best first."""
    found: list[tuple[float, grammar.Interpretation, str]] = []
    n = len(read.text)
    wanted = {c.upper() for c in countries} if countries is not None else None
    for start in range(min(4, n)):
        for end in range(n, max(start + 3, n - 4), -1):
            # Trimming drops flags, country codes and stickers beside the plate's glyphs.
            dropped = start + (n - end)
            for plate_format in _FORMATS_BY_LENGTH.get(end - start, ()):
                if wanted is not None and plate_format.country not in wanted:
                    continue
                fitted = fit_glyphs(read.dists[start:end], plate_format)
                if fitted is None:
                    continue
                text, conf, corrections = fitted
                prior = plate_format.prior * (0.6**dropped)
                if rows not in plate_format.rows:
                    prior *= 0.8
                interp = grammar.Interpretation(
                    text,
                    plate_format.country,
                    plate_format.type,
                    corrections,
                    prior,
                    row_break=None if read.row_break is None else read.row_break - start,
                )
                found.append((conf * math.sqrt(prior), interp, read.text))
    # The read as it is, judged by the grammar alone (generic plates, e.g. European).
    for interp in grammar.interpret(read.text, rows=rows, countries=countries):
        if interp.country == "EU":
            if len(interp.text) == n:  # nothing folded away: the rows split where read
                interp = dataclasses.replace(interp, row_break=read.row_break)
            found.append((read.confidence * math.sqrt(interp.score), interp, read.text))
    found.sort(key=lambda f: -f[0])
    return found


def overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    smaller = max(1, min(a[2] * a[3], b[2] * b[3]))
    return ix * iy / smaller


def is_sure(plate: PlateResult) -> bool:
    """A read that needs no second look: a known layout, or a long generic one, read clearly."""
    if plate.country not in (None, origin.UNKNOWN, "EU") or plate.type != "standard":
        return plate.confidence >= 0.8
    # Generic plates score at most sqrt(GENERIC_PRIOR) ~ 0.63; short ones may be fragments.
    return len(plate.text) >= 7 and plate.confidence >= 0.6


def shape_prior(box: TextBox) -> float:
    """Plates are 2:1 to 6:1; long lines of text and specks rank lower."""
    _, _, w, h = box.rect
    ratio = w / max(h, 1)
    return 1.0 if 1.5 <= ratio <= 7 else 0.6


def plate_like(box: TextBox) -> bool:
    _, _, w, h = box.rect
    return h >= MIN_SIDE and w >= MIN_SIDE and 0.6 <= w / h <= 16


def best_result(
    judged: list[tuple[float, grammar.Interpretation, str]],
    box: tuple[int, int, int, int],
    rows: int,
    top_n: int,
) -> PlateResult:
    confidence, interp, raw = judged[0]
    candidates: list[PlateCandidate] = []
    seen: set[str] = set()
    for conf, other, _ in judged:
        if other.text in seen:
            continue
        seen.add(other.text)
        candidates.append(PlateCandidate(other.text, min(1.0, conf)))
        if len(candidates) >= top_n:
            break
    decided = origin.decide(judged, rows)
    return PlateResult(
        text=interp.text,
        raw=raw,
        country=decided.country,
        type=interp.type,
        rows=rows,
        confidence=min(1.0, confidence),
        box=box,
        candidates=tuple(candidates),
        layout=decided.layout,
        country_confidence=decided.country_confidence,
        layout_confidence=decided.layout_confidence,
        row_texts=origin.row_texts(interp.text, interp.row_break if rows == 2 else None),
    )


def tally(reads: list[PlateResult]) -> dict[str, float]:
    """Votes per text: each read for its own text at its confidence, for its other candidates
    at half theirs (``vote`` over a track's frames, ``_agree`` over a frame's re-reads)."""
    tally: dict[str, float] = {}
    for read in reads:
        tally[read.text] = tally.get(read.text, 0.0) + read.confidence
        for candidate in read.candidates:
            if candidate.text != read.text:
                tally[candidate.text] = tally.get(candidate.text, 0.0) + 0.5 * candidate.confidence
    return tally
