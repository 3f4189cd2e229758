"""Region cells: UZ and KG plates print their region code in a cell of its own, which the
general reader often misses; these jobs find a read's main part, read the cell with the
cell classifier (``region.py``) and score the codes the layout allows."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from edge.recognize import grammar, region
from edge.recognize.judge import PlateResult, best_result, fit_glyphs
from edge.recognize.ocr import LineRead

CELL_JOBS = 2  # region cells read per frame, at most


IN_LINE_SURE = 0.9  # a code glyph read in line at least this likely needs no cell of its own


@dataclass(frozen=True, slots=True)
class TailJob:
    """A read whose glyphs from ``start`` to ``end`` are the main part of a cell layout."""

    layout: region.CellLayout
    start: int
    end: int
    text: str
    conf: float
    """Glyph confidence of the main part, with its corrections' costs."""
    prior: float
    """The layout's prior, x0.6 per glyph of the read left unexplained."""
    corrections: int

    @property
    def score(self) -> float:
        return self.conf * math.sqrt(self.prior)


def tail_jobs(read: LineRead, layouts: list[region.CellLayout]) -> list[TailJob]:
    """Every fit of a read's last glyphs to a cell layout's main part. Glyphs left of it
    beyond the cell's own count as dropped (x0.6 each). Nothing is dropped at the right:
    there a trimmed read is the general judge's business, and letting the cell explain the
    left end of a read that also needs its right end cut made European plates into UZ
    trailers (``1B80338`` -> ``01B8033``)."""
    if read.positions is None:
        return []
    jobs: dict[tuple[int, str], TailJob] = {}
    n = len(read.text)
    for layout in layouts:
        size = len(layout.tail.pattern)
        start = n - size
        if start < 0:
            continue
        fitted = fit_glyphs(read.dists[start:], layout.tail)
        if fitted is None:
            continue
        text, conf, corrections = fitted
        dropped = max(0, start - layout.format.region_cell)
        prior = layout.format.prior * 0.6**dropped
        job = TailJob(layout, start, n, text, conf, prior, corrections)
        key = (start, layout.tail.pattern)
        if key not in jobs or jobs[key].score < job.score:
            jobs[key] = job
    return list(jobs.values())


def code_in_line(job: TailJob, read: LineRead) -> bool:
    """The read holds, just before the job's main part, as many digits as the cell's code,
    each at least ``IN_LINE_SURE`` likely: whatever is there was printed in line and read
    there. An allowed code is then the line's own plate already; any other (a camera's
    time stamp left of a run of digits) is no region code at all."""
    size = job.layout.format.region_cell
    if job.start < size:
        return False
    code = read.text[job.start - size : job.start]
    return code.isdigit() and float(read.probs[job.start - size : job.start].min()) >= IN_LINE_SURE


def offset(run: tuple[int, int], start: int) -> tuple[int, int]:
    return run[0] + start, run[1] + start


def cell_plate(
    job: TailJob,
    read: LineRead,
    frames: list[np.ndarray],
    digits: np.ndarray,
    cell_text: str,
    box: tuple[int, int, int, int],
    top_n: int,
    *,
    least_present: float = -math.inf,
) -> PlateResult | None:
    """The plate of a main part and its region cell's reads, or None when the cell shows no
    code. Each code the layout allows is scored by the cell's general read (every CTC
    alignment summed), by the cell classifier's digits (``digits``, per cut) and by what the
    main line read just before the main part, where it read anything. The raw
    text is the cell's own greedy read, ``|``, then the main line's read.

    Evidence that a code is there at all, P(the cell holds two digits) x P(the main line's
    glyphs there are that code's), must reach ``region.MIN_EVIDENCE``: a European plate's
    letters left of a ``LDDDLL`` run give no digits. P(two digits) is the general read's or,
    where larger, the classifier's (mean over the cuts in ``digits``). The plate's confidence
    then counts the code as two glyphs with the code's share among the allowed codes as their
    probability, so a blurred but present cell does not lose to a fragment of the main
    glyphs.
    ``least_present`` is the least log P(the cell holds two digits) by the general read
    alone: ``region.MIN_READ_DIGITS`` where the classifier was unsure and ``digits`` is empty.
    """
    cell_size = job.layout.format.region_cell
    pattern = job.layout.tail.pattern
    seen = read.dists[max(0, job.start - cell_size) : job.start]
    present = region.code_present(frames, cell_size)
    if present < least_present:
        return None
    if len(digits):
        # The classifier's evidence of two digits counts as much as the reader's: digits 5-7
        # px tall that the general reader drops can still be plain to it.
        present = max(present, float(region.digits_per_cut(digits).mean()))
    found = []
    for plate_format in _CELL_FORMATS:
        if plate_format.pattern[plate_format.region_cell :] != pattern:
            continue
        codes = region.allowed_codes(plate_format, job.text)
        if not codes:
            continue
        main = {code: region.code_log_prior(seen, code) for code in codes}
        scored = [
            (ll + main[code] + region.classified_log_likelihood(digits, code), code)
            for ll, code in region.score_codes(frames, codes)
        ]
        scored.sort(key=lambda s: -s[0])
        if present + main[scored[0][1]] < region.MIN_EVIDENCE:
            continue
        total = float(np.logaddexp.reduce([ll for ll, _ in scored]))
        prior = job.prior * plate_format.prior / job.layout.format.prior
        length = len(plate_format.pattern)
        tail_log = math.log(max(job.conf, 1e-6)) * (length - cell_size)
        for log_p, code in scored[:3]:
            conf = math.exp((log_p - total + tail_log) / length)
            interp = grammar.Interpretation(
                code + job.text, plate_format.country, plate_format.type, job.corrections, prior
            )
            found.append((conf * math.sqrt(prior), interp, cell_text + "|" + read.text))
    if not found:
        return None
    found.sort(key=lambda f: -f[0])
    return best_result(found, box, 1, top_n)


_CELL_FORMATS = [f for f in grammar.FORMATS if f.region_cell]
