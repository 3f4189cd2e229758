"""Region-code cells: the small framed code at the left of a UZ or KG plate, read on its own.

On Uzbek (01 A 123 BC) and Kyrgyz (01 123 ABC) plates the two-digit region code sits in its
own frame left of the main glyphs, printed smaller than they are. Read in one line with the
rest, those digits get a few pixels of the reader's 48-pixel line and the general reader drops
them or reads them as ``G1``, ``I``, ``L1``. Here the main glyphs' own spacing locates the
cell (the CTC frames say where each glyph is), the cell is cut out along the plate's slant and
read by itself, so its digits fill the reader's height; the read is then scored against the
codes the layout allows by summing every CTC alignment of each code, rather than by trusting
a greedy decoding of two blurred glyphs. The same cuts also go to a small classifier trained
for exactly this (``CellReader``, ``models/plate_cell.onnx``, trained on synthetic cells by
``models/training/train_cell.py``), whose per-digit log-probabilities add to each code's
score. Geometry and scoring; the general networks run in ``pipeline``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge.recognize import grammar
from edge.recognize.ocr import ALPHABET_INDEX, ctc_log_likelihood

# Where the cell lies, in digit pitches (centre-to-centre distance of the main digits) left
# of the centre of the first main glyph: its separator about half a pitch before that glyph,
# its left edge about two pitches further. A pitch measured on a few blurred pixels is not
# exact, so the cell is cut nine times, (left edge, right edge) over three widths and three
# separators; the cell classifier looks at all nine and the general reader reads the
# ``READ_CUTS`` that show digits most clearly. Ordered by left edge, the farthest last.
CELLS = tuple(
    sorted((right + width, right) for width in (1.6, 1.9, 2.2) for right in (0.35, 0.5, 0.65))
)
READ_CUTS = 3
CELL_HALF_HEIGHT = 0.8
# A glyph the cell shows beside the code (its frame's edge read as 1 or I) costs this much
# per frame instead of ruling the code out.
JUNK = 0.3
# A main part shorter than this (UZ trailer A 1234, KG legal 123 AB) fits too many other
# plates' glyphs (US, BR, EU scenes) for a cell that may not be there to be read left of it.
MIN_MAIN_GLYPHS = 6
# Least log evidence that a cell holds a code at all (see ``pipeline._cell_plate``).
MIN_EVIDENCE = -9.0
# The cell classifier's input (grey) and its class of a position that shows no digit.
CELL_HEIGHT, CELL_WIDTH = 24, 32
NO_DIGIT = 10
# Least classifier evidence (mean over all of a cell's cuts of log P(a digit at both
# positions)) for a cell to be read at all. The classifier is sure of itself either way, and
# a real cell cut in the wrong place may score low on most cuts yet give its code on the
# others with the general reader's help; a European plate's band or letters must not. The
# mean over every cut, not over the chosen ones, keeps the choice from inflating the evidence.
# Chosen on the benchmark sets (bench/recognition/RESULTS.md): -22 keeps every non-UZ figure
# of the pass-off configuration; -24 lets a code onto one European scene and one synthetic
# plate, -20 loses one Uzbek crop.
MIN_CELL_DIGITS = -22.0
# Between this and ``MIN_CELL_DIGITS`` the classifier is unsure, and the general reader gives
# a second opinion: it reads the ``SECOND_OPINION`` cuts (the middle separator at each width,
# fixed so that choosing them does not inflate the evidence) and the cell is read when their
# mean log P(the code's digits) reaches ``MIN_READ_DIGITS``. Real cells the classifier is
# unsure of include codes that fill their cut, which its synthetic training never showed
# (``docs/recognition.md``, Training); below -40 lie most European bands and letters, so
# their plates do not pay for three more reads (about 12 ms; 11 of the 108 European 1080p
# frames pay it). Chosen on the benchmark sets: any band edge from -50 to -35 reads the
# same; -30 loses an Uzbek crop.
UNSURE_CELL_DIGITS = -40.0
SECOND_OPINION = tuple(i for i, (_, right) in enumerate(CELLS) if right == 0.5)
MIN_READ_DIGITS = -1.0
# A region cell is part of the plate: its background is nearly as bright as that of the main
# glyphs beside it. Left of a plate the detector cut short lies the vehicle's body or a tyre,
# dark, where the classifier and reader can still find two "digits" (a Russian A 123 BC read
# as 10 A 123 BC). Background: the 75th percentile of the grey levels, above the ink.
MIN_CELL_BACKGROUND = 0.6
# What the cell is compared with: the first main glyphs, (left, right) in the pitches of CELLS.
MAIN_SPAN = (0.5, -2.5)
# Least probability the main line's read gives a code glyph where it read something else
# (``code_log_prior``): its read of the small code is what the cell pass exists to correct
# (a clear cell 01 the line read as L1), so a misread glyph weighs like a doubtful one, not
# like a veto.
MAIN_LINE_FLOOR = 0.03


def background(cut: np.ndarray) -> float:
    """A cut's background level: the 75th percentile of its grey values (ink is darker)."""
    grey = cut if cut.ndim == 2 else cv2.cvtColor(cut, cv2.COLOR_BGR2GRAY)
    return float(np.percentile(grey, 75))


