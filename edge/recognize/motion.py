"""The cheap gate in front of the networks: has the scene changed?"""

from __future__ import annotations

import cv2
import numpy as np

from edge.recognize.image import as_bgr


class MotionGate:
    """Says whether a frame differs from the scene seen so far: costs ~1 ms at 1080p.

    An empty lane's frames fail the gate and never reach the networks; a lane trigger
    (loop, light curtain) can open the recogniser instead.
    """

    def __init__(self, *, threshold: float = 0.004, learn: float = 0.05) -> None:
        self.threshold = threshold
        self.learn = learn
        self._background: np.ndarray | None = None

    def changed(self, frame: np.ndarray) -> bool:
        small = cv2.resize(as_bgr(frame), (160, 90), interpolation=cv2.INTER_AREA)
        grey = cv2.GaussianBlur(cv2.cvtColor(small, cv2.COLOR_BGR2GRAY), (5, 5), 0)
        grey = grey.astype(np.float32)
        if self._background is None:
            self._background = grey
            return True
        moving = float((np.abs(grey - self._background) > 18).mean())
        cv2.accumulateWeighted(grey, self._background, self.learn)
        return moving > self.threshold
