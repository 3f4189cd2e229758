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
MIN_SATURATION = 110
MIN_VALUE = 90
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
    # The black dividing line cuts the orange in two: closed over with a tall kernel (the
    # line is about 5 % of the plate's height: up to 25 px bridges a plate 500 px high).
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((25, 3), np.uint8))
    mask = cv2.morphologyEx(mask, cv2.MORPH_CLOSE, np.ones((5, 5), np.uint8))
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
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
        region = OrangeRegion(_order(corners), cv2.boundingRect(hull), float(fill))
        if _framed(hsv, region):
            found.append(region)
    found.sort(key=lambda r: -r.box[2] * r.box[3])
    return found[:MAX_PLATES]


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
