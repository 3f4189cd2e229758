"""Which frame a camera reads next: recognition scheduled per vehicle, not per frame.

A camera's frames arrive faster than a busy controller reads them. Reading the newest frame
whenever the recogniser is free loses whole vehicles under load: while one read runs, the few
frames that show a plate come and go. Instead each camera keeps, per vehicle, its few most
promising frames (``ReadScheduler``) and reads them best first, until one read is sure or the
vehicle's frame budget is spent:

- a vehicle is an *episode* of the camera's frames: the frames offered while the correlator has
  one crossing open, and the moving frames just before it (a front camera sees the cab before
  the loop) or just after it (a rear camera sees the trailer leave);
- a vehicle no frame of which was read yet goes first (the oldest first: it ends first), then
  further reads of vehicles that have no sure read, best frame first;
- a frame the motion gate saw nothing move in (an empty road while a presence is open) is read
  only as a vehicle's first attempt, when nothing better waits;
- a frame not read within ``max_latency_s`` of its capture is skipped: its read could no longer
  join its vehicle.

Pure: no clock, no threads, no I/O; the agent (``edge/acquire.py``) passes the times in and
runs the reads. Promise is cheap (``sharpness``, ~1 ms at 1080p).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import cv2
import numpy as np

T = TypeVar("T")
# A waiting frame's place in the reading order: (nothing moved in it, a frame of its vehicle
# that something moved in was read already, when its vehicle was first seen, minus its
# promise); the smallest reads first. (A still frame read as a vehicle's first attempt, the
# empty road a rear camera shows while the cab is on the loop, does not make its vehicle's
# later moving frames wait behind other vehicles' first ones.)
Urgency = tuple[bool, bool, float, float]

EPISODE_GAP_S = 1.0  # moving frames this far apart, with no crossing open: another vehicle
EPISODES_KEPT = 4  # vehicles per camera with frames waiting; an older one's frames are skipped
SHARPNESS_WIDTH = 320  # px: the frame is scaled to this width to measure its sharpness


def sharpness(image: np.ndarray, area: tuple[float, float, float, float] | None = None) -> float:
    """Variance of the Laplacian of the frame's grey image (its ``area``, fractions x, y, w, h)
    scaled to 320 px wide. Rises with focus and with the detail in view: a vehicle near the
    camera, its plate large, scores higher than the same vehicle far away or blurred."""
    h, w = image.shape[:2]
    if area is not None:
        x, y, aw, ah = area
        x0, y0 = int(x * w), int(y * h)
        x1, y1 = max(x0 + 1, int((x + aw) * w)), max(y0 + 1, int((y + ah) * h))
        image = image[y0:y1, x0:x1]
    if image.size == 0:
        return 0.0
    grey = image if image.ndim == 2 else cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)
    height = max(1, round(grey.shape[0] * SHARPNESS_WIDTH / max(grey.shape[1], 1)))
    small = cv2.resize(grey, (SHARPNESS_WIDTH, height), interpolation=cv2.INTER_AREA)
    return float(cv2.Laplacian(small, cv2.CV_32F).var())


@dataclass(frozen=True, slots=True)
class ScheduleSettings:
    """The per-camera limits (``recognition`` in the lane config)."""

    frames_per_vehicle: int = 6  # reads per vehicle and camera, at most
    candidates_per_vehicle: int = 3  # frames kept waiting per vehicle and camera
    sure_confidence: float = 0.9  # a plate read this sure ends the vehicle's reading
    max_latency_s: float = 4.0  # from capture: a frame not read by then is skipped
    follows_leaving: bool = False  # a rear camera: frames after the crossing are still its


@dataclass(slots=True)
class Candidate(Generic[T]):
    """One frame waiting to be read."""

    item: T
    captured: float
    promise: float
    moving: bool
    vehicle: int  # the episode's number


@dataclass(slots=True)
class Skipped(Generic[T]):
    """A frame given up unread, and why: ``sure`` (its vehicle has a sure read), ``budget``
    (its vehicle's frames are spent), ``late`` (waited past ``max_latency_s``), ``outranked``
    (better frames of its vehicle filled the places), ``still`` (nothing moved in it and its
    vehicle was read already)."""

    candidate: Candidate[T]
    reason: str


@dataclass(slots=True)
class _Episode(Generic[T]):
    number: int
    crossing: str | None
    first_captured: float
    last_captured: float
    offered: int = 0
    started: int = 0
    started_moving: int = 0  # of those, frames something moved in
    sure: bool = False
    waiting: list[Candidate[T]] = field(default_factory=list)


class ReadScheduler(Generic[T]):
    """One camera's waiting frames. ``offer`` each frame, ``take`` the next one to read when
    the recogniser is free, ``finished`` when its read is over; every frame given up comes
    back as a ``Skipped`` from whichever call gave it up, exactly once."""

    def __init__(self, settings: ScheduleSettings | None = None) -> None:
        self.settings = settings or ScheduleSettings()
        self._episodes: list[_Episode[T]] = []
        self._numbers = 0

    @property
    def waiting(self) -> int:
        return sum(len(e.waiting) for e in self._episodes)

    def offer(
        self,
        item: T,
        *,
        captured: float,
        promise: float | Callable[[], float],
        moving: bool,
        crossing: str | None,
    ) -> tuple[Candidate[T] | None, list[Skipped[T]]]:
        """A frame captured at ``captured`` while ``crossing`` (the correlator's open crossing,
        None: none) was open. Returns the frame as a candidate if kept, and what was given up.
        ``promise`` may be a function: it is called only for a frame that may be kept (most
        frames of a vehicle read surely are skipped without it)."""
        episode = self._episode_for(captured, crossing)
        episode.offered += 1
        episode.last_captured = max(episode.last_captured, captured)
        candidate = Candidate(item, captured, 0.0, moving, episode.number)
        skipped: list[Skipped[T]] = []
        if episode.sure:
            return None, [Skipped(candidate, "sure")]
        if episode.started >= self.settings.frames_per_vehicle:
            return None, [Skipped(candidate, "budget")]
        if not moving and episode.started:
            return None, [Skipped(candidate, "still")]
        candidate.promise = promise() if callable(promise) else promise
        episode.waiting.append(candidate)
        if len(episode.waiting) > self.settings.candidates_per_vehicle:
            worst = min(episode.waiting, key=_rank_in_vehicle)
            episode.waiting.remove(worst)
            skipped.append(Skipped(worst, "outranked"))
        # Bounded: the oldest vehicles' frames go when too many vehicles have frames waiting.
        busy = [e for e in self._episodes if e.waiting]
        for old in busy[: max(0, len(busy) - EPISODES_KEPT)]:
            skipped += [Skipped(c, "late") for c in old.waiting]
            old.waiting.clear()
        for old in self._episodes[: max(0, len(self._episodes) - 2 * EPISODES_KEPT)]:
            skipped += [Skipped(c, "late") for c in old.waiting]
            self._episodes.remove(old)
        kept = None if any(s.candidate is candidate for s in skipped) else candidate
        return kept, skipped

    def expire(self, now: float) -> list[Skipped[T]]:
        """Give up the frames that waited past ``max_latency_s``."""
        skipped: list[Skipped[T]] = []
        for episode in self._episodes:
            for candidate in list(episode.waiting):
                if now - candidate.captured > self.settings.max_latency_s:
                    episode.waiting.remove(candidate)
                    skipped.append(Skipped(candidate, "late"))
        return skipped

    def peek(self) -> Urgency | None:
        """How urgent this camera's next read is (smaller first); None: nothing waits. Cameras
        sharing one recogniser compare their urgencies to choose which reads next."""
        best = self._best()
        return best[0] if best is not None else None

    def _best(self) -> tuple[Urgency, Candidate[T], _Episode[T]] | None:
        best: tuple[Urgency, Candidate[T], _Episode[T]] | None = None
        for episode in self._episodes:
            for candidate in episode.waiting:
                # Moving frames first; then vehicles not read yet, the oldest first; then the
                # most promising frame.
                key = (
                    not candidate.moving,
                    episode.started_moving > 0,
                    episode.first_captured,
                    -candidate.promise,
                )
                if best is None or key < best[0]:
                    best = (key, candidate, episode)
        return best

    def take(self, now: float) -> tuple[Candidate[T] | None, list[Skipped[T]]]:
        """The frame to read now, if any, and the frames given up meanwhile."""
        skipped = self.expire(now)
        best = self._best()
        if best is None:
            return None, skipped
        _, candidate, episode = best
        episode.waiting.remove(candidate)
        episode.started += 1
        episode.started_moving += candidate.moving
        if episode.started >= self.settings.frames_per_vehicle:
            skipped += [Skipped(c, "budget") for c in episode.waiting]
            episode.waiting.clear()
        else:
            still = [c for c in episode.waiting if not c.moving]
            skipped += [Skipped(c, "still") for c in still]
            episode.waiting = [c for c in episode.waiting if c.moving]
        return candidate, skipped

    def finished(self, candidate: Candidate[T], *, confidence: float | None) -> list[Skipped[T]]:
        """``candidate``'s read is over; ``confidence`` is its surest plate's (None: no plate)."""
        if confidence is None or confidence < self.settings.sure_confidence:
            return []
        for episode in self._episodes:
            if episode.number == candidate.vehicle:
                episode.sure = True
                skipped = [Skipped(c, "sure") for c in episode.waiting]
                episode.waiting.clear()
                return skipped
        return []

    def _episode_for(self, captured: float, crossing: str | None) -> _Episode[T]:
        last = self._episodes[-1] if self._episodes else None
        if last is not None:
            near = captured - last.last_captured <= EPISODE_GAP_S
            if crossing is not None:
                if last.crossing == crossing or (last.crossing is None and near):
                    last.crossing = crossing
                    return last
            elif near and (last.crossing is None or self.settings.follows_leaving):
                # A front camera's frames after a crossing show the next vehicle coming; a
                # rear camera's show the one that is leaving.
                return last
        self._numbers += 1
        episode: _Episode[T] = _Episode(self._numbers, crossing, captured, captured)
        self._episodes.append(episode)
        return episode


def _rank_in_vehicle(candidate: Candidate[T]) -> tuple[bool, float]:
    return candidate.moving, candidate.promise
