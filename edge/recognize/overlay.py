"""A camera's burnt-in overlay (date, time, name), learned from what the recogniser reads.

Cameras stamp text into every picture (``FRONT 2026-12-01 23:41:46``); the plate
recogniser reads it as plates (``FRON20612``), and a plate read opens a crossing. The agent
must not depend on a hand-set mask (``plate_area``) to ignore it, so each camera learns
where its static text is, from the reads themselves. Pure: no I/O, no clock; the caller
hands in every frame's reads and the crossing the frame belongs to.

Evidence, for one place in the picture (boxes that overlap by ``MATCH_IOU``):

* a line of text far wider than any plate (over ``LINE_RATIO`` : 1; plates are at most
  about 5 : 1) is no plate wherever it is, from its first sighting;
* read there ``LEARN_SIGHTINGS`` times and one of: ``CLOCK_TEXTS`` different texts in a
  box that does not move (a clock ticking), present through ``EPOCHS`` crossings or idle
  spells (it stayed while the vehicles changed), or a date/time pattern in the raw text.

A vehicle's plate moves through the picture: a text also read at another place is a
plate, so the place it was read at is never learned (and is unlearned if it had been,
e.g. a truck standing in view when the agent started). A learned place that has not been
read in ``FORGET_READS`` frames is forgotten (a parked car that left), and at most
``MAX_REGIONS`` are kept per camera.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field

LINE_RATIO = 10.0
MATCH_IOU = 0.6
LEARN_SIGHTINGS = 3
CLOCK_TEXTS = 3
EPOCHS = 3
FORGET_READS = 200
MAX_REGIONS = 4
MAX_CANDIDATES = 16
RECENT_READS = 64  # reads remembered to tell a travelling text (a plate) from a fixed one
_KEPT = 8  # texts and epochs remembered per place

_DATE = re.compile(
    r"(?:19|20)\d\d[-./]?(?:0[1-9]|1[0-2])[-./]?(?:0[1-9]|[12]\d|3[01])"
    r"|(?:[01]\d|2[0-3]):[0-5]\d(?::[0-5]\d)?"
)

Box = tuple[float, float, float, float]  # x, y, width, height as fractions of the frame


def looks_like_clock(text: str) -> bool:
    """A date (``20261201``, ``2026-12-01``) or a time of day (``23:41:46``) in the text."""
    return _DATE.search(text) is not None


def text_line(box: tuple[int, int, int, int] | Box) -> bool:
    """A box far wider than any plate: a line of text (an overlay, a sign), not a plate."""
    return box[2] >= LINE_RATIO * max(box[3], 1e-9)


def iou(a: Box, b: Box) -> float:
    ix = max(0.0, min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0]))
    iy = max(0.0, min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1]))
    inter = ix * iy
    union = a[2] * a[3] + b[2] * b[3] - inter
    return inter / union if union > 0 else 0.0


@dataclass(frozen=True, slots=True)
class TextRead:
    """One text the recogniser found in a frame, as the learner needs it."""

    box: tuple[int, int, int, int]  # pixels: x, y, width, height
    text: str
    raw: str = ""


@dataclass(slots=True)
class _Place:
    box: Box
    sightings: int = 0
    last_read: int = 0  # frame number of the last sighting
    texts: list[str] = field(default_factory=list)
    epochs: list[str] = field(default_factory=list)
    clock: bool = False
    plate: bool = False  # its text travelled: a vehicle's plate, never learned
    learned: bool = False
    why: str = ""

    def note(self, read: TextRead, box: Box, frame: int, epoch: str) -> None:
        self.sightings += 1
        self.last_read = frame
        # The box drifts by a few pixels with brightness and blur; follow it slowly.
        self.box = tuple(0.8 * a + 0.2 * b for a, b in zip(self.box, box, strict=True))  # type: ignore[assignment]
        if read.text not in self.texts:
            self.texts = [*self.texts, read.text][-_KEPT:]
        if epoch not in self.epochs:
            self.epochs = [*self.epochs, epoch][-_KEPT:]
        self.clock = self.clock or looks_like_clock(read.raw) or looks_like_clock(read.text)

    def evidence(self) -> str:
        """Why this place is an overlay, or '' while the evidence is short."""
        if self.plate:
            return ""
        if self.clock and self.sightings >= 2:
            return "date/time text"
        if self.sightings < LEARN_SIGHTINGS:
            return ""
        if len(self.texts) >= CLOCK_TEXTS:
            return f"{len(self.texts)} texts in one place"
        if len(self.epochs) >= EPOCHS:
            return f"stayed through {len(self.epochs)} crossings/idle spells"
        return ""


@dataclass(frozen=True, slots=True)
class OverlayRegion:
    """A learned overlay place, for diagnostics."""

    box: Box
    sightings: int
    why: str
    texts: tuple[str, ...]

    def as_dict(self) -> dict[str, object]:
        return {
            "box": [round(v, 4) for v in self.box],
            "sightings": self.sightings,
            "why": self.why,
            "texts": list(self.texts),
        }


class OverlayLearner:
    """One camera's overlay places; ``observe`` says, per read, whether it is overlay."""

    def __init__(self) -> None:
        self.frames = 0
        self.ignored = 0
        self._places: list[_Place] = []
        self._recent: deque[tuple[str, Box]] = deque(maxlen=RECENT_READS)
        self._idle = "idle"

    def observe(
        self, reads: Sequence[TextRead], *, width: int, height: int, crossing: str | None
    ) -> list[str]:
        """One frame's reads (every one, whatever its confidence) and the crossing it shows
        (None: the lane is empty). Returns, per read, why it is overlay, or '' for a plate."""
        self.frames += 1
        if crossing is not None:
            self._idle = f"idle after {crossing}"
        epoch = crossing or self._idle
        verdicts = []
        for read in reads:
            box = _fraction(read.box, width, height)
            place = self._place(box)
            travelled = self._travelled(read.text, box)
            if travelled:
                # The same text elsewhere: a vehicle's plate, moving; nowhere it was read is
                # an overlay (a truck that stood in view when the agent started, then left).
                for other in self._places:
                    if other is place or read.text in other.texts:
                        other.plate, other.learned, other.why = True, False, ""
            was_learned = place.learned
            place.note(read, box, self.frames, epoch)
            if not place.learned and (why := place.evidence()):
                place.learned, place.why = True, why
                self._bound_learned(place)
            self._recent.append((read.text, box))
            if text_line(read.box):
                verdict = "a line of text, not a plate"
            elif was_learned and not travelled:
                verdict = f"camera overlay ({place.why})"
            else:
                verdict = ""
            self.ignored += bool(verdict)
            verdicts.append(verdict)
        self._forget()
        return verdicts

    @property
    def tracked(self) -> int:
        """Places remembered, learned or not (bounded)."""
        return len(self._places)

    def regions(self) -> list[OverlayRegion]:
        return [
            OverlayRegion(p.box, p.sightings, p.why, tuple(p.texts))
            for p in self._places
            if p.learned
        ]

    # --- bookkeeping ------------------------------------------------------------------

    def _place(self, box: Box) -> _Place:
        best = max(self._places, key=lambda p: iou(p.box, box), default=None)
        if best is not None and iou(best.box, box) >= MATCH_IOU:
            return best
        place = _Place(box, last_read=self.frames)
        self._places.append(place)
        unlearned = [p for p in self._places if not p.learned]
        if len(unlearned) > MAX_CANDIDATES:
            self._places.remove(min(unlearned, key=lambda p: p.last_read))
        return place

    def _travelled(self, text: str, box: Box) -> bool:
        return any(t == text and iou(b, box) < MATCH_IOU for t, b in self._recent)

    def _bound_learned(self, keep: _Place) -> None:
        learned = [p for p in self._places if p.learned and p is not keep]
        if len(learned) >= MAX_REGIONS:
            self._places.remove(min(learned, key=lambda p: p.last_read))

    def _forget(self) -> None:
        self._places = [p for p in self._places if self.frames - p.last_read <= FORGET_READS]


def _fraction(box: tuple[int, int, int, int], width: int, height: int) -> Box:
    w, h = max(width, 1), max(height, 1)
    return (box[0] / w, box[1] / h, box[2] / w, box[3] / h)
