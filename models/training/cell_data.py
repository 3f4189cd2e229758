"""Synthetic region-code cells: what the pipeline cuts out left of a UZ or KG plate's main glyphs.

A cut (``region.CELLS`` in ``edge/recognize/region.py``) is 1.6 digit pitches tall and
reaches from 1.95-2.85 pitches left of the first main glyph to 0.35-0.65 pitch before it,
measured on a few blurred pixels (the shipped model was trained when the cuts reached
2.1-2.7 to 0.5 pitches; the jittered windows below cover both): it holds the two code digits,
often clipped on one side, with the cell's frame, a bolt hole or dash, the separator and the
edge of the first main glyph around them, 8-22 px tall. These samples draw that: condensed
sans digits, jittered windows, then the camera's blur, noise, JPEG, lighting. Negatives (no
code: letters, a country band, plate edges, dirt) teach the "none" class that keeps a
European plate's letters from reading as a code.

Pure numpy/OpenCV, seeded: the same seed draws the same samples.
"""

from __future__ import annotations

import string
from functools import cache
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

from edge.recognize.grammar import UZ_REGIONS
from edge.recognize.region import NO_DIGIT, cell_input

HERSHEY = (cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX)
# Sans faces of Debian's fonts-dejavu-core (`apt-get install fonts-dejavu-core`), and Pillow's
# own default face: plates use condensed sans digits, which these approach once condensed.
FONT_DIR = Path("/usr/share/fonts/truetype/dejavu")
TRUETYPE = (
    "DejaVuSans.ttf",
    "DejaVuSans-Bold.ttf",
    "DejaVuSansMono.ttf",
    "DejaVuSansMono-Bold.ttf",
)
UZ_CODES = tuple(sorted(UZ_REGIONS))


@cache
def _truetype(name: str, size: int) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    if name == "default":
        return ImageFont.load_default(size)
    path = FONT_DIR / name
    if not path.is_file():
        raise SystemExit(f"{path} is missing: apt-get install fonts-dejavu-core")
    return ImageFont.truetype(str(path), size)


