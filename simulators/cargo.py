"""Cargo for the scenario engine: containers with ISO 6346 codes, ADR plates, X-ray scans.

Planned from their own random stream (seed ^ CARGO_SEED), so a scenario's vehicles, plates
and times are the same with and without cargo. The ground truth of each vehicle gets a
``cargo`` object: ``containers`` (code, size_type, check_digit_ok, layout), ``adr``
(kemler, un; absent when none), ``xray`` (scan_id, and whether the scanner's plate was
made to disagree).

A fault share of containers is painted with a wrong check digit (the code a reader should
report as read, never as verified). Frames of the ``container`` camera show the side of the
trailer: the box(es) with the code in one row or the vertical layout, the size/type code
under it, in one of two Hershey fonts, with dirt and glare.
"""

from __future__ import annotations

import random
import time
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np
from pydantic import BaseModel, ConfigDict, Field

CARGO_SEED = 0xCA760
OWNERS = ("CSQU", "MSCU", "MAEU", "CMAU", "HLXU", "OOLU", "TGHU", "TCNU", "BICU", "CBHU")
ADR_COMMON = (
    ("33", "1203"),
    ("30", "1202"),
    ("23", "1965"),
    ("80", "1830"),
    ("268", "1005"),
    ("336", "1230"),
    ("50", "1942"),
    ("90", "3082"),
    ("30", "1863"),
    ("886", "1790"),
)
FONTS = (cv2.FONT_HERSHEY_DUPLEX, cv2.FONT_HERSHEY_SIMPLEX)


class CargoSpec(BaseModel):
    """Scenario key ``cargo``: the shares of trucks with each kind of cargo."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    container_share: float = Field(0.7, ge=0, le=1, description="Trucks carrying containers.")
    two_box_share: float = Field(0.4, ge=0, le=1, description="Of those: two 20 ft boxes.")
    bad_check_digit_share: float = Field(0.1, ge=0, le=1, description="Codes painted wrong.")
    vertical_share: float = Field(0.3, ge=0, le=1, description="Codes in the vertical layout.")
    adr_share: float = Field(0.3, ge=0, le=1, description="Trucks with orange plates.")
    xray: bool = Field(True, description="An X-ray portal scans every truck.")
    xray_delay_s: float = Field(3.0, ge=0, description="Export delay after the scan (device s).")
    xray_mismatch_share: float = Field(0.1, ge=0, le=1, description="Scanner's plate wrong.")


def check_digit(first_ten: str) -> int:
    """ISO 6346 Annex A (written here again: simulators never import edge)."""
    values, v = {}, 10
    for c in "ABCDEFGHIJKLMNOPQRSTUVWXYZ":
        if v % 11 == 0:
            v += 1
        values[c] = v
        v += 1
    total = sum((values[c] if c.isalpha() else int(c)) * 2**i for i, c in enumerate(first_ten))
    return total % 11 % 10


@dataclass(frozen=True, slots=True)
class Box:
    code: str
    size_type: str
    check_digit_ok: bool
    vertical: bool
    colour: tuple[int, int, int]
    font: int


@dataclass(slots=True)
class CargoPlan:
    boxes: list[Box] = field(default_factory=list)
    adr: tuple[str, str] | None = None
    scan_id: str | None = None
    scanner_plate_wrong: bool = False

    def truth(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "containers": [
                {
                    "code": b.code,
                    "size_type": b.size_type,
                    "check_digit_ok": b.check_digit_ok,
                    "layout": "vertical" if b.vertical else "row",
                }
                for b in self.boxes
            ],
        }
        if self.adr is not None:
            out["adr"] = {"kemler": self.adr[0], "un": self.adr[1]}
        if self.scan_id is not None:
            out["xray"] = {"scan_id": self.scan_id, "mismatch": self.scanner_plate_wrong}
        return out


def plan_cargo(spec: CargoSpec, index: int, vehicle_class: str, rng: random.Random) -> CargoPlan:
    plan = CargoPlan()
    if vehicle_class not in ("truck", "truck_trailer"):
        return plan
    if rng.random() < spec.container_share:
        two = vehicle_class == "truck_trailer" and rng.random() < spec.two_box_share
        for _ in range(2 if two else 1):
            owner = rng.choice(OWNERS)
            serial = f"{rng.randrange(1_000_000):06d}"
            digit = check_digit(owner + serial)
            ok = rng.random() >= spec.bad_check_digit_share
            if not ok:
                digit = (digit + rng.randint(1, 9)) % 10
            size = "22G1" if two else rng.choice(["42G1", "45G1", "22G1"])
            plan.boxes.append(
                Box(
                    f"{owner}{serial}{digit}",
                    size,
                    ok,
                    rng.random() < spec.vertical_share,
                    rng.choice([(40, 60, 150), (120, 90, 30), (60, 120, 40), (150, 150, 150)]),
                    rng.choice(FONTS),
                )
            )
    if rng.random() < spec.adr_share:
        plan.adr = rng.choice(ADR_COMMON)
    if spec.xray:
        plan.scan_id = f"PORTAL-{index:05d}"
        plan.scanner_plate_wrong = rng.random() < spec.xray_mismatch_share
    return plan


def draw_adr(image: np.ndarray, x: int, y: int, width: int, adr: tuple[str, str]) -> None:
    """An orange plate (40 x 30 cm look) with its black border and divider at (x, y)."""
    height = width * 3 // 4
    border = max(2, width // 25)
    cv2.rectangle(
        image, (x - border, y - border), (x + width + border, y + height + border), (10, 10, 10), -1
    )
    cv2.rectangle(image, (x, y), (x + width, y + height), (0, 120, 255), -1)
    cv2.line(image, (x, y + height // 2), (x + width, y + height // 2), (10, 10, 10), border)
    for text, row in ((adr[0], 0), (adr[1], 1)):
        scale = width / 105
        (tw, th), _ = cv2.getTextSize(text, cv2.FONT_HERSHEY_SIMPLEX, scale, 2)
        tx = x + (width - tw) // 2
        ty = y + row * height // 2 + (height // 2 + th) // 2
        cv2.putText(
            image,
            text,
            (tx, ty),
            cv2.FONT_HERSHEY_SIMPLEX,
            scale,
            (10, 10, 10),
            max(2, width // 40),
        )


def render_side(
    plan: CargoPlan, progress: float, rng: random.Random, size: tuple[int, int]
) -> np.ndarray:
    """The side camera's frame: the trailer passing, its boxes and their codes."""
    w, h = size
    image = np.full((h, w, 3), (110, 110, 110), np.uint8)
    cv2.rectangle(image, (0, int(h * 0.85)), (w, h), (70, 70, 70), -1)  # the road
    if plan.boxes:
        _draw_boxes(image, plan, progress, rng)
    noise = np.frombuffer(rng.randbytes(w * h), np.uint8).reshape(h, w) % 7
    image = np.asarray(cv2.add(image, cv2.cvtColor(noise, cv2.COLOR_GRAY2BGR)), np.uint8)
    # The exposure control's flicker, a level or two per frame, as a real camera's: an empty
    # side view is not a frozen stream (pixel noise alone averages out in a thumbnail).
    image = np.asarray(cv2.convertScaleAbs(image, alpha=1.0, beta=rng.uniform(-2.5, 2.5)), np.uint8)
    cv2.putText(
        image,
        f"CONTAINER {time.time():.3f}",
        (10, 24),
        cv2.FONT_HERSHEY_SIMPLEX,
        0.6,
        (255, 255, 255),
        1,
        cv2.LINE_AA,
    )
    return image


