"""Stable-weight detection shared by every indicator protocol."""

from __future__ import annotations

from collections import deque


class StabilityFilter:
    """Stable only after ``frames`` consecutive readings within one division of each other.

    A frame flagged as motion (or overload, or invalid) breaks the run, so a weight in
    motion is never reported stable, even when the indicator's own flag lies or is absent.
    """

    def __init__(self, frames: int, division_kg: float) -> None:
        if frames < 1:
            raise ValueError("frames must be >= 1")
        self.frames = frames
        self.division_kg = division_kg
        self._window: deque[float] = deque(maxlen=frames)

    def reset(self) -> None:
        self._window.clear()

    def feed(
        self, weight_kg: float, *, motion: bool = False, division_kg: float | None = None
    ) -> bool:
        if division_kg is not None and division_kg > 0:
            self.division_kg = division_kg
        if motion:
            self._window.clear()
            return False
        self._window.append(weight_kg)
        if len(self._window) < self.frames:
            return False
        # A small epsilon: decimal weights (e.g. 0.1 t) are not exact in binary.
        return max(self._window) - min(self._window) <= self.division_kg * (1 + 1e-9)
