"""Rendered camera frames: a road, a truck and its plates, drawn with OpenCV.

Plates follow the look of each country's format (simplified but legible): KZ, RU, UZ, KG,
CN and EU, one-row and two-row (trailer). OpenCV's Hershey fonts are ASCII only, so the
CN province character is drawn as a placeholder glyph; the ground truth keeps the full
text and records ``rendered`` (what is actually legible). Deterministic from a seed.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime

import cv2
import numpy as np

FONT = cv2.FONT_HERSHEY_DUPLEX
LATIN = "ABCEHKMOPTXY"  # letters shared by Latin and Cyrillic plates
KZ_LETTERS = "ABCDEFHKLMNOPRSTUVXYZ"


@dataclass(frozen=True, slots=True)
class Plate:
    text: str
    country: str
    rows: int = 1

    @property
    def rendered(self) -> str:
        """What a reader can see: CN province characters are not drawable here."""
        return "".join(ch for ch in self.text if ch.isascii())


def make_plate(country: str, rng: random.Random, *, trailer: bool = False) -> Plate:
    d = lambda n: "".join(str(rng.randrange(10)) for _ in range(n))  # noqa: E731
    letters = lambda pool, n: "".join(rng.choice(pool) for _ in range(n))  # noqa: E731
    if country == "KZ":
        text = f"{d(3)}{letters(KZ_LETTERS, 3)}{rng.choice(['01', '02', '05', '15', '17'])}"
        if trailer:  # 1234 AB 01, in two rows (grammar.FORMATS, KZ trailer)
            text = f"{d(4)}{letters(KZ_LETTERS, 2)}{rng.choice(['01', '02', '05', '15', '17'])}"
    elif country == "RU":
        region = rng.choice(["77", "54", "174", "02", "55"])
        text = (
            f"{letters(LATIN, 2)}{d(4)}{region}"
            if trailer
            else f"{letters(LATIN, 1)}{d(3)}{letters(LATIN, 2)}{region}"
        )
    elif country == "UZ":
        text = f"{rng.choice(['01', '10', '30', '40'])}{letters(LATIN, 1)}{d(3)}{letters(LATIN, 2)}"
    elif country == "KG":
        text = f"{rng.choice(['01', '02', '08'])}{d(3)}{letters(KZ_LETTERS, 3)}"
    elif country == "CN":
        text = f"{rng.choice('新京沪冀')}{rng.choice('ABCDFG')}{d(5)}"
    elif country == "EU":
        text = f"{letters('ABCDEFGHKLMNPRSTWZ', 2)}{d(3)}{letters('ABCDEFGHKLMNPRSTWZ', 2)}"
    else:
        raise ValueError(f"unknown plate country {country!r}")
    return Plate(text, country, rows=2 if trailer else 1)


def _split(plate: Plate) -> list[str]:
    t = plate.rendered
    c = plate.country
    if plate.rows == 2 and c == "CN":
        return [t[0], t[1:]]  # the province and city letter over the five glyphs
    if plate.rows == 2:
        half = (len(t) + 1) // 2
        return [t[:half], t[half:]]
    if c == "KZ":
        return [f"{t[:3]} {t[3:6]} {t[6:]}"]
    if c == "RU":
        return [f"{t[0]} {t[1:4]} {t[4:6]}  {t[6:]}"]
    if c == "UZ":
        return [f"{t[:2]}  {t[2]} {t[3:6]} {t[6:]}"]
    if c == "KG":
        return [f"{t[:2]}  {t[2:5]} {t[5:]}"]
    if c == "CN":
        return [f"  {t[0]} {t[1:]}"]
    return [f"{t[:2]} {t[2:5]} {t[5:]}"]


def render_plate(plate: Plate, *, height: int = 56) -> np.ndarray:
    """A plate image (BGR). One row: about 4.6:1; two rows: about 1.7:1."""
    rows = _split(plate)
    width = int(height * (4.6 if plate.rows == 1 else 1.7))
    h = height if plate.rows == 1 else int(height * 1.6)
    blue, white, black = (160, 60, 10), (245, 245, 245), (20, 20, 20)
    yellow = (20, 200, 245)
    bg, fg = (white, black)
    if plate.country == "CN":  # small vehicles blue, large (two-row, rear) yellow
        bg, fg = (blue, white) if plate.rows == 1 else (yellow, black)
    img = np.full((h, width, 3), bg, np.uint8)
    cv2.rectangle(img, (1, 1), (width - 2, h - 2), fg, 2)
    left = 4
    if plate.country in {"KZ", "UZ", "KG", "EU"}:
        strip = int(height * 0.45)
        color = {"KZ": (190, 160, 0), "UZ": (200, 140, 30), "KG": (30, 30, 200)}.get(
            plate.country, blue
        )
        cv2.rectangle(img, (3, 3), (3 + strip, h - 4), color, -1)
        code = plate.country if plate.country != "EU" else "EU"
        cv2.putText(img, code, (5, h - 8), cv2.FONT_HERSHEY_SIMPLEX, height / 110, white, 1,
                    cv2.LINE_AA)  # fmt: skip
        left = strip + 8
    n = len(rows)
    lefts = [left] * n
    if plate.country == "CN":
        # Placeholder for the province character (not drawable with Hershey fonts).
        s = int(height * 0.55)
        x0 = 10 if n == 1 else int(width * 0.25)
        y0 = (h // n - s) // 2
        cv2.rectangle(img, (x0, y0), (x0 + s, y0 + s), fg, 2)
        cv2.line(img, (x0, y0 + s // 2), (x0 + s, y0 + s // 2), fg, 2)
        cv2.line(img, (x0 + s // 2, y0), (x0 + s // 2, y0 + s), fg, 2)
        if n == 2:
            lefts[0] = x0 + s + 4  # the city letter beside it
    for i, (row, row_left) in enumerate(zip(rows, lefts, strict=True)):
        avail_w = width - row_left - 8
        avail_h = h / n
        scale = 1.0
        (tw, th), _ = cv2.getTextSize(row, FONT, scale, 2)
        scale = min(avail_w / tw, avail_h * 0.7 / th)
        (tw, th), _ = cv2.getTextSize(row, FONT, scale, 2)
        x = row_left + (avail_w - tw) // 2
        y = int(avail_h * i + (avail_h + th) / 2)
        thickness = max(1, int(scale * 2))
        cv2.putText(img, row, (x, y), FONT, scale, fg, thickness, cv2.LINE_AA)
    if plate.country == "RU" and plate.rows == 1:
        x = int(width * 0.74)
        cv2.line(img, (x, 3), (x, h - 4), fg, 2)
    return img


@dataclass
class SceneVehicle:
    plate: Plate | None
    color: tuple[int, int, int]
    position: float
    """0: entering the view (far), 1: leaving (near)."""
    view: str = "front"  # front: cab; rear: the back of the trailer
    adr: tuple[str, str] | None = None  # an orange plate (Kemler, UN) above the number plate


OSD_BAND_PX = 32  # the camera's date/name stamp is drawn in this band at the top


def render_scene(
    vehicle: SceneVehicle | None,
    *,
    now: datetime,
    rng: random.Random,
    size: tuple[int, int] = (960, 540),
    brightness: float = 1.0,
    blur: int = 0,
    angle_deg: float = 0.0,
    label: str = "CAM",
) -> np.ndarray:
    """One frame: road, optional vehicle with its plate, camera OSD with the time."""
    w, h = size
    img: np.ndarray = np.zeros((h, w, 3), np.uint8)  # cv2 hands back its own array types
    for y in range(h):  # sky-to-asphalt gradient
        img[y, :] = (90 + 60 * y // h,) * 3
    cv2.line(img, (w // 2, h // 3), (w // 8, h), (230, 230, 230), 3)
    cv2.line(img, (w // 2, h // 3), (7 * w // 8, h), (230, 230, 230), 3)
    if vehicle is not None:
        p = min(max(vehicle.position, 0.0), 1.0)
        scale = 0.35 + 0.9 * p
        vw, vh = int(w * 0.42 * scale), int(h * 0.62 * scale)
        cx = w // 2
        bottom = int(h * 0.45 + h * 0.6 * p)
        x0, y0 = cx - vw // 2, bottom - vh
        cv2.rectangle(img, (x0, y0), (x0 + vw, bottom), vehicle.color, -1)
        if vehicle.view == "front":
            cv2.rectangle(img, (x0 + vw // 10, y0 + vh // 10), (x0 + 9 * vw // 10, y0 + vh // 2),
                          (70, 50, 40), -1)  # fmt: skip
            for gx in range(x0 + vw // 5, x0 + 4 * vw // 5, max(4, vw // 20)):
                cv2.line(img, (gx, y0 + 6 * vh // 10), (gx, y0 + 8 * vh // 10), (40, 40, 40), 2)
        else:
            cv2.line(img, (cx, y0 + 5), (cx, bottom - 5), (40, 40, 40), 2)
        wheel = max(6, vw // 9)
        for wx in (x0 + wheel, x0 + vw - wheel):
            cv2.circle(img, (wx, bottom), wheel, (25, 25, 25), -1)
        if vehicle.plate is not None:
            plate = render_plate(vehicle.plate, height=max(12, int(44 * scale)))
            ph, pw = plate.shape[:2]
            px, py = cx - pw // 2, bottom - ph - max(4, vh // 14)
            if px >= 0 and px + pw <= w and py >= 0 and py + ph <= h:
                img[py : py + ph, px : px + pw] = plate
            if vehicle.adr is not None:
                from simulators.cargo import draw_adr

                aw = max(24, int(vw * 0.17))
                ax, ay = cx - aw // 2, py - aw * 3 // 4 - max(8, vh // 12)
                if ax >= 0 and ay >= 0:
                    draw_adr(img, ax, ay, aw, vehicle.adr)
    if angle_deg:
        m = cv2.getRotationMatrix2D((w / 2, h / 2), angle_deg, 1.0)
        img = cv2.warpAffine(img, m, (w, h), borderMode=cv2.BORDER_REPLICATE)
    if blur > 0:
        k = blur * 2 + 1
        img = cv2.GaussianBlur(img, (k, k), 0)
    noise = np.frombuffer(rng.randbytes(w * h), np.uint8).reshape(h, w) % 7
    img = cv2.add(img, cv2.cvtColor(noise, cv2.COLOR_GRAY2BGR))
    if brightness != 1.0:
        img = cv2.convertScaleAbs(img, alpha=brightness, beta=0)
    osd = f"{label} {now:%Y-%m-%d %H:%M:%S}.{now.microsecond // 1000:03d}"
    cv2.putText(img, osd, (10, 24), cv2.FONT_HERSHEY_SIMPLEX, 0.6, (255, 255, 255), 1,
                cv2.LINE_AA)  # fmt: skip
    return img