def _draw_boxes(image: np.ndarray, plan: CargoPlan, progress: float, rng: random.Random) -> None:
    h, w = image.shape[:2]
    shift = int((0.5 - progress) * w * 0.3)  # the trailer drives past, slowly in frame
    per = w // len(plan.boxes)
    for i, box in enumerate(plan.boxes):
        x0, x1 = i * per + 8 + shift, (i + 1) * per - 8 + shift
        y0, y1 = int(h * 0.12), int(h * 0.8)
        cv2.rectangle(image, (x0, y0), (x1, y1), box.colour, -1)
        for gx in range(x0 + 6, x1, 14):  # corrugation
            cv2.line(image, (gx, y0), (gx, y1), tuple(max(0, c - 25) for c in box.colour), 2)
        white = (235, 235, 235)
        scale = min(1.2, (x1 - x0) / 420)
        tx, ty = x0 + (x1 - x0) // 8, y0 + int(60 * scale) + 10
        rows = (
            [box.code[:4], f"{box.code[4:10]} {box.code[10]}"]
            if box.vertical
            else [f"{box.code[:4]} {box.code[4:10]} {box.code[10]}"]
        )
        for row in [*rows, box.size_type]:
            cv2.putText(image, row, (tx, ty), box.font, scale * 1.3, white, max(2, int(3 * scale)))
            ty += int(62 * scale)
        for _ in range(3):  # dirt
            cx, cy = rng.randrange(x0, max(x0 + 1, x1)), rng.randrange(y0, y1)
            cv2.circle(image, (cx, cy), rng.randrange(3, 12), (50, 50, 40), -1)
    cv2.rectangle(image, (0, int(h * 0.8)), (w, int(h * 0.85)), (30, 30, 30), -1)  # chassis
    glare = image.copy()
    cv2.ellipse(
        glare, (rng.randrange(w), int(h * 0.3)), (w // 10, h // 14), 0, 0, 360, (255, 255, 255), -1
    )
    image[:] = cv2.addWeighted(glare, 0.25, image, 0.75, 0)