def on_plate(cuts: list[np.ndarray], main: np.ndarray) -> bool:
    """Whether a cell's cuts show the plate's own background, as the main glyphs' ``main``
    cut does, rather than the vehicle or road left of a box cut short."""
    cell = float(np.median([background(c) for c in cuts]))
    return cell >= MIN_CELL_BACKGROUND * background(main)


def cell_input(cut: np.ndarray) -> np.ndarray:
    """A cut (BGR or grey, any size) as the cell classifier sees it: grey, 24x32, uint8."""
    grey = cut if cut.ndim == 2 else cv2.cvtColor(cut, cv2.COLOR_BGR2GRAY)
    return cv2.resize(grey, (CELL_WIDTH, CELL_HEIGHT), interpolation=cv2.INTER_LINEAR)


class CellReader:
    """The region-code cell classifier: per cut, log P(digit or none) at each of 2 positions."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name

    def __call__(self, cuts: list[np.ndarray]) -> np.ndarray:
        """(N, 2, 11) log-probabilities; classes 0-9 the digit, ``NO_DIGIT`` none."""
        if not cuts:
            return np.zeros((0, 2, NO_DIGIT + 1), np.float32)
        batch = np.stack([cell_input(c) for c in cuts])[:, None].astype(np.float32)
        return np.asarray(self.session.run(None, {self.input_name: batch})[0], np.float32)


def digits_per_cut(log_probs: np.ndarray) -> np.ndarray:
    """Per cut, log P(a digit at every position) by the classifier: the cut's evidence that
    it shows a code. Its mean over a cell's cuts is what ``MIN_CELL_DIGITS`` gates."""
    no_digit = np.exp(log_probs[:, :, NO_DIGIT].astype(np.float64))
    return np.log(np.maximum(1.0 - no_digit, 1e-12)).sum(axis=1)


def clearest_cuts(evidence: np.ndarray, count: int = READ_CUTS) -> list[int]:
    """Indices, in cut order, of the ``count`` cuts with the most ``digits_per_cut`` evidence."""
    order = np.argsort(-evidence, kind="stable")
    return sorted(int(i) for i in order[:count])


def classified_log_likelihood(log_probs: np.ndarray, code: str) -> float:
    """Mean over a cell's cuts of log P(code) by the classifier (0 when there are no cuts)."""
    if len(code) != log_probs.shape[1]:
        raise ValueError(f"the cell classifier reads {log_probs.shape[1]} glyphs, not {code!r}")
    if len(log_probs) == 0:
        return 0.0
    columns = [int(ch) for ch in code]
    return float(log_probs[:, range(len(columns)), columns].sum(axis=1).mean())


@dataclass(frozen=True, slots=True)
class CellLayout:
    """A plate format whose first ``format.region_cell`` glyphs sit in a frame of their own."""

    format: grammar.PlateFormat
    tail: grammar.PlateFormat
    """The same format without the cell: what the main line must read."""
    pitch_run: tuple[int, int]
    """First and last index, in the tail, of its longest run of digits (spacing reference)."""


