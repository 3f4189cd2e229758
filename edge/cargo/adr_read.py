"""Orange ADR plates in a frame: colour segmentation, then the two halves read as digits.

The plate is retro-reflective orange (ADR 5.3.2.2.1: 40 x 30 cm, a black border of at most
15 mm, the hazard number over the UN number, divided by a horizontal black line), so it is
found by colour, not by text: the frame in HSV, pixels of orange hue, strong saturation and
brightness (OpenCV hue 5..22 of 180, about 10..44 degrees), closed morphologically, each
blob kept when it is plate-shaped (aspect 1.1..2.2, filling most of its rotated rectangle,
large enough to read) and ringed by the black border (most of a thin ring around it dark:
an orange cab, tarpaulin or cone has no such frame). Each plate is rectified, its border
trimmed, and its top and bottom halves read by the shipped text reader;
:func:`edge.cargo.adr.read_plate` then decides blank / numbered / seen but not read.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import cv2
import numpy as np

from edge.cargo.adr import AdrPlate, read_plate

HUE = (5, 22)
MIN_SATURATION = 100
MIN_VALUE = 55  # a plate at night, in a dim frame, is still orange
MIN_AREA_PX = 900  # smaller: too few pixels for its digits
MAX_PLATES = 4  # per frame (front and rear plates of a unit, a trailer's)
ASPECT = (1.1, 2.2)
MIN_FILL = 0.75
BORDER = 0.08  # of the plate's size trimmed on each side (the black border)
RING = 0.03  # of the orange's size looked at around it for the black border
MAX_BORDER_VALUE = 90  # HSV value: darker is black
MIN_BORDER_DARK = 0.5  # of the ring
DIVIDER = 0.06  # of its height around the middle (the black dividing line)


@dataclass(frozen=True, slots=True)
class OrangeRegion:
    corners: np.ndarray  # 4 x 2, clockwise from top-left
    box: tuple[int, int, int, int]
    fill: float


def orange_regions(frame: np.ndarray) -> list[OrangeRegion]:
    """Plate-shaped orange blobs in a BGR frame, largest first."""
    hsv = cv2.cvtColor(frame, cv2.COLOR_BGR2HSV)
    mask = cv2.inRange(
        hsv, np.array([HUE[0], MIN_SATURATION, MIN_VALUE]), np.array([HUE[1], 255, 255])
    )
    # No morphological closing: even a 3 x 3 one bridges a thin black border (a distant
    # plate's is 2 px) and joins the plate to an orange or red cab around it.
    # Every outline, nested ones too: a plate on an orange or red cab is an island in a hole
    # of the cab's orange. Outlines of holes are refused by the border check below.
    contours, _ = cv2.findContours(mask, cv2.RETR_LIST, cv2.CHAIN_APPROX_SIMPLE)
    contours = _join_halves([c for c in contours if cv2.contourArea(c) >= MIN_AREA_PX / 4])
    found = []
    for contour in contours:
        # The plate's digits and divider are holes in the orange: fill them for the shape.
        hull = cv2.convexHull(contour)
        area = cv2.contourArea(hull)
        if area < MIN_AREA_PX:
            continue
        (cx, cy), (w, h), angle = cv2.minAreaRect(hull)
        if w < h:
            w, h, angle = h, w, angle + 90
        if h <= 0 or not ASPECT[0] <= w / h <= ASPECT[1] or abs(((angle + 45) % 90) - 45) > 20:
            continue
        fill = area / (w * h)
        if fill < MIN_FILL:
            continue
        corners = cv2.boxPoints(((cx, cy), (w, h), angle)).astype(np.float32)
        bx, by, bw, bh = cv2.boundingRect(hull)
        region = OrangeRegion(_order(corners), (bx, by, bw, bh), float(fill))
        if _framed(hsv, region):
            found.append(region)
    found.sort(key=lambda r: -r.box[2] * r.box[3])
    distinct: list[OrangeRegion] = []
    for region in found:  # an outline and the hole around it: one plate
        if not any(_centre_in(region.box, kept.box) for kept in distinct):
            distinct.append(region)
    return distinct[:MAX_PLATES]


def _centre_in(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    cx, cy = inner[0] + inner[2] / 2, inner[1] + inner[3] / 2
    return outer[0] <= cx <= outer[0] + outer[2] and outer[1] <= cy <= outer[1] + outer[3]


def _join_halves(contours: list[np.ndarray]) -> list[np.ndarray]:
    """The dividing line cuts a numbered plate's orange in two: halves of one width, one
    just above the other, are taken together."""
    boxes = [cv2.boundingRect(c) for c in contours]
    used: set[int] = set()
    out = []
    for i, (x, y, w, h) in enumerate(boxes):
        if i in used:
            continue
        for j, (x2, y2, w2, h2) in enumerate(boxes):
            if j == i or j in used or y2 <= y:
                continue
            overlap = min(x + w, x2 + w2) - max(x, x2)
            gap = y2 - (y + h)
            if overlap >= 0.8 * max(w, w2) and 0 <= gap <= 0.4 * max(h, h2):
                used.update((i, j))
                out.append(np.concatenate([contours[i], contours[j]]))
                break
        else:
            out.append(contours[i])
    return out


def _framed(hsv: np.ndarray, region: OrangeRegion) -> bool:
    """Whether a dark border rings the orange (an orange cab or tarpaulin has none)."""
    centre = region.corners.mean(axis=0)
    outer = (centre + (region.corners - centre) * (1 + 2 * RING)).astype(np.float32)
    width, height = 200, 150
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    view = cv2.warpPerspective(hsv, cv2.getPerspectiveTransform(outer, target), (width, height))
    rx, ry = round(RING * width / (1 + 2 * RING)), round(RING * height / (1 + 2 * RING))
    ring = np.ones((height, width), bool)
    ring[ry : height - ry, rx : width - rx] = False
    dark = view[..., 2][ring] < MAX_BORDER_VALUE
    return float(dark.mean()) >= MIN_BORDER_DARK


def _order(points: np.ndarray) -> np.ndarray:
    s, d = points.sum(axis=1), np.diff(points, axis=1).ravel()
    return np.array(
        [points[np.argmin(s)], points[np.argmin(d)], points[np.argmax(s)], points[np.argmax(d)]],
        np.float32,
    )


def halves(frame: np.ndarray, region: OrangeRegion) -> tuple[np.ndarray, np.ndarray]:
    """The plate rectified to 200 x 150 px, border trimmed, cut at its dividing line."""
    width, height = 200, 150
    target = np.array([[0, 0], [width, 0], [width, height], [0, height]], np.float32)
    plate = cv2.warpPerspective(
        frame, cv2.getPerspectiveTransform(region.corners, target), (width, height)
    )
    bx, by = round(BORDER * width), round(BORDER * height)
    mid, gap = height // 2, round(DIVIDER * height)
    return plate[by : mid - gap, bx : width - bx], plate[mid + gap : height - by, bx : width - bx]


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
        plates = []
        for region in orange_regions(frame):
            top, bottom = halves(frame, region)
            reads = self.reader([top, bottom])
            texts = [_digits(r.text) for r in reads]
            confidence = min((r.confidence for r in reads if r.text), default=None)
            plate = read_plate(
                texts[0], texts[1], position=position, device=device, confidence=confidence
            )
            plates.append((plate, region.box))
        return plates


def _digits(text: str) -> str:
    """The reader's glyphs as a number: ``X`` (water-reactive) and digits; O taken as 0."""
    text = text.upper().replace("O", "0")
    return "".join(c for c in text if c.isdigit() or c == "X")
