"""One recogniser per test session: loading and warming the models costs about a second."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.config import RecognitionConfig
from edge.devtools import synth
from edge.recognize.pipeline import PlateRecognizer

DATA = Path(__file__).parent / "data"
SHARED_PLATES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "plates"


@pytest.fixture(scope="session")
def recognizer() -> Iterator[PlateRecognizer]:
    yield PlateRecognizer(RecognitionConfig(), threads=2)


def small_uz_plates(count: int, *, width: int, seed: int) -> list[tuple[str, np.ndarray]]:
    """Clean synthetic one-row UZ plates shrunk to ``width`` px, cut at the plate's own edges:
    as small as the real Uzbek crops (region code 5-6 px tall at 80 px wide)."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(count):
        plate = synth.make_plate(rng, "UZ", 1)
        h, w = plate.image.shape[:2]
        size = (width, round(width * h / w))
        out.append((plate.text, cv2.resize(plate.image, size, interpolation=cv2.INTER_AREA)))
    return out