def cell_layouts(countries: set[str] | None = None) -> list[CellLayout]:
    """The layouts with a region cell, limited to ``countries`` when given."""
    layouts = []
    for plate_format in grammar.FORMATS:
        if not plate_format.region_cell:
            continue
        if countries is not None and plate_format.country not in countries:
            continue
        pattern = plate_format.pattern[plate_format.region_cell :]
        if len(pattern) < MIN_MAIN_GLYPHS:
            continue
        tail = grammar.PlateFormat("", plate_format.type, pattern)
        layouts.append(CellLayout(plate_format, tail, _digit_run(pattern)))
    return layouts


def _digit_run(pattern: str) -> tuple[int, int]:
    best = (0, 0)
    start = None
    for i, kind in enumerate(pattern + "."):
        if kind == "D" and start is None:
            start = i
        elif kind != "D" and start is not None:
            if i - 1 - start > best[1] - best[0]:
                best = (start, i - 1)
            start = None
    return best


def cell_corners(
    corners: np.ndarray,
    positions: np.ndarray,
    first: int,
    run: tuple[int, int],
    *,
    left: float,
    right: float,
) -> np.ndarray | None:
    """The quadrilateral of the region cell, in image coordinates, or None.

    ``corners`` are the read crop's (top-left, top-right, bottom-right, bottom-left);
    ``positions`` each glyph's centre as a fraction of the crop's width; ``first`` the index
    of the first main glyph; ``run`` two glyph indices whose spacing gives the digit pitch.
    The cell may reach past the crop's left edge: the detector often leaves the frame out.
    """
    if run[1] <= run[0] or max(first, run[1]) >= len(positions):
        return None
    pitch = float(positions[run[1]] - positions[run[0]]) / (run[1] - run[0])
    if pitch <= 0:
        return None
    tl, tr, br, bl = (np.asarray(c, np.float64) for c in corners)
    width = (np.linalg.norm(tr - tl) + np.linalg.norm(br - bl)) / 2
    height = (np.linalg.norm(bl - tl) + np.linalg.norm(br - tr)) / 2
    if width < 1 or height < 1:
        return None
    u0 = float(positions[first]) - left * pitch
    u1 = float(positions[first]) - right * pitch
    half = float(CELL_HALF_HEIGHT * pitch * width / height)
    v0, v1 = 0.5 - half, 0.5 + half

    def point(u: float, v: float) -> np.ndarray:
        return (1 - v) * (tl + u * (tr - tl)) + v * (bl + u * (br - bl))

    quad = np.array([point(u0, v0), point(u1, v0), point(u1, v1), point(u0, v1)], np.float32)
    side = np.linalg.norm(quad[1] - quad[0])
    return quad if side >= 2 else None


def allowed_codes(plate_format: grammar.PlateFormat, tail_text: str) -> list[str]:
    """Every code the format's own check accepts in front of ``tail_text``."""
    n = plate_format.region_cell
    check = plate_format.check
    codes = []
    for value in range(10**n):
        code = f"{value:0{n}d}"
        if check is None or check(code + tail_text):
            codes.append(code)
    return codes


def score_codes(
    reads: list[np.ndarray], codes: list[str], *, junk: float = JUNK
) -> list[tuple[float, str]]:
    """(mean over the cell's reads of log P(code | read), code) for each code, best first."""
    scored = [
        (sum(ctc_log_likelihood(f, code, junk=junk) for f in reads) / len(reads), code)
        for code in codes
    ]
    scored.sort(key=lambda s: -s[0])
    return scored


def code_present(reads: list[np.ndarray], size: int, *, junk: float = JUNK) -> float:
    """log P(the cell holds ``size`` digits, whichever), mean over the cell's reads."""
    label = [grammar.DIGIT] * size
    return sum(ctc_log_likelihood(f, label, junk=junk) for f in reads) / len(reads)


def code_log_prior(dists: np.ndarray, code: str) -> float:
    """log P(code) from the main line's own glyphs read where the cell is.

    ``dists`` may hold fewer rows than the code has glyphs (the main line kept one glyph of
    the two): they are then matched at the code's best-fitting place.
    """
    if len(dists) == 0:
        return 0.0
    best = -math.inf
    for offset in range(len(code) - len(dists) + 1):
        total = 0.0
        for row, ch in zip(dists, code[offset:], strict=False):
            total += math.log(max(float(row[ALPHABET_INDEX[ch]]), MAIN_LINE_FLOOR))
        best = max(best, total)
    return best
