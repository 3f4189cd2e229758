"""Evidence JPEGs: encoded with their sha256, bounded on disk, evicted before crossings."""

from __future__ import annotations

import hashlib
import os
import time
from pathlib import Path

import cv2
import numpy as np

from edge.evidence import EvidenceStore, FrameCache, encode
from edge.outbox import Outbox
from edge.topics import PRIORITY_EVIDENCE
from tests.unit.test_outbox import add


def frame() -> np.ndarray:
    image = np.full((240, 320, 3), 90, np.uint8)
    cv2.rectangle(image, (100, 150), (220, 180), (255, 255, 255), -1)
    return image


def test_frame_and_crop_are_jpegs_with_their_hash() -> None:
    files = encode(frame(), (100, 150, 120, 30), "front")
    assert [f.name for f in files] == ["front-frame.jpg", "front-plate.jpg"]
    for f in files:
        assert f.data[:2] == b"\xff\xd8" and hashlib.sha256(f.data).hexdigest() == f.sha256
    crop = cv2.imdecode(np.frombuffer(files[1].data, np.uint8), cv2.IMREAD_COLOR)
    assert crop.shape[0] < 60 and crop.shape[1] < 160  # the plate, not the frame


def test_cache_is_bounded() -> None:
    cache = FrameCache(size=3)
    keys = [cache.put(frame(), (0, 0, 1, 1)) for _ in range(5)]
    assert cache.get(keys[0]) is None and cache.get(keys[-1]) is not None


def test_store_removes_oldest_over_size_and_age(tmp_path: Path) -> None:
    files = encode(frame(), (100, 150, 120, 30), "front")
    size = sum(len(f.data) for f in files)
    store = EvidenceStore(tmp_path, max_bytes=3 * size + 1, max_age_s=3600)
    for i in range(6):
        store.write(f"c{i}", files)
        os.utime(tmp_path / f"c{i}", (time.time() - 100 + i, time.time() - 100 + i))
    store.prune()
    kept = sorted(p.name for p in tmp_path.iterdir())
    assert kept == ["c3", "c4", "c5"]  # the newest three fit
    old = EvidenceStore(tmp_path, max_bytes=10**9, max_age_s=10)
    old.prune()
    assert list(tmp_path.iterdir()) == []


def test_outbox_evicts_evidence_before_any_crossing(tmp_path: Path) -> None:
    outbox = Outbox(tmp_path / "o.db", max_rows=10)
    for _ in range(6):
        outbox.add_message(
            kind="evidence", topic="e", payload=b"j" * 10, priority=PRIORITY_EVIDENCE
        )
    add(outbox, 8)
    stats = outbox.stats()
    assert stats.pending_crossings == 8 and stats.pending == 10  # 4 images made room
