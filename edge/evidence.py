"""Evidence images: the best frame and the plate crop behind each plate position.

Recognised frames wait in a small in-memory cache under a key that travels with the plate
read through the (pure) correlator. When a crossing ends, the winning read's frame and crop
are written as JPEG under ``<evidence_dir>/<crossing_id>/`` and referenced in the ``end``
event by file name and sha256; the bytes themselves go out on the evidence topic through the
outbox, so the event stays small. An overview (scene) camera's frame taken as the crossing
was announced goes the same way, whole and unmarked. The directory is bounded by size and age.
"""

from __future__ import annotations

import hashlib
import logging
import shutil
import time
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from edge.events import Evidence

log = logging.getLogger(__name__)

JPEG_QUALITY = 85


@dataclass(frozen=True, slots=True)
class EvidenceFile:
    name: str  # "<position>-frame.jpg", "<position>-plate.jpg" or "overview-<camera>.jpg"
    data: bytes
    sha256: str
    kind: str  # "frame" | "plate_crop" | "overview"

    def reference(self) -> Evidence:
        return Evidence(kind=self.kind, file=self.name, sha256=self.sha256)


class FrameCache:
    """The last recognised frames, by key; old ones fall out (bounded memory)."""

    def __init__(self, size: int = 64) -> None:
        self.size = size
        self._frames: OrderedDict[str, tuple[np.ndarray, tuple[int, int, int, int]]] = OrderedDict()
        self._next = 0

    def put(self, image: np.ndarray, box: tuple[int, int, int, int]) -> str:
        self._next += 1
        key = f"f{self._next}"
        self._frames[key] = (image, box)
        while len(self._frames) > self.size:
            self._frames.popitem(last=False)
        return key

    def get(self, key: str) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
        return self._frames.get(key)


def encode(image: np.ndarray, box: tuple[int, int, int, int], position: str) -> list[EvidenceFile]:
    """JPEG of the whole frame with the plate boxed, and of the plate crop."""
    x, y, w, h = box
    frame = image.copy()
    cv2.rectangle(frame, (x, y), (x + w, y + h), (0, 255, 0), 2)
    height, width = image.shape[:2]
    pad = max(4, h // 4)
    crop = image[
        max(0, y - pad) : min(height, y + h + pad), max(0, x - pad) : min(width, x + w + pad)
    ]
    files = []
    for kind, picture in (("frame", frame), ("plate_crop", crop)):
        if picture.size == 0:
            continue
        ok, jpeg = cv2.imencode(".jpg", picture, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
        if not ok:
            continue
        data = jpeg.tobytes()
        suffix = "frame" if kind == "frame" else "plate"
        files.append(
            EvidenceFile(f"{position}-{suffix}.jpg", data, hashlib.sha256(data).hexdigest(), kind)
        )
    return files


def encode_overview(image: np.ndarray, camera: str) -> EvidenceFile | None:
    """JPEG of an overview (scene) camera's frame, as it is: no plate to box."""
    ok, jpeg = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, JPEG_QUALITY])
    if not ok:
        return None
    data = jpeg.tobytes()
    digest = hashlib.sha256(data).hexdigest()
    return EvidenceFile(f"overview-{camera}.jpg", data, digest, "overview")


class EvidenceStore:
    """Files on disk under ``directory/<crossing_id>/``, bounded by bytes and age."""

    def __init__(self, directory: Path, *, max_bytes: int, max_age_s: float) -> None:
        self.directory = directory
        self.max_bytes = max_bytes
        self.max_age_s = max_age_s

    def write(self, crossing_id: str, files: list[EvidenceFile]) -> None:
        folder = self.directory / crossing_id
        folder.mkdir(parents=True, exist_ok=True)
        for f in files:
            (folder / f.name).write_bytes(f.data)
        self.prune()

    def prune(self) -> None:
        """Oldest crossings first, until under the size bound and the retention period."""
        if not self.directory.exists():
            return
        folders = sorted(
            (p for p in self.directory.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime
        )
        sizes = {p: sum(f.stat().st_size for f in p.iterdir()) for p in folders}
        total = sum(sizes.values())
        now = time.time()
        for folder in folders:
            too_old = now - folder.stat().st_mtime > self.max_age_s
            if not too_old and total <= self.max_bytes:
                break
            shutil.rmtree(folder, ignore_errors=True)
            total -= sizes[folder]
            log.debug("evidence of %s removed (retention)", folder.name)
