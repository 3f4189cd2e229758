"""The pixel work of a camera's capture worker: one small grey picture of each frame.

It is made on the capture thread, never on the event loop, and serves both the frozen-stream
check of the driver and the lane's motion gate (``edge.recognize.motion``): a 1080p frame is
resized once, at capture, instead of twice on the loop.
"""

from __future__ import annotations

from typing import Any

import numpy as np

THUMB_SIZE = (160, 90)  # width, height: 16:9, enough to see a vehicle enter a lane


def thumbnail(cv2: Any, image: np.ndarray) -> np.ndarray:
    """The frame as a 160x90 grey float32 picture, lightly blurred (sensor noise)."""
    small = cv2.resize(image, THUMB_SIZE, interpolation=cv2.INTER_AREA)
    grey = small if small.ndim == 2 else cv2.cvtColor(small, cv2.COLOR_BGR2GRAY)
    return np.asarray(cv2.GaussianBlur(grey, (5, 5), 0), dtype=np.float32)
