"""The two networks: a text detector (DB) and a CTC line reader folded to plate glyphs."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge.recognize.grammar import CN_PROVINCES, CN_SUFFIXES, DIGIT, LATIN

PLATE_ALPHABET = LATIN + DIGIT + CN_PROVINCES + CN_SUFFIXES
ALPHABET_INDEX = {c: i for i, c in enumerate(PLATE_ALPHABET)}
MIN_DETECT_SIDE = 320  # an image smaller than this (a plate crop) is enlarged to it for detection
# Glyphs the general model may emit for a plate glyph (lower case, full width, Cyrillic twins).
_ALIASES = {
    **{c.lower(): c for c in LATIN},
    **{chr(0xFF21 + i): c for i, c in enumerate(LATIN)},
    **{chr(0xFF10 + i): c for i, c in enumerate(DIGIT)},
    **dict(zip("АВЕКМНОРСТУХавекмнорстух", "ABEKMHOPCTYXABEKMHOPCTYX", strict=True)),
}


def _normalise(image: np.ndarray, height: int, width: int) -> np.ndarray:
    resized = cv2.resize(image, (width, height), interpolation=cv2.INTER_LINEAR)
    return (resized.astype(np.float32) / 127.5 - 1.0).transpose(2, 0, 1)


@dataclass(frozen=True, slots=True)
class TextBox:
    """A detected text region: the four corners (clockwise from top-left) and its score."""

    corners: np.ndarray
    score: float

    @property
    def rect(self) -> tuple[int, int, int, int]:
        x0, y0 = self.corners.min(axis=0)
        x1, y1 = self.corners.max(axis=0)
        return int(x0), int(y0), math.ceil(x1 - x0), math.ceil(y1 - y0)


class TextDetector:
    """PP-OCR DB text detector; returns rotated boxes around lines of text."""

    def __init__(
        self,
        session: Any,
        *,
        threshold: float = 0.3,
        box_threshold: float = 0.5,
        unclip: float = 1.6,
    ) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.threshold = threshold
        self.box_threshold = box_threshold
        self.unclip = unclip

    def probability_map(self, image: np.ndarray, max_side: int) -> tuple[np.ndarray, float, float]:
        h, w = image.shape[:2]
        scale = min(1.0, max_side / max(h, w))
        # Small images are enlarged so a plate crop still gives the network text it can see.
        if max(h, w) * scale < MIN_DETECT_SIDE:
            scale = MIN_DETECT_SIDE / max(h, w)
        nh = max(32, round(h * scale / 32) * 32)
        nw = max(32, round(w * scale / 32) * 32)
        blob = _normalise(image, nh, nw)[None]
        prob = self.session.run(None, {self.input_name: blob})[0][0, 0]
        return prob, w / nw, h / nh

    def __call__(self, image: np.ndarray, *, max_side: int) -> list[TextBox]:
        """Text boxes in ``image``, detected with its long side scaled to ``max_side``."""
        prob, sx, sy = self.probability_map(image, max_side)
        mask = (prob > self.threshold).astype(np.uint8)
        contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
        boxes: list[TextBox] = []
        for contour in contours[:200]:
            if len(contour) < 4:
                continue
            x, y, bw, bh = cv2.boundingRect(contour)
            if min(bw, bh) < 2:
                continue
            region = np.zeros((bh, bw), np.uint8)
            cv2.fillPoly(region, [contour - [x, y]], 1)
            score = float(cv2.mean(prob[y : y + bh, x : x + bw], region)[0])
            if score < self.box_threshold:
                continue
            (cx, cy), (rw, rh), angle = cv2.minAreaRect(contour)
            # DB shrinks text kernels in training; grow the box back by area*ratio/perimeter.
            grow = rw * rh * self.unclip / max(2 * (rw + rh), 1e-6)
            corners = cv2.boxPoints(((cx, cy), (rw + 2 * grow, rh + 2 * grow), angle))
            corners = _order(corners) * [sx, sy]
            boxes.append(TextBox(corners.astype(np.float32), score))
        return boxes


def _order(points: np.ndarray) -> np.ndarray:
    """Top-left, top-right, bottom-right, bottom-left."""
    s = points.sum(axis=1)
    d = np.diff(points, axis=1).ravel()
    return np.array(
        [points[np.argmin(s)], points[np.argmin(d)], points[np.argmax(s)], points[np.argmax(d)]]
    )


def rectify(image: np.ndarray, corners: np.ndarray) -> np.ndarray:
    """Warp a quadrilateral to an upright rectangle."""
    tl, tr, br, bl = corners.astype(np.float32)
    width = int(max(np.linalg.norm(tr - tl), np.linalg.norm(br - bl)))
    height = int(max(np.linalg.norm(bl - tl), np.linalg.norm(br - tr)))
    width, height = max(width, 4), max(height, 4)
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    matrix = cv2.getPerspectiveTransform(np.stack([tl, tr, br, bl]), target)
    return cv2.warpPerspective(image, matrix, (width, height), borderMode=cv2.BORDER_REPLICATE)


@dataclass(frozen=True, slots=True)
class LineRead:
    """One line of glyphs: the text and, per glyph, its distribution over PLATE_ALPHABET."""

    text: str
    dists: np.ndarray  # (len(text), len(PLATE_ALPHABET)), rows sum to 1
    positions: np.ndarray | None = None
    """Each glyph's centre as a fraction of the crop's width (None for joined reads)."""
    row_break: int | None = None
    """Two rows read as one: where in ``text`` the lower row starts (``stacked``)."""

    @property
    def probs(self) -> np.ndarray:
        if not self.text:
            return np.zeros(0, np.float32)
        idx = [ALPHABET_INDEX[c] for c in self.text]
        return self.dists[np.arange(len(idx)), idx]

    @property
    def confidence(self) -> float:
        probs = self.probs
        if probs.size == 0:
            return 0.0
        return float(np.exp(np.log(np.maximum(probs, 1e-6)).mean()))

    @staticmethod
    def join(reads: list[LineRead]) -> LineRead:
        if not reads:
            return LineRead("", np.zeros((0, len(PLATE_ALPHABET)), np.float32))
        return LineRead("".join(r.text for r in reads), np.concatenate([r.dists for r in reads]))

    @staticmethod
    def stacked(top: list[LineRead], bottom: list[LineRead]) -> LineRead:
        """The reads of a plate's upper row, then its lower row's, as one read that knows
        where the lower row starts."""
        joined = LineRead.join([*top, *bottom])
        upper = sum(len(r.text) for r in top)
        return LineRead(joined.text, joined.dists, row_break=upper)


class TextReader:
    """PP-OCR CTC recogniser whose outputs are folded onto the plate alphabet.

    Glyphs that are no plate glyph (dots, dashes, other Chinese characters) count as blank:
    a plate's separators and stickers then vanish instead of being forced into letters.
    """

    height = 48

    def __init__(self, session: Any, *, max_width: int = 256) -> None:
        self.session = session
        self.input_name = session.get_inputs()[0].name
        self.max_width = max_width
        meta = session.get_modelmeta().custom_metadata_map
        characters = ["<blank>", *meta.get("character", "").splitlines(), " "]
        n_out = session.get_outputs()[0].shape[-1]
        if isinstance(n_out, int) and n_out != len(characters):
            characters += ["?"] * (n_out - len(characters))
        index = {c: i + 1 for i, c in enumerate(PLATE_ALPHABET)}
        fold = np.zeros(len(characters), np.int64)  # 0: blank or no plate glyph
        for i, ch in enumerate(characters):
            fold[i] = index.get(_ALIASES.get(ch, ch), 0) if i else 0
        self._classes = len(PLATE_ALPHABET) + 1
        # Only the few model classes that are plate glyphs are gathered; the rest is blank.
        self._columns = np.flatnonzero(fold)
        self._fold = np.zeros((len(self._columns), self._classes), np.float32)
        self._fold[np.arange(len(self._columns)), fold[self._columns]] = 1.0

    def __call__(self, crops: list[np.ndarray], *, stretch: float = 1.0) -> list[LineRead]:
        return [self.decode(frames) for frames in self.frames(crops, stretch=stretch)]

    def frames(self, crops: list[np.ndarray], *, stretch: float = 1.0) -> list[np.ndarray]:
        """Per crop, the CTC frames folded to (blank, PLATE_ALPHABET...): shape (T, 1 + K).

        ``stretch`` scales each crop's width against its height before reading: another
        alignment of the glyphs with the network's frames (the pipeline's re-reads).
        """
        if not crops:
            return []
        widths = [
            min(self.max_width, max(16, math.ceil(stretch * self.height * c.shape[1] / c.shape[0])))
            for c in crops
        ]
        batch_width = max(widths)
        batch = np.zeros((len(crops), 3, self.height, batch_width), np.float32)
        for i, (crop, width) in enumerate(zip(crops, widths, strict=True)):
            batch[i, :, :, :width] = _normalise(crop, self.height, width)
        out = self.session.run(None, {self.input_name: batch})[0]
        return [
            self._fold_frames(out[i, : max(1, int(out.shape[1] * w / batch_width))])
            for i, w in enumerate(widths)
        ]

    def _fold_frames(self, probs: np.ndarray) -> np.ndarray:
        folded = np.ascontiguousarray(probs[:, self._columns]) @ self._fold
        folded[:, 0] = np.maximum(0.0, 1.0 - folded[:, 1:].sum(axis=1))
        return folded

    def decode(self, folded: np.ndarray) -> LineRead:
        """Greedy CTC decoding of folded frames (``frames``) into a line of plate glyphs."""
        best = folded.argmax(axis=1)
        text: list[str] = []
        frames: list[int] = []
        previous = 0
        for t, cls in enumerate(best):
            if cls != 0 and cls != previous:
                text.append(PLATE_ALPHABET[cls - 1])
                frames.append(t)
            elif cls != 0 and cls == previous and folded[t, cls] > folded[frames[-1], cls]:
                frames[-1] = t  # the glyph's surest frame speaks for it
            previous = cls
        glyphs = folded[frames, 1:] if frames else np.zeros((0, self._classes - 1), np.float32)
        glyphs = glyphs / np.maximum(glyphs.sum(axis=1, keepdims=True), 1e-9)
        positions = (np.asarray(frames, np.float32) + 0.5) / len(folded)
        return LineRead("".join(text), glyphs.astype(np.float32), positions)


def ctc_log_likelihood(frames: np.ndarray, label: Sequence[str], *, junk: float = 0.0) -> float:
    """log P(label | frames) under CTC: every alignment of ``label`` summed (forward pass).

    ``frames`` are folded CTC frames, (T, 1 + K), column 0 blank. Scores a short list of
    allowed texts (region codes) against a read without trusting its greedy decoding.
    ``label`` is a text, or a sequence of glyph classes (``["0123456789"] * 2``: any two
    digits; two equal glyphs of one class are then counted without their blank, a slight
    over-count). ``junk`` > 0 lets the label sit among other glyphs (a frame's edge read as
    ``1``): any glyph before or after it is allowed at ``junk`` times its probability.
    """
    blank = frames[:, 0]
    edge = blank + junk * (1.0 - blank)
    classes = [[ALPHABET_INDEX[ch] + 1 for ch in glyphs] for glyphs in label]
    # States: before (blank or junk), glyph, blank, glyph, ..., glyph, after (blank or junk).
    emit = [edge]
    skip = [False]
    for i, columns in enumerate(classes):
        if i:
            emit.append(blank)
            skip.append(False)
        emit.append(frames[:, columns].sum(axis=1))
        # A glyph may follow the previous one directly, unless the two are the same glyph.
        skip.append(i > 0 and (classes[i - 1] != columns or len(columns) > 1))
    emit.append(edge)
    skip.append(False)
    logp = np.log(np.maximum(np.stack(emit, axis=1), 1e-12))
    allow = np.array(skip, bool)
    n = len(emit)
    alpha = np.full(n, -np.inf)
    alpha[0] = logp[0, 0]
    if n > 2:
        alpha[1] = logp[0, 1]
    for t in range(1, len(frames)):
        shifted = np.concatenate(([-np.inf], alpha[:-1]))
        skipped = np.where(allow, np.concatenate(([-np.inf, -np.inf], alpha[:-2])), -np.inf)
        alpha = np.logaddexp(np.logaddexp(alpha, shifted), skipped) + logp[t]
    if not classes:
        return float(alpha[0])
    return float(np.logaddexp(alpha[-1], alpha[-2]))
