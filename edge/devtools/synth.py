"""Synthetic plates: the layouts of KZ, RU, UZ, KG, TM, CN and EU plates, one and two rows,
with dirt, blur, glare, night IR and perspective. Seeded: the same seed draws the same plates.

Used for the committed test images (``tests/recognition/make_test_images.py``), the recognition
tests and the benchmarks (``bench/recognition/``); the cell reader's training draws its own
cells (``models/training/cell_data.py``). OpenCV's Hershey fonts draw the glyphs, so nothing
outside the project is needed; CN province glyphs need a CJK font, which OpenCV lacks, so CN
plates are drawn only when a glyph renderer for them is supplied.
"""

from __future__ import annotations

import string
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

from edge.recognize import grammar

WHITE = (245, 245, 245)
BLACK = (20, 20, 20)
BLUE = (160, 60, 10)  # BGR
RED = (40, 40, 190)
GREEN = (60, 140, 40)
FONT = cv2.FONT_HERSHEY_DUPLEX


@dataclass(frozen=True, slots=True)
class SynthPlate:
    image: np.ndarray  # BGR
    text: str
    country: str
    type: str
    rows: int


def _digits(rng: np.random.Generator, n: int) -> str:
    return "".join(rng.choice(list(string.digits), n))


def _letters(rng: np.random.Generator, n: int, alphabet: str = grammar.LATIN) -> str:
    return "".join(rng.choice(list(alphabet), n))


def draw_text(
    canvas: np.ndarray,
    text: str,
    box: tuple[int, int, int, int],
    *,
    color: tuple[int, int, int] = BLACK,
    weight: float = 0.14,
) -> None:
    """Draw text filling ``box`` (x, y, w, h) with plate-like stroke weight, centred."""
    x, y, w, h = box
    if not text or w < 4 or h < 4:
        return
    thickness = max(1, int(h * weight))
    (tw, th), _ = cv2.getTextSize(text, FONT, 1.0, thickness)
    scale = min(w / max(tw, 1), h / max(th, 1)) * 0.92
    thickness = max(1, int(h * weight * min(1.0, scale * th / h + 0.2)))
    (tw, th), _ = cv2.getTextSize(text, FONT, scale, thickness)
    # Hershey glyphs are narrow; stretch horizontally like plate fonts by drawing on a
    # separate layer and resizing it into the box.
    layer: np.ndarray = np.zeros((th + 2 * thickness + 4, tw + 2 * thickness + 4), np.uint8)
    cv2.putText(layer, text, (thickness + 2, th + thickness + 1), FONT, scale, 255, thickness,
                cv2.LINE_AA)  # fmt: skip
    target_w = int(min(w, max(tw * 1.15, w * 0.9)))
    layer = cv2.resize(layer, (target_w, h), interpolation=cv2.INTER_LINEAR)
    x0 = x + (w - target_w) // 2
    alpha = (layer.astype(np.float32) / 255.0)[..., None]
    region = canvas[y : y + h, x0 : x0 + target_w].astype(np.float32)
    canvas[y : y + h, x0 : x0 + target_w] = (
        region * (1 - alpha) + np.array(color, np.float32) * alpha
    ).astype(np.uint8)


