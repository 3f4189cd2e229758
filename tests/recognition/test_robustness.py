"""Bad pictures give an empty result or a clear ImageError, never a crash."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.recognize.image import as_bgr, load_image
from edge.recognize.models import ImageError
from edge.recognize.motion import MotionGate
from edge.recognize.pipeline import PlateRecognizer


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((0, 0, 3), np.uint8),
        np.zeros((10, 0), np.uint8),
        np.zeros((5, 5, 5), np.uint8),
        np.zeros((4, 4, 4, 4), np.uint8),
        "not an image",
        None,
        np.array([["a", "b"]]),
    ],
    ids=["empty", "zero-width", "five-channels", "4d", "string", "none", "text-array"],
)
def test_no_picture_is_an_image_error(recognizer: PlateRecognizer, image: object) -> None:
    with pytest.raises(ImageError):
        recognizer.read(image)


@pytest.mark.parametrize(
    "image",
    [
        np.zeros((1, 1, 3), np.uint8),
        np.zeros((3, 500, 3), np.uint8),
        np.full((480, 640, 3), 255, np.uint8),
        np.zeros((1080, 1920, 3), np.uint8),
        np.random.default_rng(1).integers(0, 255, (360, 640), dtype=np.uint8),
        np.random.default_rng(2).random((120, 160, 3)).astype(np.float32),
        np.random.default_rng(3).integers(0, 65535, (100, 200), dtype=np.uint16),
        np.full((100, 200, 4), 128, np.uint8),
        np.full((100, 200, 1), 128, np.uint8),
    ],
    ids=["1px", "3px-tall", "white", "black-1080p", "grey-noise", "float", "uint16", "bgra", "hw1"],
)
def test_empty_or_odd_frames_give_no_plate(recognizer: PlateRecognizer, image: np.ndarray) -> None:
    plates = recognizer.read(image)
    assert isinstance(plates, list)
    for plate in plates:  # noise may look like glyphs; anything found must still be well formed
        assert 0 <= plate.confidence <= 1


def test_huge_image_is_refused_quickly(recognizer: PlateRecognizer) -> None:
    huge = np.broadcast_to(np.zeros((1, 1, 3), np.uint8), (9000, 9000, 3))
    with pytest.raises(ImageError, match="too large"):
        recognizer.read(huge)


def test_large_image_is_read_at_bounded_cost(recognizer: PlateRecognizer) -> None:
    frame = np.full((4000, 6000, 3), 200, np.uint8)
    assert recognizer.read(frame) == []


def test_corrupt_files(tmp_path: Path) -> None:
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.png").write_text("hello")
    good = np.full((40, 120, 3), 255, np.uint8)
    ok, data = cv2.imencode(".jpg", good)
    assert ok
    (tmp_path / "cut.jpg").write_bytes(data.tobytes()[:50])
    for name in ("empty.jpg", "text.png", "cut.jpg", "missing.png"):
        with pytest.raises(ImageError):
            load_image(tmp_path / name)
    with pytest.raises(ImageError):
        load_image(tmp_path)  # a directory


def test_grey_image_is_converted() -> None:
    grey = np.full((20, 30), 7, np.uint8)
    assert as_bgr(grey).shape == (20, 30, 3)


def test_motion_gate_opens_on_change_only() -> None:
    gate = MotionGate()
    empty = np.full((1080, 1920, 3), 90, np.uint8)
    assert gate.changed(empty)  # first frame: nothing known yet
    assert not gate.changed(empty)
    assert not gate.changed(empty + 2)  # sensor noise and slow light changes
    car = empty.copy()
    car[500:900, 600:1400] = 220
    assert gate.changed(car)