def _glyphs(rng: np.random.Generator, text: str, height: int, ink: int, paper: int) -> np.ndarray:
    """``text`` in a condensed sans face, ``height`` px tall, on its own paper strip."""
    if rng.random() < 0.6:
        return _truetype_glyphs(rng, text, height, ink, paper)
    font = HERSHEY[int(rng.integers(0, len(HERSHEY)))]
    thickness = int(rng.integers(max(1, height // 9), max(2, height // 5) + 1))
    scale = cv2.getFontScaleFromHeight(font, height, thickness)
    (w, h), _ = cv2.getTextSize(text, font, scale, thickness)
    gap = int(rng.integers(0, max(1, height // 6)))
    strip = np.full(
        (h + 2 * thickness + 4, w + 2 * thickness + gap * len(text) + 4), paper, np.uint8
    )
    x = thickness + 2
    for ch in text:
        (cw, _), _ = cv2.getTextSize(ch, font, scale, thickness)
        cv2.putText(strip, ch, (x, h + thickness + 1), font, scale, ink, thickness, cv2.LINE_AA)
        x += cw + gap
    condense = float(rng.uniform(0.5, 0.9))
    return cv2.resize(strip, (max(2, int(strip.shape[1] * condense)), strip.shape[0]))


def _truetype_glyphs(
    rng: np.random.Generator, text: str, height: int, ink: int, paper: int
) -> np.ndarray:
    faces = (*TRUETYPE, "default")
    font = _truetype(faces[int(rng.integers(0, len(faces)))], int(height * 1.4))
    gap = int(rng.integers(0, max(1, height // 6)))
    pieces = []
    for ch in text:
        left, top, right, bottom = font.getbbox(ch)
        glyph = Image.new("L", (right - left + 2, bottom - top + 2), paper)
        ImageDraw.Draw(glyph).text((1 - left, 1 - top), ch, fill=ink, font=font)
        array = np.asarray(glyph)
        array = cv2.resize(array, (max(2, int(array.shape[1] * height / array.shape[0])), height))
        pieces.append(array)
        pieces.append(np.full((height, gap + 1), paper, np.uint8))
    strip = np.hstack(pieces)
    if rng.random() < 0.5:  # bolder strokes
        strip = cv2.erode(strip, np.ones((1, 2) if rng.random() < 0.5 else (2, 2), np.uint8))
    condense = float(rng.uniform(0.55, 0.95))
    strip = cv2.resize(strip, (max(2, int(strip.shape[1] * condense)), height))
    pad = max(2, height // 12)
    return cv2.copyMakeBorder(strip, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=paper)


def _content(rng: np.random.Generator, positive: bool) -> tuple[str, list[int]]:
    if positive:
        code = (
            UZ_CODES[int(rng.integers(0, len(UZ_CODES)))]
            if rng.random() < 0.5
            else "".join(rng.choice(list(string.digits), 2))
        )
        return code, [int(c) for c in code]
    kind = rng.random()
    if kind < 0.6:
        return "".join(rng.choice(list(string.ascii_uppercase), int(rng.integers(1, 3)))), [
            NO_DIGIT
        ] * 2
    if kind < 0.8:
        return "", [NO_DIGIT, NO_DIGIT]  # blank paper, frame, dirt
    return rng.choice(list(string.ascii_uppercase)) + rng.choice(list(string.digits)), [
        NO_DIGIT
    ] * 2


def sample(rng: np.random.Generator) -> tuple[np.ndarray, list[int]]:
    """One synthetic cut as the classifier sees it, and its two classes (digit or NO_DIGIT)."""
    positive = rng.random() < 0.75
    text, label = _content(rng, positive)
    paper = int(rng.integers(170, 256))
    ink = int(rng.integers(0, 80))
    digit_h = 48
    canvas = np.full((digit_h * 2, digit_h * 4), paper, np.uint8)
    if not positive and rng.random() < 0.3:  # a country band (EU, KZ, KG) where a cell would be
        band_ink = int(rng.integers(40, 140))
        x0 = int(rng.integers(0, digit_h * 2))
        canvas[:, x0 : x0 + int(rng.integers(digit_h // 2, digit_h * 2))] = band_ink
    top = (canvas.shape[0] - digit_h) // 2 + int(rng.integers(-4, 5))
    left = digit_h
    right = left
    if text:
        strip = _glyphs(
            rng, text, digit_h if positive else int(digit_h * rng.uniform(0.9, 1.4)), ink, paper
        )
        sh, sw = strip.shape
        sh, sw = min(sh, canvas.shape[0]), min(sw, canvas.shape[1] - left - 4)
        y0 = max(0, min(canvas.shape[0] - sh, top - (sh - digit_h) // 2))
        canvas[y0 : y0 + sh, left : left + sw] = np.minimum(
            canvas[y0 : y0 + sh, left : left + sw], strip[:sh, :sw]
        )
        right = left + sw
    else:
        right = left + int(digit_h * rng.uniform(0.8, 1.3))
    pitch = max(8, (right - left) / 2 if text else digit_h * 0.55)
    if rng.random() < 0.7:  # the cell's separator right of the code
        x = int(right + pitch * rng.uniform(0.1, 0.45))
        cv2.line(canvas, (x, 0), (x, canvas.shape[0]), ink, int(rng.integers(2, 6)))
    if rng.random() < 0.5:  # the first main glyph's edge beyond it
        x = int(right + pitch * rng.uniform(0.7, 1.1))
        cv2.rectangle(canvas, (x, top - 8), (x + 40, top + digit_h + 8), ink, -1)
    if rng.random() < 0.5:  # the cell's left frame or the plate's edge
        x = int(left - pitch * rng.uniform(0.3, 0.9))
        cv2.line(canvas, (x, 0), (x, canvas.shape[0]), ink, int(rng.integers(2, 6)))
    if rng.random() < 0.3:  # a bolt hole or dash before the code
        x = int(left - pitch * rng.uniform(0.15, 0.4))
        cv2.circle(canvas, (x, top + digit_h // 2), int(rng.integers(2, 6)), ink, -1)
    if rng.random() < 0.3:  # dirt
        mask = np.zeros_like(canvas, np.float32)
        centre = (int(rng.integers(0, canvas.shape[1])), int(rng.integers(0, canvas.shape[0])))
        cv2.circle(mask, centre, int(rng.integers(8, 40)), 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), 8)
        canvas = (canvas * (1 - 0.5 * mask) + 60 * 0.5 * mask).astype(np.uint8)
    # The window the pipeline would cut: clipped or loose on either side, 1.3-1.8 digits tall.
    x0 = left + pitch * rng.uniform(-0.8, 0.5)
    x1 = right + pitch * rng.uniform(-0.3, 0.8)
    if x1 - x0 < pitch:
        x1 = x0 + pitch
    height = digit_h * rng.uniform(1.2, 1.8)
    cy = top + digit_h / 2 + digit_h * rng.uniform(-0.15, 0.15)
    src = np.float32([[x0, cy - height / 2], [x1, cy - height / 2], [x1, cy + height / 2]])
    shear = rng.uniform(-0.12, 0.12) * height
    src[0, 0] += shear
    src[1, 0] += shear
    target_h = int(rng.integers(8, 23))
    target_w = max(4, int(target_h * (x1 - x0) / height + 0.5))
    dst = np.float32([[0, 0], [target_w, 0], [target_w, target_h]])
    small_src = cv2.GaussianBlur(canvas, (0, 0), max(0.5, 0.5 * height / target_h))
    small = cv2.warpAffine(
        small_src,
        cv2.getAffineTransform(src, dst),
        (target_w, target_h),
        flags=cv2.INTER_AREA,
        borderMode=cv2.BORDER_REPLICATE,
    )
    small = small.astype(np.float32)
    if rng.random() < 0.3:
        small = cv2.GaussianBlur(small, (0, 0), float(rng.uniform(0.3, 0.8)))
    span = float(rng.uniform(70, 230))
    lo = float(rng.uniform(0, 255 - span))
    hi = lo + span
    small = lo + small / 255.0 * (hi - lo)
    small += rng.normal(0, rng.uniform(1, 6), small.shape)
    small = np.clip(small, 0, 255).astype(np.uint8)
    if rng.random() < 0.7:
        quality = int(rng.integers(25, 90))
        ok, jpeg = cv2.imencode(".jpg", small, [cv2.IMWRITE_JPEG_QUALITY, quality])
        if ok:
            small = cv2.imdecode(jpeg, cv2.IMREAD_GRAYSCALE)
    return cell_input(small), label