def _blank(w: int, h: int, color: tuple[int, int, int] = WHITE) -> np.ndarray:
    plate = np.full((h, w, 3), color, np.uint8)
    cv2.rectangle(plate, (1, 1), (w - 2, h - 2), BLACK, max(1, h // 40) + 1)
    return plate


def _band(plate: np.ndarray, color: tuple[int, int, int], label: str, width: int) -> int:
    """A coloured country band at the left with its code; returns where the text may start."""
    h = plate.shape[0]
    cv2.rectangle(plate, (3, 3), (width, h - 4), color, -1)
    draw_text(plate, label, (5, int(h * 0.62), width - 8, int(h * 0.26)), color=WHITE, weight=0.1)
    return width + 4


def _kz(rng: np.random.Generator, rows: int) -> SynthPlate:
    digits, letters = _digits(rng, 3), _letters(rng, 3)
    region = f"{rng.integers(1, 21):02d}"
    text = digits + letters + region
    if rows == 1:
        plate = _blank(520, 112)
        start = _band(plate, (200, 140, 20), "KZ", 64)
        draw_text(plate, f"{digits} {letters}", (start + 6, 16, 330, 80))
        cv2.line(plate, (432, 6), (432, 106), BLACK, 3)
        draw_text(plate, region, (440, 18, 72, 76))
    else:
        plate = _blank(280, 200)
        start = _band(plate, (200, 140, 20), "KZ", 44)
        draw_text(plate, digits, (start + 40, 14, 150, 80))
        draw_text(plate, f"{letters} {region}", (start + 8, 108, 216, 80))
    return SynthPlate(plate, text, "KZ", "standard", rows)


def _ru(rng: np.random.Generator, rows: int) -> SynthPlate:
    letters = _letters(rng, 3, grammar.RU_LETTERS)
    digits = _digits(rng, 3 if rows == 1 else 4)
    region = f"{rng.integers(1, 100):02d}" if rng.random() < 0.7 else f"1{rng.integers(0, 100):02d}"
    if rows == 1:
        plate = _blank(520, 112)
        draw_text(plate, letters[0], (16, 28, 48, 68))
        draw_text(plate, digits, (66, 14, 170, 84))
        draw_text(plate, letters[1:], (240, 28, 130, 68))
        cv2.line(plate, (384, 6), (384, 106), BLACK, 3)
        draw_text(plate, region, (392, 8, 120, 66))
        draw_text(plate, "RUS", (400, 78, 70, 24), weight=0.1)
        return SynthPlate(plate, letters[0] + digits + letters[1:] + region, "RU", "standard", 1)
    plate = _blank(290, 170)
    draw_text(plate, digits, (24, 10, 240, 80))
    draw_text(plate, letters[:2], (20, 98, 130, 64))
    draw_text(plate, region, (170, 96, 100, 60))
    return SynthPlate(plate, digits + letters[:2] + region, "RU", "motorcycle", 2)


def _uz(rng: np.random.Generator, rows: int) -> SynthPlate:
    region = str(rng.choice(sorted(grammar.UZ_REGIONS)))
    a, digits, bc = _letters(rng, 1), _digits(rng, 3), _letters(rng, 2)
    if rows == 1:
        plate = _blank(520, 112)
        draw_text(plate, region, (10, 18, 70, 76))
        cv2.line(plate, (86, 6), (86, 106), BLACK, 3)
        draw_text(plate, f"{a} {digits} {bc}", (96, 14, 360, 84))
        cv2.rectangle(plate, (470, 18), (508, 44), (200, 160, 40), -1)
        draw_text(plate, "UZ", (468, 70, 44, 26), weight=0.1)
        return SynthPlate(plate, region + a + digits + bc, "UZ", "standard", 1)
    plate = _blank(280, 200)
    draw_text(plate, f"{region} {a}", (30, 14, 220, 80))
    draw_text(plate, f"{digits} {bc}", (20, 108, 240, 80))
    return SynthPlate(plate, region + a + digits + bc, "UZ", "standard", 2)


def _kg(rng: np.random.Generator, rows: int) -> SynthPlate:
    region = f"{rng.integers(1, 10):02d}"
    digits, letters = _digits(rng, 3), _letters(rng, 3)
    if rows == 1:
        plate = _blank(520, 112)
        start = _band(plate, RED, "KG", 64)
        draw_text(plate, region, (start + 4, 18, 70, 76))
        cv2.line(plate, (start + 80, 6), (start + 80, 106), BLACK, 3)
        draw_text(plate, f"{digits} {letters}", (start + 90, 14, 350, 84))
        return SynthPlate(plate, region + digits + letters, "KG", "standard", 1)
    plate = _blank(280, 200)
    draw_text(plate, f"{region} {digits}", (20, 14, 240, 80))
    draw_text(plate, letters, (50, 108, 180, 80))
    return SynthPlate(plate, region + digits + letters, "KG", "standard", 2)


def _tm(rng: np.random.Generator, rows: int) -> SynthPlate:
    region = str(rng.choice(sorted(grammar.TM_REGIONS)))
    series, digits = _letters(rng, 2), _digits(rng, 4)
    if rows == 1:
        plate = _blank(520, 112)
        start = _band(plate, GREEN, "TM", 60)
        draw_text(plate, f"{series} {digits} {region}", (start + 6, 14, 440, 84))
        return SynthPlate(plate, series + digits + region, "TM", "standard", 1)
    plate = _blank(280, 200)
    draw_text(plate, f"{series} {digits}", (16, 14, 248, 80))
    draw_text(plate, region, (80, 108, 120, 80))
    return SynthPlate(plate, series + digits + region, "TM", "standard", 2)


def _eu(rng: np.random.Generator, rows: int) -> SynthPlate:
    code = str(rng.choice(["D", "PL", "LT", "F", "I", "NL"]))
    text = _letters(rng, 2) + _digits(rng, 3) + _letters(rng, 2)
    if rows == 1:
        plate = _blank(520, 112)
        start = _band(plate, BLUE, code, 56)
        draw_text(plate, f"{text[:2]} {text[2:5]} {text[5:]}", (start + 8, 14, 440, 84))
        return SynthPlate(plate, text, "EU", "standard", 1)
    plate = _blank(280, 200)
    start = _band(plate, BLUE, code, 40)
    draw_text(plate, text[:2] + text[2:5], (start + 10, 14, 210, 80))
    draw_text(plate, text[5:], (start + 60, 108, 120, 80))
    return SynthPlate(plate, text, "EU", "standard", 2)


def _cn(rng: np.random.Generator, rows: int, province: Callable[..., None]) -> SynthPlate:
    prov = str(rng.choice(list(grammar.CN_PROVINCES)))
    city = _letters(rng, 1, grammar.CN_LETTERS)
    rest = "".join(rng.choice(list(grammar.CN_LETTERS + grammar.DIGIT * 3), 5))
    plate = np.full((140, 440, 3), (170, 70, 0), np.uint8)
    cv2.rectangle(plate, (6, 6), (433, 133), WHITE, 3)
    province(plate, prov, (20, 24, 64, 92))
    draw_text(plate, city, (92, 24, 60, 92), color=WHITE)
    cv2.circle(plate, (162, 70), 5, WHITE, -1)
    draw_text(plate, rest, (176, 24, 248, 92), color=WHITE)
    return SynthPlate(plate, prov + city + rest, "CN", "standard", 1)


LAYOUTS: dict[str, Callable[[np.random.Generator, int], SynthPlate]] = {
    "KZ": _kz,
    "RU": _ru,
    "UZ": _uz,
    "KG": _kg,
    "TM": _tm,
    "EU": _eu,
}


def make_plate(
    rng: np.random.Generator,
    country: str,
    rows: int = 1,
    *,
    province: Callable[..., None] | None = None,
) -> SynthPlate:
    """A clean plate of ``country`` (KZ, RU, UZ, KG, TM, EU; CN with a province renderer)."""
    if country == "CN":
        if province is None:
            raise ValueError("CN plates need a province glyph renderer (a CJK font)")
        return _cn(rng, rows, province)
    return LAYOUTS[country](rng, rows)


# --- degradations --------------------------------------------------------------------------


def perspective(rng: np.random.Generator, image: np.ndarray, strength: float = 0.08) -> np.ndarray:
    h, w = image.shape[:2]
    pad = int(max(h, w) * strength) + 4
    src = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    jitter = rng.uniform(-strength, strength, (4, 2)) * [w, h]
    dst = (src + jitter + pad).astype(np.float32)
    matrix = cv2.getPerspectiveTransform(src, dst)
    background = tuple(int(v) for v in rng.integers(30, 200, 3))
    return cv2.warpPerspective(image, matrix, (w + 2 * pad, h + 2 * pad), borderValue=background)


def dirt(rng: np.random.Generator, image: np.ndarray, amount: float = 0.3) -> np.ndarray:
    out = image.astype(np.float32)
    h, w = image.shape[:2]
    for _ in range(int(amount * 12)):
        mask: np.ndarray = np.zeros((h, w), np.float32)
        centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
        axes = (
            int(rng.integers(w // 30 + 1, w // 6 + 2)),
            int(rng.integers(h // 20 + 1, h // 4 + 2)),
        )
        cv2.ellipse(mask, centre, axes, float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
        mask = cv2.GaussianBlur(mask, (0, 0), max(1.0, axes[0] / 3))[..., None]
        brown = np.array([40, 60, 80], np.float32)
        out = out * (1 - 0.55 * mask) + brown * 0.55 * mask
    return np.clip(out, 0, 255).astype(np.uint8)


def glare(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    h, w = image.shape[:2]
    mask = np.zeros((h, w), np.float32)
    centre = (int(rng.integers(0, w)), int(rng.integers(0, h)))
    cv2.ellipse(mask, centre, (w // 4, h // 3), float(rng.uniform(0, 180)), 0, 360, 1.0, -1)
    mask = cv2.GaussianBlur(mask, (0, 0), w / 12)[..., None] * float(rng.uniform(0.3, 0.6))
    return np.clip(image * (1 - mask) + 255 * mask, 0, 255).astype(np.uint8)


def night_ir(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    """Infrared night shot: monochrome, retro-reflective plate bright, noisy, soft."""
    grey = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY).astype(np.float32)
    grey = np.clip((grey - 60) * 1.4 + 40, 0, 255)
    grey += rng.normal(0, 10, grey.shape)
    grey = cv2.GaussianBlur(np.clip(grey, 0, 255).astype(np.uint8), (3, 3), 0)
    return cv2.cvtColor(grey, cv2.COLOR_GRAY2BGR)


def blur(rng: np.random.Generator, image: np.ndarray) -> np.ndarray:
    if rng.random() < 0.5:
        k = int(rng.integers(3, 8)) | 1
        kernel = np.zeros((k, k), np.float32)
        kernel[k // 2, :] = 1.0 / k  # horizontal motion
        return cv2.filter2D(image, -1, kernel)
    return cv2.GaussianBlur(image, (0, 0), float(rng.uniform(0.6, 1.6)))


def degrade(rng: np.random.Generator, image: np.ndarray, *, level: float = 0.5) -> np.ndarray:
    """Random mix of perspective, dirt, glare, blur, night IR, JPEG-like noise and scale."""
    out = perspective(rng, image, 0.02 + 0.08 * level)
    if rng.random() < level:
        out = dirt(rng, out, 0.2 + 0.4 * level)
    if rng.random() < level * 0.6:
        out = glare(rng, out)
    if rng.random() < level * 0.5:
        out = night_ir(rng, out)
    if rng.random() < level:
        out = blur(rng, out)
    scale = float(rng.uniform(0.35, 0.8))
    out = cv2.resize(out, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    noise = rng.normal(0, 3 + 6 * level, out.shape)
    return np.clip(out + noise, 0, 255).astype(np.uint8)


def scene(
    rng: np.random.Generator, plates: list[np.ndarray], size: tuple[int, int] = (1280, 720)
) -> tuple[np.ndarray, list[tuple[int, int, int, int]]]:
    """Plates placed on a plain road-and-vehicle background; returns the frame and boxes."""
    w, h = size
    frame = np.zeros((h, w, 3), np.uint8)
    top = np.array(rng.integers(90, 160, 3), np.float32)
    frame[:] = np.linspace(top, top * 0.5, h)[:, None, :].astype(np.uint8)
    boxes = []
    slot = w // max(1, len(plates))
    for i, plate in enumerate(plates):
        ph, pw = plate.shape[:2]
        x = i * slot + int(rng.integers(0, max(1, slot - pw)))
        y = int(rng.integers(h // 3, max(h // 3 + 1, h - ph - 10)))
        body = tuple(int(v) for v in rng.integers(40, 220, 3))
        corner_a = (max(0, x - pw // 2), max(0, y - ph * 2))
        corner_b = (min(w - 1, x + pw + pw // 2), min(h - 1, y + ph + ph // 2))
        cv2.rectangle(frame, corner_a, corner_b, body, -1)
        frame[y : y + ph, x : x + pw] = plate
        boxes.append((x, y, pw, ph))
    return frame, boxes
