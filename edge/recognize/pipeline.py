"""Frames -> plate reads: detect text, group it into one- and two-row plates, read, judge.

    frame ─► TextDetector (DB, downscaled) ─► text boxes
          ─► rectify each box ─► TextReader (CTC folded to plate glyphs), one batch
          ─► compose candidates: single boxes, boxes on one line, two rows stacked,
             and the whole image when it is itself a plate crop
          ─► grammar (country formats, confusable correction, flag/sticker trimming)
          ─► plates ordered by confidence, each with top-N candidates and the raw text

The networks run in the caller's thread; the lane runs ``read`` in a worker thread.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.config import RecognitionConfig
from edge.recognize import grammar, region
from edge.recognize.models import (
    ImageError,
    RecognitionError,
    load_manifest,
    model_dir,
    open_session,
    verify,
)
from edge.recognize.ocr import (
    ALPHABET_INDEX,
    MIN_DETECT_SIDE,
    PLATE_ALPHABET,
    LineRead,
    TextBox,
    TextDetector,
    TextReader,
    rectify,
)

DETECTOR = "plate_det_ppocrv4"
READER = "plate_rec_ppocrv4"
CELL_READER = "plate_cell"
MAX_PIXELS = 50_000_000  # beyond this an image is refused rather than risk memory
MIN_SIDE = 8
CROP_MARGIN = 0.3  # of the crop's height, added on each side when it is searched again


@dataclass(frozen=True, slots=True)
class PlateCandidate:
    text: str
    confidence: float


@dataclass(frozen=True, slots=True)
class PlateResult:
    """One plate found in one frame."""

    text: str
    raw: str
    country: str | None
    type: str | None
    rows: int
    confidence: float
    box: tuple[int, int, int, int]
    candidates: tuple[PlateCandidate, ...] = field(default=())

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
        }

    def to_plate_read(self, *, camera: str, position: str) -> Any:
        """The wire type ``edge.events.PlateRead`` for this plate."""
        from edge.events import Candidate, PlateRead

        return PlateRead(
            text=self.text,
            raw=self.raw,
            country=self.country,
            type=self.type,
            rows=self.rows,
            confidence=min(1.0, max(0.0, self.confidence)),
            candidates=[Candidate(text=c.text, confidence=c.confidence) for c in self.candidates],
            camera=camera,
            position=position,
        )


# --- image input ---------------------------------------------------------------------------


def as_bgr(image: Any) -> np.ndarray:
    """Any decoded picture as 8-bit BGR; raises ImageError for what is no picture."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy image, got {type(image).__name__}")
    if image.size == 0:
        raise ImageError("the image is empty")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(f"not an image: shape {image.shape}")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise ImageError(f"image too large: {image.shape[1]}x{image.shape[0]} pixels")
    if image.dtype != np.uint8:
        if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.number):
            raise ImageError(f"unsupported pixel type {image.dtype}")
        data = np.nan_to_num(image.astype(np.float32))
        top = float(data.max()) if data.size else 0.0
        scale = 255.0 if top <= 1.0 else (255.0 / 65535.0 if top > 255 else 1.0)
        image = np.clip(data * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file; ImageError when it is missing, unreadable or no image."""
    path = Path(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data.size == 0:
        raise ImageError(f"{path}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"{path}: not a decodable image")
    return as_bgr(image)


# --- the cheap gate ------------------------------------------------------------------------


class MotionGate:
    """Says whether a frame differs from the scene seen so far: costs ~1 ms at 1080p.

    An empty lane's frames fail the gate and never reach the networks; a lane trigger
    (loop, light curtain) can open the recogniser instead.
    """

    def __init__(self, *, threshold: float = 0.004, learn: float = 0.05) -> None:
        self.threshold = threshold
        self.learn = learn
        self._background: np.ndarray | None = None

    def changed(self, frame: np.ndarray) -> bool:
        small = cv2.resize(as_bgr(frame), (160, 90), interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        grey = grey.astype(np.float32)
        if self._background is None:
            self._background = grey
            return True
        moving = float((np.abs(grey - self._background) > 18).mean())
        cv2.accumulateWeighted(grey, self._background, self.learn)
        return moving > self.threshold


# --- candidates ----------------------------------------------------------------------------


@dataclass(slots=True)
class _Piece:
    box: tuple[int, int, int, int]
    read: LineRead


def _union(boxes: Iterable[tuple[int, int, int, int]]) -> tuple[int, int, int, int]:
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


def _compose(pieces: list[_Piece]) -> list[tuple[tuple[int, int, int, int], LineRead, int]]:
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
            lines.append((list(chain), _union(pieces[k].box for k in chain)))
    out = []
    for members, box in lines:
        out.append((box, LineRead.join([pieces[k].read for k in members]), 1))
    # Two rows: any line directly above another one of similar width.
    limit = min(len(lines), 40)
    for i in range(limit):
        for j in range(limit):
            if i != j and _stacked(lines[i][1], lines[j][1]):
                reads = [pieces[k].read for k in lines[i][0] + lines[j][0]]
                out.append((_union([lines[i][1], lines[j][1]]), LineRead.join(reads), 2))
    return out


# --- scoring -------------------------------------------------------------------------------


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


def _fit_glyphs(
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


def _judge(
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
                fitted = _fit_glyphs(read.dists[start:end], plate_format)
                if fitted is None:
                    continue
                text, conf, corrections = fitted
                prior = plate_format.prior * (0.6**dropped)
                if rows not in plate_format.rows:
                    prior *= 0.8
                interp = grammar.Interpretation(
                    text, plate_format.country, plate_format.type, corrections, prior
                )
                found.append((conf * math.sqrt(prior), interp, read.text))
    # The read as it is, judged by the grammar alone (generic plates, e.g. European).
    for interp in grammar.interpret(read.text, rows=rows, countries=countries):
        if interp.country == "EU":
            found.append((read.confidence * math.sqrt(interp.score), interp, read.text))
    found.sort(key=lambda f: -f[0])
    return found


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    ix = max(0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    smaller = max(1, min(a[2] * a[3], b[2] * b[3]))
    return ix * iy / smaller


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
        # onnxruntime sessions may be shared across threads, but one read at a time keeps
        # the latency of a read predictable on a 2-core controller.
        self._lock = threading.Lock()
        self._warm_up()

    def _warm_up(self) -> None:
        try:
            frame = np.full((96, 320, 3), 255, np.uint8)
            cv2.putText(frame, "123ABC01", (8, 64), cv2.FONT_HERSHEY_SIMPLEX, 1.6, (0, 0, 0), 3)
            self.read(frame)
        except Exception as exc:  # a model that loads but cannot run is a broken model
            raise RecognitionError(f"plate models fail their warm-up inference: {exc}") from None

    def read(self, image: Any) -> list[PlateResult]:
        """Every plate in the image, best first. Bad images raise ImageError."""
        frame = as_bgr(image)
        if min(frame.shape[:2]) < MIN_SIDE:
            return []
        with self._lock:
            return self._read(frame)

    def timed_read(self, image: Any) -> tuple[list[PlateResult], float]:
        start = time.perf_counter()
        plates = self.read(image)
        return plates, (time.perf_counter() - start) * 1000.0

    def _read(self, frame: np.ndarray) -> list[PlateResult]:
        first = _View(1.0)
        plates = self._read_view(frame, first)
        if not self.config.rereads or not plates or _sure(plates[0]):
            return plates
        # The best plate is unsure: read the frame again with the reader's input narrower and
        # wider (the detector's boxes are kept). Each width aligns the glyphs differently with
        # the reader's frames, and a glyph lost or misread at one width is often clear at the
        # other; the three reads of each plate vote. Re-reads revise the plates the first read
        # found and add none (a camera's time stamp read as a plate at one width only).
        rereads = [self._read_view(frame, _View(s, first.boxes)) for s in REREAD_STRETCHES]
        return self._select([_agree(plate, rereads) for plate in plates])

    def _read_view(self, frame: np.ndarray, view: _View) -> list[PlateResult]:
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
        sure = [p for p in plates if _sure(p)]
        unsure = [p for p in plates if not _sure(p) and p.confidence >= self.config.min_confidence]

        def explained_by(box: TextBox, found: list[PlateResult]) -> bool:
            return any(_overlap(_clip(box.rect, w, h), p.box) > 0.5 for p in found)

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
        reads = self._read_lines(extra, view.stretch)
        pieces = [_Piece(r, read) for r, read in zip(extra_rects, reads, strict=False)]
        plates += self._plates(pieces)
        if split:
            judged = _judge(LineRead.join(reads[-2:]), 2, self.countries)
            if judged:
                plates.append(_result(judged, (0, 0, w, h), 2, self.config.top_n))
        return self._select(plates)

    def _look(
        self, frame: np.ndarray, side: int, whole: bool, view: _View
    ) -> tuple[list[TextBox], list[PlateResult]]:
        """Detect at ``side``, read every plate-shaped box (and the whole image if it is a crop)."""
        h, w = frame.shape[:2]
        found = view.boxes.get((side, whole))
        if found is None:
            found = self.detector(frame, max_side=side)
            if whole and max(h, w) < MIN_DETECT_SIDE and not any(_plate_like(b) for b in found):
                found = self._detect_with_margin(frame, side)
            view.boxes[(side, whole)] = found
        boxes = [b for b in found if _plate_like(b)]
        boxes.sort(key=lambda b: -b.score * _shape_prior(b))
        boxes = boxes[: self.max_boxes]  # bound the recogniser's work on a frame full of text
        crops = [rectify(frame, b.corners) for b in boxes]
        rects = [_clip(b.rect, w, h) for b in boxes]
        quads = [b.corners for b in boxes]
        if whole:
            crops.append(frame)
            rects.append((0, 0, w, h))
            quads.append(np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32))
        reads = self._read_lines(crops, view.stretch)
        pieces = [_Piece(r, read) for r, read in zip(rects, reads, strict=True)]
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

    def _plates(self, pieces: list[_Piece]) -> list[PlateResult]:
        plates = []
        for box, read, rows in _compose(pieces):
            if not read.text:
                continue
            judged = _judge(read, rows, self.countries)
            if judged:
                plates.append(_result(judged, box, rows, self.config.top_n))
        return plates

    def _region_cells(
        self, frame: np.ndarray, quads: list[np.ndarray], pieces: list[_Piece], stretch: float
    ) -> list[PlateResult]:
        """Plates whose region code sits in its own small frame (UZ, KG): the cell read alone.

        For the reads that best end in such a layout's main glyphs, the cell left of them is
        cut out, read by itself, and each code the layout allows is scored against that read
        and against what the main line saw there, when it saw anything. A read that already
        shows the code's digits clearly in line (printed as large as the rest) needs no cell:
        the line's own plate stands (``_code_in_line``).
        """
        if not self._cell_layouts:
            return []
        jobs: list[tuple[_TailJob, np.ndarray, _Piece]] = []
        for quad, piece in zip(quads, pieces, strict=True):
            jobs.extend((job, quad, piece) for job in _tail_jobs(piece.read, self._cell_layouts))
        jobs.sort(key=lambda j: -j[0].score)
        candidates = []
        h, w = frame.shape[:2]
        for job, quad, piece in jobs[:CELL_JOBS]:
            assert piece.read.positions is not None
            if _code_in_line(job, piece.read):
                continue
            run = _offset(job.layout.pitch_run, job.start)
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
            box = _union([piece.box, _clip(TextBox(corners[-1], 1.0).rect, w, h)])
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
            plate = _cell_plate(
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
            if any(_overlap(plate.box, k.box) > 0.5 for k in kept):
                continue
            kept.append(plate)
        return kept

    def _read_lines(self, crops: list[np.ndarray], stretch: float) -> list[LineRead]:
        if not crops:
            return []
        order = sorted(range(len(crops)), key=lambda i: crops[i].shape[1] / crops[i].shape[0])
        out: list[LineRead | None] = [None] * len(crops)
        for start in range(0, len(order), 8):
            chunk = order[start : start + 8]
            reads = self.reader([crops[i] for i in chunk], stretch=stretch)
            for i, read in zip(chunk, reads, strict=True):
                out[i] = read
        return [r for r in out if r is not None]


CELL_JOBS = 2  # region cells read per frame, at most
IN_LINE_SURE = 0.9  # a code glyph read in line at least this likely needs no cell of its own
REREAD_STRETCHES = (0.9, 1.1)  # reader widths of an unsure frame's re-reads (1.0: the first)


@dataclass(slots=True)
class _View:
    """One read of a frame: the reader's width ``stretch``, and the detector's boxes per
    (side, whole crop). The re-reads share the first read's dict: a side it detected at is
    not detected again; one it did not (the 960 px search, where a re-read finds no plate
    at 512) is detected once and kept for the other re-read."""

    stretch: float
    boxes: dict[tuple[int, bool], list[TextBox]] = field(default_factory=dict)


def _agree(plate: PlateResult, rereads: list[list[PlateResult]]) -> PlateResult:
    """``plate`` and its re-reads (the surest plate overlapping it in each) vote on its text:
    each read for its own text at its confidence and its other candidates at half theirs.
    The winner is given as its surest read gave it; a text that was only ever a runner-up
    does not win (the first read stands)."""
    reads = [plate]
    for view in rereads:
        same = [p for p in view if _overlap(p.box, plate.box) > 0.5]
        if same:
            reads.append(max(same, key=lambda p: p.confidence))
    tally = _tally(reads)
    winner = max(tally, key=lambda text: tally[text])
    supporters = [r for r in reads if r.text == winner]
    return max(supporters, key=lambda r: r.confidence) if supporters else plate


@dataclass(frozen=True, slots=True)
class _TailJob:
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


def _tail_jobs(read: LineRead, layouts: list[region.CellLayout]) -> list[_TailJob]:
    """Every fit of a read's last glyphs to a cell layout's main part. Glyphs left of it
    beyond the cell's own count as dropped (x0.6 each). Nothing is dropped at the right:
    there a trimmed read is the general judge's business, and letting the cell explain the
    left end of a read that also needs its right end cut made European plates into UZ
    trailers (``1B80338`` -> ``01B8033``)."""
    if read.positions is None:
        return []
    jobs: dict[tuple[int, str], _TailJob] = {}
    n = len(read.text)
    for layout in layouts:
        size = len(layout.tail.pattern)
        start = n - size
        if start < 0:
            continue
        fitted = _fit_glyphs(read.dists[start:], layout.tail)
        if fitted is None:
            continue
        text, conf, corrections = fitted
        dropped = max(0, start - layout.format.region_cell)
        prior = layout.format.prior * 0.6**dropped
        job = _TailJob(layout, start, n, text, conf, prior, corrections)
        key = (start, layout.tail.pattern)
        if key not in jobs or jobs[key].score < job.score:
            jobs[key] = job
    return list(jobs.values())


def _code_in_line(job: _TailJob, read: LineRead) -> bool:
    """The read holds, just before the job's main part, as many digits as the cell's code,
    each at least ``IN_LINE_SURE`` likely: whatever is there was printed in line and read
    there. An allowed code is then the line's own plate already; any other (a camera's
    time stamp left of a run of digits) is no region code at all."""
    size = job.layout.format.region_cell
    if job.start < size:
        return False
    code = read.text[job.start - size : job.start]
    return code.isdigit() and float(read.probs[job.start - size : job.start].min()) >= IN_LINE_SURE


def _offset(run: tuple[int, int], start: int) -> tuple[int, int]:
    return run[0] + start, run[1] + start


def _cell_plate(
    job: _TailJob,
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
    return _result(found, box, 1, top_n)


_CELL_FORMATS = [f for f in grammar.FORMATS if f.region_cell]


def _sure(plate: PlateResult) -> bool:
    """A read that needs no second look: a known layout, or a long generic one, read clearly."""
    if plate.country not in (None, "EU") or plate.type != "standard":
        return plate.confidence >= 0.8
    # Generic plates score at most sqrt(GENERIC_PRIOR) ~ 0.63; short ones may be fragments.
    return len(plate.text) >= 7 and plate.confidence >= 0.6


def _shape_prior(box: TextBox) -> float:
    """Plates are 2:1 to 6:1; long lines of text and specks rank lower."""
    _, _, w, h = box.rect
    ratio = w / max(h, 1)
    return 1.0 if 1.5 <= ratio <= 7 else 0.6


def _plate_like(box: TextBox) -> bool:
    _, _, w, h = box.rect
    return h >= MIN_SIDE and w >= MIN_SIDE and 0.6 <= w / h <= 16


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


def _result(
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
    return PlateResult(
        text=interp.text,
        raw=raw,
        country=interp.country,
        type=interp.type,
        rows=rows,
        confidence=min(1.0, confidence),
        box=box,
        candidates=tuple(candidates),
    )


# --- multi-frame vote ----------------------------------------------------------------------


def vote(reads: Iterable[PlateResult]) -> PlateResult | None:
    """Combine the reads of one vehicle track into one: a confidence-weighted vote.

    Each read votes for its text with its confidence and for its other candidates with half
    theirs. The winner's confidence is its supporters' mean confidence, lowered when the
    track disagrees with itself.
    """
    reads = [r for r in reads if r.text]
    if not reads:
        return None
    tally = _tally(reads)
    ranked = sorted(tally.items(), key=lambda kv: (-kv[1], kv[0]))
    winner = ranked[0][0]
    supporters = [r for r in reads if r.text == winner]
    total = sum(tally.values())
    if supporters:
        base = max(supporters, key=lambda r: r.confidence)
        mean = sum(r.confidence for r in supporters) / len(supporters)
    else:  # every read had it only as a runner-up
        base = max(reads, key=lambda r: r.confidence)
        mean = ranked[0][1] / len(reads)
        base = PlateResult(winner, base.raw, base.country, base.type, base.rows, mean, base.box)
    agreement = ranked[0][1] / total if total > 0 else 0.0
    candidates = tuple(
        PlateCandidate(text, min(1.0, score / max(total, 1e-9))) for text, score in ranked[:5]
    )
    return PlateResult(
        text=winner,
        raw=base.raw,
        country=base.country,
        type=base.type,
        rows=base.rows,
        confidence=min(1.0, mean * math.sqrt(agreement)),
        box=base.box,
        candidates=candidates,
    )


def _tally(reads: list[PlateResult]) -> dict[str, float]:
    """Votes per text: each read for its own text at its confidence, for its other candidates
    at half theirs (``vote`` over a track's frames, ``_agree`` over a frame's re-reads)."""
    tally: dict[str, float] = {}
    for read in reads:
        tally[read.text] = tally.get(read.text, 0.0) + read.confidence
        for candidate in read.candidates:
            if candidate.text != read.text:
                tally[candidate.text] = tally.get(candidate.text, 0.0) + 0.5 * candidate.confidence
    return tally
