"""Orange ADR plates in a frame: found by colour and layout, the two numbers read as digits.

The plate is retro-reflective orange (ADR 5.3.2.2.1: 40 x 30 cm, a black border of at most
15 mm), blank or with the hazard number over the UN number, divided by a horizontal black
line. So it is found by colour and checked by its layout, not by text:

1. **Colour.** Pixels of orange hue, strong saturation and some brightness (OpenCV hue 5..22
   of 180, about 10..44 degrees; saturation >= 100; value >= 55, a plate in a dim night
   frame). No morphological closing: even a 3 x 3 one bridges a distant plate's 2 px black
   border and joins the plate to an orange or red cab around it. Every outline counts,
   nested ones too (a plate on an orange cab is an island in a hole of the cab's orange); the
   two halves a numbered plate's divider cuts apart are joined again, also when the camera
   is rolled a few degrees (their boxes then overlap).
2. **Shape.** The convex hull of the orange, landscape (long side within 25 degrees of
   level: plates are mounted upright), aspect 1.1..2.0, filling most of its rotated
   rectangle, at least 900 px and at most a quarter of the frame. Its four corners come from
   the hull itself where it is a clean quadrilateral, so a plate seen at an angle is
   rectified by its true perspective, else from the rotated rectangle.
3. **Border.** Rectified with a margin around it: most of a thin ring around the orange is
   dark *relative to the plate's own orange* (a dim frame darkens both alike).
4. **Layout**, on the rectified plate, in the plate's own brightness: a *numbered* plate has
   a dark line right across its middle and, in each half, dark marks (its digits) covering
   a modest share, none a large solid blob; a *blank* plate is orange (or glare: bright,
   unsaturated) nearly everywhere, and its dark ring must be thin: what lies just beyond it
   is lighter (a vehicle's paint, not the night). Anything else is no ADR plate: an orange
   cab (a windscreen is one big dark blob in its upper half), an orange trailer at night (no
   divider, and the dark around it is the road, not a thin border), a cone, a tarpaulin.

Reading: each half (cut at the divider found) goes through the shipped text reader, whose
CTC frames are decoded **as digits only** (and the hazard number's leading ``X``): the
network's own evidence for ``O`` versus ``0`` decides nothing, the digit with the most
weight wins. A half that decodes to a malformed number is read again binarised (Otsu on the
plate's brightness: glare and dirt flattened). :func:`edge.cargo.adr.read_plate` then checks
the numbers (a hazard number of the ADR form, a UN number 0001..3600); a plate with marks
whose numbers do not check out is *seen but not read*, never blank.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge.cargo.adr import AdrPlate, kemler_ok, read_plate, un_ok

HUE = (5, 22)
MIN_SATURATION = 100
MIN_VALUE = 55  # a plate at night, in a dim frame, is still orange
LOCAL_PX = 7  # the neighbourhood a pixel's brightness is compared with
LOCAL_DIP = 0.65  # below this share of the brightest near it: a border, not orange
MIN_AREA_PX = 900  # smaller: too few pixels for its digits
MAX_FRAME_SHARE = 0.25  # of the frame's area: larger is a vehicle, not a 40 x 30 cm plate
MAX_PLATES = 4  # per frame (front and rear plates of a unit, a trailer's)
MAX_CANDIDATES = 32  # orange outlines of plate size looked at per frame
ASPECT = (1.1, 2.0)
MAX_TILT_DEG = 25.0
MIN_FILL = 0.75
PLATE_W, PLATE_H = 200, 150  # the rectified plate
MARGIN = 0.25  # of the plate's size, rectified around it (border ring and beyond)
RING = 0.05  # of the plate's size: the black border looked for around the orange
DARK = 0.6  # darker than this share of the plate's orange brightness is black
MIN_BORDER_DARK = 0.5  # of the ring
BLANK_BEYOND_LIGHTER = 0.3  # a blank plate: the band beyond the ring this much less dark
DIVIDER_BAND = (0.35, 0.65)  # of the height: where the dividing line is looked for
MIN_DIVIDER = 0.6  # of the width dark on the divider's row
MARKS = (0.03, 0.5)  # dark share of each half of a numbered plate
MAX_BLOB = 0.3  # of a half: the largest dark mark (a digit is far smaller; a windscreen not)
BLANK_MAX_DARK = 0.04
BLANK_MIN_ORANGE = 0.85  # orange or glare
TRIM = 0.06  # of the plate's size trimmed off each side before reading


@dataclass(frozen=True, slots=True)
class OrangeRegion:
    corners: np.ndarray  # 4 x 2, clockwise from top-left
    box: tuple[int, int, int, int]
    fill: float
    numbered: bool = False  # the layout of a numbered plate (divider and two rows of marks)
    divider: float = 0.5  # the dividing line's height, a share of the plate's


def orange_regions(frame: np.ndarray) -> list[OrangeRegion]:
    """ADR-plate-like orange regions in a BGR frame, largest first."""
    if not _any_orange(frame):
        return []  # most frames: nothing plate-coloured of plate size (a fraction of a ms)
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    mask = cv2.inRange(
        hsv, np.array([HUE[0], MIN_SATURATION, MIN_VALUE]), np.array([HUE[1], 255, 255])
    )
    # A blurred or distant border is no longer black but dark orange: still orange by hue.
    # What remains of it is a dip in brightness: pixels much darker than the brightest
    # around them are no plate's orange (the plate's own face is evenly lit).
    value = hsv[..., 2]
    brightest = cv2.dilate(value, np.ones((LOCAL_PX, LOCAL_PX), np.uint8))
    mask[value < cv2.convertScaleAbs(brightest, alpha=LOCAL_DIP)] = 0
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    pieces = [c for c in contours if cv2.contourArea(c) >= MIN_AREA_PX / 4]
    pieces = sorted(pieces, key=cv2.contourArea, reverse=True)[:MAX_CANDIDATES]
    limit = MAX_FRAME_SHARE * frame.shape[0] * frame.shape[1]
    found = []
    for contour in _join_halves(pieces):
        shaped = _shape(contour, limit)
        if shaped is None:
            continue
        corners, fill = shaped
        region = _check(hsv, corners, fill)
        if region is not None:
            found.append(region)
    found.sort(key=lambda r: -r.box[2] * r.box[3])
    distinct: list[OrangeRegion] = []
    for region in found:
        # An outline and the hole around it: one plate (the larger kept). A plate never
        # holds another plate: a plate-like region inside a larger one is the plate on an
        # orange vehicle, and the larger one goes.
        inside = [k for k in distinct if _centre_in(region.box, k.box)]
        if not inside:
            distinct.append(region)
        elif all(_area(region.box) < 0.5 * _area(k.box) for k in inside):
            distinct = [k for k in distinct if k not in inside] + [region]
    return distinct[:MAX_PLATES]


def orange_share(frame: np.ndarray, box: tuple[int, int, int, int]) -> float:
    """The share of plate-orange pixels in a box of a BGR frame (x, y, w, h): a number-plate
    read on an orange face is an ADR plate's digits (a plate the finder did not confirm,
    small or half hidden), not a number plate."""
    x, y, w, h = (max(0, int(v)) for v in box)
    crop = frame[y : y + h, x : x + w]
    if crop.size == 0:
        return 0.0
    hsv = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)
    mask = cv2.inRange(
        hsv, np.array([HUE[0], MIN_SATURATION, MIN_VALUE]), np.array([HUE[1], 255, 255])
    )
    return cv2.countNonZero(mask) / mask.size


def _any_orange(frame: np.ndarray) -> bool:
    """Whether a quarter-size look finds at least half a smallest plate's worth of orange."""
    h, w = frame.shape[:2]
    small = cv2.resize(frame, (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_NEAREST)
    hsv = cv2.cvtColor(small, cv2.COLOR_BGR2HSV)
    mask = cv2.inRange(
        hsv, np.array([HUE[0], MIN_SATURATION, MIN_VALUE]), np.array([HUE[1], 255, 255])
    )
    return cv2.countNonZero(mask) >= MIN_AREA_PX / 16 / 2


def _area(box: tuple[int, int, int, int]) -> int:
    return box[2] * box[3]


def _shape(contour: np.ndarray, limit: float) -> tuple[np.ndarray, float] | None:
    """The plate's corners and fill, when the orange has a plate's shape."""
    # The plate's digits and divider are holes in the orange: its hull is the plate.
    hull = cv2.convexHull(contour)
    area = cv2.contourArea(hull)
    if not MIN_AREA_PX <= area <= limit:
        return None
    (cx, cy), (w, h), angle = cv2.minAreaRect(hull)
    if w < h:
        w, h, angle = h, w, angle + 90
    tilt = (angle + 90) % 180 - 90  # of the long side from level
    if h <= 0 or not ASPECT[0] <= w / h <= ASPECT[1] or abs(tilt) > MAX_TILT_DEG:
        return None
    fill = area / (w * h)
    if fill < MIN_FILL:
        return None
    quad = cv2.approxPolyDP(hull, 0.04 * cv2.arcLength(hull, True), True).reshape(-1, 2)
    if len(quad) == 4 and cv2.isContourConvex(quad) and cv2.contourArea(quad) >= 0.9 * area:
        corners = quad.astype(np.float32)  # the true outline: perspective rectified
    else:
        corners = cv2.boxPoints(((cx, cy), (w, h), angle)).astype(np.float32)
    return _order(corners), float(fill)


def _rectified(image: np.ndarray, corners: np.ndarray, margin: float) -> np.ndarray:
    """The plate rectified to PLATE_W x PLATE_H, with ``margin`` of its size around it."""
    mx, my = round(margin * PLATE_W), round(margin * PLATE_H)
    target = np.array(
        [[mx, my], [mx + PLATE_W, my], [mx + PLATE_W, my + PLATE_H], [mx, my + PLATE_H]],
        np.float32,
    )
    size = (PLATE_W + 2 * mx, PLATE_H + 2 * my)
    matrix = cv2.getPerspectiveTransform(corners, target)
    return cv2.warpPerspective(image, matrix, size, borderMode=cv2.BORDER_REPLICATE)


def _check(hsv: np.ndarray, corners: np.ndarray, fill: float) -> OrangeRegion | None:
    """The region, when a dark border rings it and its inside has a plate's layout."""
    view = _rectified(hsv, corners, MARGIN)
    mx, my = round(MARGIN * PLATE_W), round(MARGIN * PLATE_H)
    plate = view[my : my + PLATE_H, mx : mx + PLATE_W]
    value = plate[..., 2].astype(np.float32)
    orange = (
        (plate[..., 0] >= HUE[0])
        & (plate[..., 0] <= HUE[1])
        & (plate[..., 1] >= MIN_SATURATION)
        & (plate[..., 2] >= MIN_VALUE)
    )
    if orange.mean() < 0.4:
        return None
    level = float(np.median(value[orange]))
    dark_level = DARK * level
    # The black border: a ring just outside the orange; and a band beyond it.
    rx, ry = round(RING * PLATE_W), round(RING * PLATE_H)
    full = view[..., 2].astype(np.float32) < dark_level
    ring = np.zeros(full.shape, bool)
    ring[my - ry : my + PLATE_H + ry, mx - rx : mx + PLATE_W + rx] = True
    ring[my : my + PLATE_H, mx : mx + PLATE_W] = False
    beyond = np.ones(full.shape, bool)
    beyond[my - 2 * ry : my + PLATE_H + 2 * ry, mx - 2 * rx : mx + PLATE_W + 2 * rx] = False
    ring_dark = float(full[ring].mean())
    if ring_dark < MIN_BORDER_DARK:
        return None
    # The inside, in the plate's own brightness.
    tx, ty = round(TRIM * PLATE_W), round(TRIM * PLATE_H)
    dark = value < dark_level
    dark[:ty], dark[-ty:], dark[:, :tx], dark[:, -tx:] = False, False, False, False
    bx, by, bw, bh = cv2.boundingRect(corners.astype(np.int32))
    box = (int(bx), int(by), int(bw), int(bh))
    lo, hi = round(DIVIDER_BAND[0] * PLATE_H), round(DIVIDER_BAND[1] * PLATE_H)
    row_dark = dark[lo:hi, tx:-tx].mean(axis=1)
    divider_row = lo + int(np.argmax(row_dark))
    if float(row_dark.max()) >= MIN_DIVIDER:
        band = max(2, round(0.04 * PLATE_H))
        top = dark[ty : divider_row - band, tx:-tx]
        bottom = dark[divider_row + band : PLATE_H - ty, tx:-tx]
        if _marks_ok(top) and _marks_ok(bottom):
            return OrangeRegion(corners, box, fill, True, divider_row / PLATE_H)
        return None
    inside = (slice(ty, PLATE_H - ty), slice(tx, PLATE_W - tx))
    glare = (plate[..., 1] < MIN_SATURATION) & (value >= 0.8 * level)
    if (
        float(dark[inside].mean()) <= BLANK_MAX_DARK
        and float((orange | glare)[inside].mean()) >= BLANK_MIN_ORANGE
        and float(full[beyond].mean()) <= ring_dark - BLANK_BEYOND_LIGHTER
    ):
        return OrangeRegion(corners, box, fill, False)
    return None


def _marks_ok(half: np.ndarray) -> bool:
    """A half of a numbered plate: its digits, a modest dark share in separate marks."""
    if half.size == 0:
        return False
    share = float(half.mean())
    if not MARKS[0] <= share <= MARKS[1]:
        return False
    count, _labels, stats, _ = cv2.connectedComponentsWithStats(
        half.astype(np.uint8), connectivity=8
    )
    largest = int(np.asarray(stats)[1:, cv2.CC_STAT_AREA].max()) if count > 1 else 0
    return largest <= MAX_BLOB * half.size


def _centre_in(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    cx, cy = inner[0] + inner[2] / 2, inner[1] + inner[3] / 2
    return outer[0] <= cx <= outer[0] + outer[2] and outer[1] <= cy <= outer[1] + outer[3]


def _join_halves(contours: list[np.ndarray]) -> list[np.ndarray]:
    """The dividing line cuts a numbered plate's orange in two: halves of about one width,
    one just above the other, are taken together (each half alone too: the joined outline
    may be refused where the unjoined one is a blank plate)."""
    boxes = [cv2.boundingRect(c) for c in contours]
    out = list(contours)
    for i, (x, y, w, h) in enumerate(boxes):
        for j, (x2, y2, w2, h2) in enumerate(boxes):
            if j == i or y2 + h2 / 2 <= y + h / 2:
                continue
            overlap = min(x + w, x2 + w2) - max(x, x2)
            gap = y2 - (y + h)  # negative: the camera is rolled, the boxes overlap
            if (
                overlap >= 0.7 * max(w, w2)
                and min(w, w2) >= 0.6 * max(w, w2)
                and -0.5 * max(h, h2) <= gap <= 0.4 * max(h, h2)
            ):
                out.append(np.concatenate([contours[i], contours[j]]))
    return out


def _order(points: np.ndarray) -> np.ndarray:
    s, d = points.sum(axis=1), np.diff(points, axis=1).ravel()
    return np.array(
        [points[np.argmin(s)], points[np.argmin(d)], points[np.argmax(s)], points[np.argmax(d)]],
        np.float32,
    )


def halves(frame: np.ndarray, region: OrangeRegion) -> tuple[np.ndarray, np.ndarray]:
    """The plate rectified to 200 x 150 px, its edge trimmed, cut at its dividing line."""
    plate = _rectified(frame, region.corners, 0.0)
    tx, ty = round(TRIM * PLATE_W), round(TRIM * PLATE_H)
    mid, gap = round(region.divider * PLATE_H), max(3, round(0.05 * PLATE_H))
    return plate[ty : mid - gap, tx : PLATE_W - tx], plate[
        mid + gap : PLATE_H - ty, tx : PLATE_W - tx
    ]


def _binarised(crop: np.ndarray) -> np.ndarray:
    """Black marks on white, thresholded on brightness (Otsu): glare and dirt flattened."""
    value = cv2.cvtColor(crop, cv2.COLOR_BGR2HSV)[..., 2]
    _, binary = cv2.threshold(value, 0, 255, cv2.THRESH_BINARY | cv2.THRESH_OTSU)
    return cv2.cvtColor(binary, cv2.COLOR_GRAY2BGR)


class AdrReader:
    """Orange plates of a frame read with the shipped text reader (digits only)."""

    def __init__(self, reader: Any) -> None:
        self.reader = reader

    def read(
        self, frame: np.ndarray, *, position: str, device: str | None = None
    ) -> list[AdrPlate]:
        return [plate for plate, _box in self.read_boxes(frame, position=position, device=device)]

    def read_boxes(
        self, frame: np.ndarray, *, position: str, device: str | None = None
    ) -> list[tuple[AdrPlate, tuple[int, int, int, int]]]:
        """Each plate with its box (x, y, w, h): its digits are no number plate."""
        return self.read_regions(frame, orange_regions(frame), position=position, device=device)

    def read_regions(
        self,
        frame: np.ndarray,
        regions: list[OrangeRegion],
        *,
        position: str,
        device: str | None = None,
    ) -> list[tuple[AdrPlate, tuple[int, int, int, int]]]:
        """The plates of regions :func:`orange_regions` found in ``frame``."""
        plates = []
        for region in regions:
            if not region.numbered:  # no marks on it: a blank plate, nothing to read
                plates.append((AdrPlate(position, device=device, confidence=1.0), region.box))
                continue
            top, bottom = halves(frame, region)
            kemler, k_conf = self._number(top, kemler_ok)
            un, u_conf = self._number(bottom, un_ok)
            confidence = min(k_conf, u_conf)
            plate = read_plate(kemler, un, position=position, device=device, confidence=confidence)
            if plate.blank:  # marks were seen: numbers not read, not a blank plate
                plate = AdrPlate(position, readable=False, device=device, confidence=confidence)
            plates.append((plate, region.box))
        return plates

    def _number(self, crop: np.ndarray, valid: Any) -> tuple[str, float]:
        """A half's number (digits and ``X``), read plain and, if malformed, binarised."""
        best = ("", 0.0)
        for image in (crop, _binarised(crop)):
            frames = self.reader.frames([image])[0]
            text, confidence = decode_digits(frames)
            if valid(text):
                return text, confidence
            if not best[0]:
                best = (text, confidence)
        return best


def decode_digits(frames: np.ndarray) -> tuple[str, float]:
    """Greedy CTC decoding of folded frames (``TextReader.frames``) restricted to the digits
    and ``X``: the weight the network gives a look-alike (``O``, ``I``, ``S``) is not a glyph
    of its own. Returns the text and its confidence (the geometric mean of each glyph's
    probability among those classes and the blank)."""
    from edge.recognize.ocr import ALPHABET_INDEX

    columns = [0] + [ALPHABET_INDEX[c] + 1 for c in "0123456789X"]
    glyphs = "0123456789X"
    restricted = frames[:, columns]
    restricted = restricted / np.maximum(restricted.sum(axis=1, keepdims=True), 1e-9)
    best = restricted.argmax(axis=1)
    text: list[str] = []
    probs: list[float] = []
    previous = 0
    for t, cls in enumerate(best):
        if cls != 0 and cls != previous:
            text.append(glyphs[cls - 1])
            probs.append(float(restricted[t, cls]))
        elif cls != 0 and cls == previous:
            probs[-1] = max(probs[-1], float(restricted[t, cls]))
        previous = cls
    out = "".join(text)
    if "X" in out[1:]:  # X only leads a hazard number
        out = out[0] + out[1:].replace("X", "")
    if not probs:
        return out, 0.0
    return out, float(np.exp(np.log(np.maximum(probs, 1e-6)).mean()))
