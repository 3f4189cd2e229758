"""Container codes in a frame: text lines -> ISO 6346 codes, one-row and vertical layouts.

:func:`assemble` is pure: it takes the text lines a general text reader found (their text,
confidence and box) and puts them together as containers paint them:

- **one row**: ``CSQU 305438 3`` (the detector may give the groups as one line or several
  side by side: lines on the same row are joined left to right);
- **vertical**: owner code and category over the serial and check digit (``CSQU`` /
  ``305438 3``), as on door posts and corner posts; up to three stacked rows are joined;
- the **size and type code** (``45G1``) is the 4-character row or group just after the code,
  on its row or the one below it.

Every candidate is verified with :func:`edge.cargo.iso6346.read_code` (check digit, look-alike
correction only where unambiguous, the owner list); a wrong check digit stays ``read_only``.

:class:`ContainerReader` runs the shipped PP-OCR detector and reader (the plate pipeline's
models, no plate grammar) on a frame and hands the lines to :func:`assemble`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from edge.cargo.iso6346 import (
    OwnerRegistry,
    Verification,
    VerificationLevel,
    read_code,
    read_size_type,
)

MAX_LINES = 64  # text lines considered per frame (a frame full of text is not a container)
MAX_ROWS_JOINED = 3


@dataclass(frozen=True, slots=True)
class TextLine:
    text: str
    confidence: float
    box: tuple[int, int, int, int]  # x, y, width, height


@dataclass(frozen=True, slots=True)
class ContainerSighting:
    """One container code found in one frame."""

    code: str
    verification: Verification
    confidence: float
    box: tuple[int, int, int, int]
    size_type: str | None = None

    @property
    def level(self) -> VerificationLevel:
        return self.verification.level


@dataclass(slots=True)
class _Row:
    lines: list[TextLine]

    @property
    def text(self) -> str:
        return "".join(line.text for line in sorted(self.lines, key=lambda x: x.box[0]))

    @property
    def confidence(self) -> float:
        return min(line.confidence for line in self.lines)

    @property
    def box(self) -> tuple[int, int, int, int]:
        x0 = min(b.box[0] for b in self.lines)
        y0 = min(b.box[1] for b in self.lines)
        x1 = max(b.box[0] + b.box[2] for b in self.lines)
        y1 = max(b.box[1] + b.box[3] for b in self.lines)
        return x0, y0, x1 - x0, y1 - y0


def _same_row(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> bool:
    """Side by side on one line of paint: level, and no wider apart than two glyph heights
    (the groups of one code; the next box's code on the same level is another line)."""
    ca, cb = a[1] + a[3] / 2, b[1] + b[3] / 2
    gap = max(a[0], b[0]) - min(a[0] + a[2], b[0] + b[2])
    return abs(ca - cb) <= 0.5 * min(a[3], b[3]) and gap <= 2 * max(a[3], b[3])


def _below(top: _Row, bottom: _Row) -> bool:
    """``bottom`` is the next row of the same painted block (close under it, overlapping in x)."""
    t, b = top.box, bottom.box
    gap = b[1] - (t[1] + t[3])
    overlap = min(t[0] + t[2], b[0] + b[2]) - max(t[0], b[0])
    return -0.3 * t[3] <= gap <= 1.5 * max(t[3], b[3]) and overlap > 0


def rows(lines: Sequence[TextLine]) -> list[_Row]:
    """Lines grouped into rows, top to bottom."""
    out: list[_Row] = []
    for line in sorted(lines[:MAX_LINES], key=lambda x: (x.box[1], x.box[0])):
        if not line.text:
            continue
        for row in out:
            if _same_row(row.box, line.box):
                row.lines.append(line)
                break
        else:
            out.append(_Row([line]))
    return sorted(out, key=lambda r: r.box[1])


def _rank(v: Verification) -> int:
    return {
        VerificationLevel.READ_ONLY: 0,
        VerificationLevel.CHECK_DIGIT: 1,
        VerificationLevel.CHECK_DIGIT_AND_OWNER: 2,
    }[v.level]


def _size_type_after(text: str) -> str | None:
    st = read_size_type(text[:4]) if len(text) >= 4 else None
    return st.code if st is not None else None


def _codes_in(text: str, owners: OwnerRegistry | None) -> list[tuple[int, Verification]]:
    """Codes in a joined text: 11-character windows shaped like a code (at most one glyph of
    the owner and category a look-alike) that start where a run of letters starts, the best
    first, none overlapping a better one. A window shifted into a code could otherwise pass
    its check digit by look-alike correction and report an invented code as verified."""
    scored = []
    for start in range(0, max(1, len(text) - 10)):
        window = text[start : start + 11]
        if len(window) < 11 or sum(c.isalpha() for c in window[:4]) < 3:
            continue
        if start and text[start - 1].isalpha():
            continue  # inside a word: the owner code starts where letters start
        verification = read_code(window, owners=owners)
        if verification.code is None:
            continue
        quality = (_rank(verification), verification.corrected_from is None)
        scored.append((quality, start, verification))
    kept: list[tuple[int, Verification]] = []
    for _quality, start, verification in sorted(scored, key=lambda x: (x[0], -x[1]), reverse=True):
        if all(abs(start - other) >= 11 for other, _v in kept):
            kept.append((start, verification))
    return kept


def assemble(
    lines: Sequence[TextLine], *, owners: OwnerRegistry | None = None
) -> list[ContainerSighting]:
    """The container codes the lines spell, best verified first, one per code."""
    found: dict[str, ContainerSighting] = {}
    grouped = rows(lines)
    for i in range(len(grouped)):
        block = [grouped[i]]
        for j in range(i + 1, len(grouped)):  # rows beside this block are skipped over
            if len(block) == MAX_ROWS_JOINED:
                break
            if _below(block[-1], grouped[j]):
                block.append(grouped[j])
        for n in range(1, len(block) + 1):
            used = block[:n]
            text = "".join(r.text for r in used)
            following = "".join(r.text for r in block[n : n + 1])
            box = _Row([line for r in used for line in r.lines]).box
            confidence = min(r.confidence for r in used)
            for start, verification in _codes_in(text, owners):
                rest = text[start + 11 :] or following
                sighting = ContainerSighting(
                    verification.text, verification, confidence, box, _size_type_after(rest)
                )
                held = found.get(sighting.code)
                if held is None or (_rank(verification), sighting.confidence) > (
                    _rank(held.verification),
                    held.confidence,
                ):
                    found[sighting.code] = sighting
    return sorted(found.values(), key=lambda s: (-_rank(s.verification), -s.confidence, s.code))


class ContainerReader:
    """The shipped text detector and reader on a frame, then :func:`assemble`."""

    def __init__(
        self,
        detector: Any,
        reader: Any,
        *,
        owners: OwnerRegistry | None = None,
        max_side: int = 640,
    ) -> None:
        self.detector = detector
        self.reader = reader
        self.owners = owners
        self.max_side = max_side

    def read(self, frame: Any) -> list[ContainerSighting]:
        from edge.recognize.ocr import rectify

        boxes = self.detector(frame, max_side=self.max_side)[:MAX_LINES]
        crops = [rectify(frame, b.corners) for b in boxes]
        reads = self.reader(crops) if crops else []
        lines = [
            TextLine(read.text, read.confidence, box.rect)
            for box, read in zip(boxes, reads, strict=True)
        ]
        return assemble(lines, owners=self.owners)
