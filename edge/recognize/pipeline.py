"""Frames -> plate reads: detect text, group it into one- and two-row plates, read, judge.

    frame ─► TextDetector (DB, downscaled) ─► text boxes
          ─► rectify each box ─► TextReader (CTC folded to plate glyphs), one batch
          ─► compose candidates: single boxes, boxes on one line, two rows stacked,
             and the whole image when it is itself a plate crop
          ─► grammar (country formats, confusable correction, flag/sticker trimming)
          ─► plates ordered by confidence, each with top-N candidates and the raw text

The networks run in the caller's thread; the lane runs ``read`` in a worker thread. Image
input is ``image.py``, the motion gate ``motion.py``, candidate judging ``judge.py``, region
cells ``cells.py``; this module loads the models and orchestrates a read.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from edge.config import RecognitionConfig
from edge.recognize import region
from edge.recognize.cells import (
    CELL_JOBS,
    TailJob,
    cell_plate,
    code_in_line,
    offset,
    tail_jobs,
)
from edge.recognize.image import as_bgr
from edge.recognize.judge import (
    MIN_SIDE,
    Piece,
    PlateResult,
    best_result,
    compose,
    is_sure,
    judge_read,
    overlap,
    plate_like,
    shape_prior,
    tally,
    union,
)
from edge.recognize.models import (
    RecognitionError,
    load_manifest,
    model_dir,
    open_session,
    verify,
)
from edge.recognize.ocr import (
    MIN_DETECT_SIDE,
    LineRead,
    TextBox,
    TextDetector,
    TextReader,
    rectify,
)

DETECTOR = "plate_det_ppocrv4"
READER = "plate_rec_ppocrv4"
CELL_READER = "plate_cell"
CROP_MARGIN = 0.3  # of the crop's height, added on each side when it is searched again


class PlateRecognizer:
    """Loads the verified models once; ``read(frame)`` returns the plates in the frame."""

    def __init__(
        self,
        config: RecognitionConfig | None = None,
        *,
        countries: Sequence[str] | None = None,
        max_boxes: int = 10,
        threads: int = 0,
    ) -> None:
        self.max_boxes = max_boxes
        self.config = config or RecognitionConfig()
        self.countries = list(countries) if countries else None
        wanted = {c.upper() for c in self.countries} if self.countries else None
        self._cell_layouts = region.cell_layouts(wanted) if self.config.region_cells else []
        directory = model_dir(self.config.model_dir)
        self.manifests = {}
        sessions = {}
        for name in (DETECTOR, READER, CELL_READER):
            manifest = load_manifest(directory, name)
            path = verify(directory, manifest)
            self.manifests[name] = manifest
            sessions[name] = open_session(path, self.config.provider, threads=threads)
        self.detector = TextDetector(sessions[DETECTOR])
        self.reader = TextReader(sessions[READER])
        self.cell_reader = region.CellReader(sessions[CELL_READER])
        # onnxruntime sessions may be shared across threads: the agent reads as many frames
        # at once as it has recognition threads (recognition.workers, edge.acquire).
        self._warm_up()

    def _warm_up(self) -> None:
        try:
            frame = np.full((96, 320, 3), 255, np.uint8)
            cv2.putText(frame, "123ABC01", (8, 64), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 3)
            self.read(frame)
        except Exception as exc:  # a model that loads but cannot run is a broken model
            raise RecognitionError(f"plate models fail their warm-up inference: {exc}") from None

    def read(self, image: Any, cost: ReadCost | None = None) -> list[PlateResult]:
        """Every plate in the image, best first. Bad images raise ImageError.

        ``cost``, when given, is filled with the work the read took (benchmarks, tests)."""
        frame = as_bgr(image)
        if min(frame.shape[:2]) < MIN_SIDE:
            return []
        return self._read(frame, cost if cost is not None else ReadCost())

    def _read(self, frame: np.ndarray, cost: ReadCost) -> list[PlateResult]:
        first = _View(1.0, cost)
        plates = self._read_view(frame, first)
        if not self.config.rereads or not plates or is_sure(plates[0]):
            return plates
        # The best plate is unsure: read the frame again with the reader's input narrower and
        # wider (the detector's boxes are kept). Each width aligns the glyphs differently with
        # the reader's frames, and a glyph lost or misread at one width is often clear at the
        # other; the three reads of each plate vote. Re-reads revise the plates the first read
        # found and add none (a camera's time stamp read as a plate at one width only).
        rereads = [self._read_view(frame, _View(s, cost, first.boxes)) for s in REREAD_STRETCHES]
        return self._select([_agree(plate, rereads) for plate in plates])

    def _read_view(self, frame: np.ndarray, view: _View) -> list[PlateResult]:
        view.cost.views.append(view.stretch)
        h, w = frame.shape[:2]
        whole = _plate_crop(frame)
        side = self.config.detector_side
        boxes, plates = self._look(frame, side, whole, view)
        escalate = self.config.escalate_side
        if (
            escalate > side
            and max(h, w) > 1.2 * side
            and not any(p.confidence >= self.config.min_confidence for p in plates)
        ):
            # Nothing found at the usual scale: a small or distant plate may be there, so the
            # frame is searched once more, finer. Frames with a plate never pay for this.
            boxes, more = self._look(frame, escalate, False, view)
            plates += more
        sure = [p for p in plates if is_sure(p)]
        unsure = [
            p for p in plates if not is_sure(p) and p.confidence >= self.config.min_confidence
        ]

        def explained_by(box: TextBox, found: list[PlateResult]) -> bool:
            return any(overlap(_clip(box.rect, w, h), p.box) > 0.5 for p in found)

        # Boxes a sure plate does not explain. Once one plate is sure, only boxes that read as
        # a plate themselves (a trailer's) are worth a second look, not every line of text
        # (a sign's letters forced into a layout make a plate too, but one below the bar).
        unexplained = [
            b for b in boxes if not explained_by(b, sure) and (not sure or explained_by(b, unsure))
        ]
        if not unexplained and (sure or not whole):
            return self._select(plates)
        # Second look: region codes and flags sit in their own frame beside the main glyphs
        # and the detector often leaves them out, so the best unexplained boxes are read once
        # more, widened; a square crop may be a two-row plate the detector saw as one blob, so
        # it is split into rows.
        extra: list[np.ndarray] = []
        extra_rects: list[tuple[int, int, int, int]] = []
        for b in unexplained[:2]:
            corners = b.corners.copy()
            grow = 1.3 * b.rect[3]
            corners[[0, 3], 0] -= grow
            corners[[1, 2], 0] += grow
            extra.append(rectify(frame, corners))
            extra_rects.append(_clip(TextBox(corners, b.score).rect, w, h))
        split = whole and not sure and w / h < 3.2 and h >= 16
        if split:
            extra.extend(_split_rows(frame))
        reads = self._read_lines(extra, view)
        pieces = [Piece(r, read) for r, read in zip(extra_rects, reads, strict=False)]
        plates += self._plates(pieces)
        if split:
            top, bottom = reads[-2:]
            judged = judge_read(LineRead.stacked([top], [bottom]), 2, self.countries)
            if judged:
                plates.append(best_result(judged, (0, 0, w, h), 2, self.config.top_n))
        return self._select(plates)

    def _look(
        self, frame: np.ndarray, side: int, whole: bool, view: _View
    ) -> tuple[list[TextBox], list[PlateResult]]:
        """Detect at ``side``, read every plate-shaped box (and the whole image if it is a crop)."""
        h, w = frame.shape[:2]
        found = view.boxes.get((side, whole))
        if found is None:
            found = self.detector(frame, max_side=side)
            view.cost.detections.append((view.stretch, side))
            if whole and max(h, w) < MIN_DETECT_SIDE and not any(plate_like(b) for b in found):
                found = self._detect_with_margin(frame, side)
                view.cost.margin_searches += 1
            view.boxes[(side, whole)] = found
        boxes = [b for b in found if plate_like(b)]
        boxes.sort(key=lambda b: -b.score * shape_prior(b))
        boxes = boxes[: self.max_boxes]  # bound the recogniser's work on a frame full of text
        crops = [rectify(frame, b.corners) for b in boxes]
        rects = [_clip(b.rect, w, h) for b in boxes]
        quads = [b.corners for b in boxes]
        if whole:
            crops.append(frame)
            rects.append((0, 0, w, h))
            quads.append(np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32))
        reads = self._read_lines(crops, view)
        pieces = [Piece(r, read) for r, read in zip(rects, reads, strict=True)]
        plates = self._plates(pieces)
        plates += self._region_cells(frame, quads, pieces, view.stretch)
        return boxes, plates

    def _detect_with_margin(self, frame: np.ndarray, side: int) -> list[TextBox]:
        """Text boxes in a small crop with a margin of its own edge pixels added round it. In a
        tight plate crop the glyphs touch the image's edges, and the detector (trained on
        scenes) may find only fragments of the line; with room round it, it finds the line."""
        pad = max(2, round(CROP_MARGIN * frame.shape[0]))
        padded = cv2.copyMakeBorder(frame, pad, pad, pad, pad, cv2.BORDER_REPLICATE)
        return [TextBox(b.corners - pad, b.score) for b in self.detector(padded, max_side=side)]

    def _plates(self, pieces: list[Piece]) -> list[PlateResult]:
        plates = []
        for box, read, rows in compose(pieces):
            if not read.text:
                continue
            judged = judge_read(read, rows, self.countries)
            if judged:
                plates.append(best_result(judged, box, rows, self.config.top_n))
        return plates

    def _region_cells(
        self, frame: np.ndarray, quads: list[np.ndarray], pieces: list[Piece], stretch: float
    ) -> list[PlateResult]:
        """Plates whose region code sits in its own small frame (UZ, KG): the cell read alone.

        For the reads that best end in such a layout's main glyphs, the cell left of them is
        cut out, read by itself, and each code the layout allows is scored against that read
        and against what the main line saw there, when it saw anything. A read that already
        shows the code's digits clearly in line (printed as large as the rest) needs no cell:
        the line's own plate stands (``code_in_line``).
        """
        if not self._cell_layouts:
            return []
        jobs: list[tuple[TailJob, np.ndarray, Piece]] = []
        for quad, piece in zip(quads, pieces, strict=True):
            jobs.extend((job, quad, piece) for job in tail_jobs(piece.read, self._cell_layouts))
        jobs.sort(key=lambda j: -j[0].score)
        candidates = []
        h, w = frame.shape[:2]
        for job, quad, piece in jobs[:CELL_JOBS]:
            assert piece.read.positions is not None
            if code_in_line(job, piece.read):
                continue
            run = offset(job.layout.pitch_run, job.start)
            found = [
                region.cell_corners(
                    quad, piece.read.positions, job.start, run, left=left, right=right
                )
                for left, right in region.CELLS
            ]
            corners = [c for c in found if c is not None]
            left, right = region.MAIN_SPAN
            main = region.cell_corners(
                quad, piece.read.positions, job.start, run, left=left, right=right
            )
            if not corners or main is None:
                continue
            cuts = [rectify(frame, c) for c in corners]
            if not region.on_plate(cuts, rectify(frame, main)):
                continue
            box = union([piece.box, _clip(TextBox(corners[-1], 1.0).rect, w, h)])
            candidates.append((job, piece, box, cuts))
        # The cell classifier first (about 1 ms for every cut): where it sees no digits (a
        # European plate's letters or band left of an L DDD LL run) the general reader is not
        # asked at all, and where it does, the reader reads only the clearest cuts. Where it
        # is unsure, the reader reads three fixed cuts and alone decides whether there is a
        # code and which (the classifier's digits are left out of the score).
        classified = self.cell_reader([cut for *_, cuts in candidates for cut in cuts])
        kept = []
        for job, piece, box, cuts in candidates:
            digits, classified = classified[: len(cuts)], classified[len(cuts) :]
            evidence = region.digits_per_cut(digits)
            mean = evidence.mean()
            if mean >= region.MIN_CELL_DIGITS:
                clearest = region.clearest_cuts(evidence)
                kept.append(
                    (job, piece, box, [cuts[i] for i in clearest], digits[clearest], -math.inf)
                )
            elif mean >= region.UNSURE_CELL_DIGITS:
                second = [cuts[i] for i in region.SECOND_OPINION]
                kept.append((job, piece, box, second, digits[:0], region.MIN_READ_DIGITS))
        reads = self.reader.frames(
            [cut for _, _, _, cuts, _, _ in kept for cut in cuts], stretch=stretch
        )
        plates = []
        for job, piece, box, cuts, digits, least in kept:
            frames, reads = reads[: len(cuts)], reads[len(cuts) :]
            seen = self.reader.decode(frames[len(frames) // 2]).text
            plate = cell_plate(
                job, piece.read, frames, digits, seen, box, self.config.top_n, least_present=least
            )
            if plate is not None:
                plates.append(plate)
        return plates

    def _select(self, plates: list[PlateResult]) -> list[PlateResult]:
        plates.sort(key=lambda p: -p.confidence)
        kept: list[PlateResult] = []
        for plate in plates:
            if plate.confidence < self.config.min_confidence:
                continue
            if any(overlap(plate.box, k.box) > 0.5 for k in kept):
                continue
            kept.append(plate)
        return kept

    def _read_lines(self, crops: list[np.ndarray], view: _View) -> list[LineRead]:
        if not crops:
            return []
        view.cost.reader_batches.append(len(crops))
        stretch = view.stretch
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / crops[i].shape[0])
        out: list[LineRead | None] = [None] * len(crops)
        for start in range(0, len(order), 8):
            chunk = order[start : start + 8]
            reads = self.reader([crops[i] for i in chunk], stretch=stretch)
            for i, read in zip(chunk, reads, strict=True):
                out[i] = read
        return [r for r in out if r is not None]


REREAD_STRETCHES = (0.9, 1.1)  # reader widths of an unsure frame's re-reads (1.0: the first)


@dataclass(slots=True)
class ReadCost:
    """The work one ``read`` took: what a caller can check without timing it."""

    views: list[float] = field(default_factory=list)  # reader widths, one per view of the frame
    # Detector runs: (the view's reader width, the long side in px the frame was scaled to).
    detections: list[tuple[float, int]] = field(default_factory=list)
    margin_searches: int = 0  # tight crops searched again with a margin round them
    reader_batches: list[int] = field(default_factory=list)  # line crops read per batch


@dataclass(slots=True)
class _View:
    """One read of a frame: the reader's width ``stretch``, and the detector's boxes per
    (side, whole crop). The re-reads share the first read's dict: a side it detected at is
    not detected again; one it did not (the 960 px search, where a re-read finds no plate
    at 512) is detected once and kept for the other re-read."""

    stretch: float
    cost: ReadCost
    boxes: dict[tuple[int, bool], list[TextBox]] = field(default_factory=dict)


def _agree(plate: PlateResult, rereads: list[list[PlateResult]]) -> PlateResult:
    """``plate`` and its re-reads (the surest plate overlapping it in each) vote on its text:
    each read for its own text at its confidence and its other candidates at half theirs.
    The winner is given as its surest read gave it; a text that was only ever a runner-up
    does not win (the first read stands)."""
    reads = [plate]
    for view in rereads:
        same = [p for p in view if overlap(p.box, plate.box) > 0.5]
        if same:
            reads.append(max(same, key=lambda p: p.confidence))
    votes = tally(reads)
    winner = max(votes, key=lambda text: votes[text])
    supporters = [r for r in reads if r.text == winner]
    return max(supporters, key=lambda r: r.confidence) if supporters else plate


def _clip(rect: tuple[int, int, int, int], w: int, h: int) -> tuple[int, int, int, int]:
    x, y, rw, rh = rect
    x0, y0 = max(0, x), max(0, y)
    x1, y1 = min(w, x + rw), min(h, y + rh)
    return x0, y0, max(0, x1 - x0), max(0, y1 - y0)


def _plate_crop(frame: np.ndarray) -> bool:
    """An image that is itself a plate (or a tight crop around one) is read whole too."""
    h, w = frame.shape[:2]
    return max(h, w) <= 800 and 1.0 <= w / h <= 8.0


def _split_rows(frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Cut a two-row plate at the quietest row between 30 % and 70 % of its height."""
    grey = cv2.cvtColor(frame, cv2.COLOR_BGR2GRAY)
    edges = np.abs(np.diff(grey.astype(np.int16), axis=1)).sum(axis=1)
    h = grey.shape[0]
    lo, hi = int(h * 0.3), max(int(h * 0.7), int(h * 0.3) + 1)
    cut = lo + int(np.argmin(edges[lo:hi]))
    return frame[:cut], frame[cut:]
