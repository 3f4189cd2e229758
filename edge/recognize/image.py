"""Image input: any decoded picture as 8-bit BGR, or a clear ImageError."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np

from edge.recognize.models import ImageError

MAX_PIXELS = 50_000_000  # beyond this an image is refused rather than risk memory


def as_bgr(image: Any) -> np.ndarray:
    """Any decoded picture as 8-bit BGR; raises ImageError for what is no picture."""
    if not isinstance(image, np.ndarray):
        raise ImageError(f"expected a numpy image, got {type(image).__name__}")
    if image.size == 0:
        raise ImageError("the image is empty")
    if image.ndim == 3 and image.shape[2] == 1:
        image = image[:, :, 0]
    if image.ndim not in (2, 3) or (image.ndim == 3 and image.shape[2] not in (3, 4)):
        raise ImageError(f"not an image: shape {image.shape}")
    if image.shape[0] * image.shape[1] > MAX_PIXELS:
        raise ImageError(f"image too large: {image.shape[1]}x{image.shape[0]} pixels")
    if image.dtype != np.uint8:
        if image.dtype == np.bool_ or not np.issubdtype(image.dtype, np.number):
            raise ImageError(f"unsupported pixel type {image.dtype}")
        data = np.nan_to_num(image.astype(np.float32))
        top = float(data.max()) if data.size else 0.0
        scale = 255.0 if top <= 1.0 else (255.0 / 65535.0 if top > 255 else 1.0)
        image = np.clip(data * scale, 0, 255).astype(np.uint8)
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.shape[2] == 4:
        return cv2.cvtColor(image, cv2.COLOR_BGRA2BGR)
    return np.ascontiguousarray(image)


def load_image(path: str | Path) -> np.ndarray:
    """Decode an image file; ImageError when it is missing, unreadable or no image."""
    path = Path(path)
    try:
        data = np.fromfile(str(path), dtype=np.uint8)
    except OSError as exc:
        raise ImageError(f"{path}: cannot read: {exc.strerror or exc}") from None
    if data.size == 0:
        raise ImageError(f"{path}: empty file")
    image = cv2.imdecode(data, cv2.IMREAD_UNCHANGED)
    if image is None:
        raise ImageError(f"{path}: not a decodable image")
    return as_bgr(image)
