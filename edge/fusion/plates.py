"""Plate reads -> vehicles: which open crossing a read belongs to, tailgating, and the one
multi-frame ``vote`` that turns a vehicle's reads into the wire type
:class:`edge.events.PlateRead`."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from edge.events import Candidate, PlatePosition, PlateRead
from edge.fusion.model import OpenCrossing, PlateObservation
from edge.fusion.settings import FusionSettings

STRONG_CONFIDENCE = 0.6  # a read this sure may be a second vehicle's, not a misread

Where = Literal["parked", "late", "coming", "stale", "rival", "tailgate", "join"]


@dataclass(frozen=True, slots=True)
class Placement:
    """Where a read goes.

    ``parked``: the previous vehicle's plate still in view, ignored. ``late``: ``vehicle``, one
    that has left the lane and is settling. ``coming``: the next vehicle's, kept for its
    presence. ``stale``: captured before the vehicle in the lane arrived, ignored. ``rival``:
    unlike the vehicle's own, held. ``tailgate``: a second tractor, confirmed by ``held``, the
    earlier reads like it. ``join``: the vehicle in the lane (or a new one if there is none).
    """

    where: Where
    vehicle: OpenCrossing | None = None
    held: tuple[tuple[float, PlateObservation], ...] = ()


def place(
    plate: PlateObservation,
    now: float,
    seen: float | None,
    *,
    current: OpenCrossing | None,
    closing: Sequence[OpenCrossing],
    previous: tuple[float, set[str]],
    ended_at: float,
    settings: FusionSettings,
) -> Placement:
    """The vehicle a read belongs to; ``seen`` is when its frame was captured, ``previous``
    when the last vehicle ended and its plates, ``ended_at`` when it ended."""
    gone_at, plates = previous
    if plate.text in plates and now - gone_at < settings.parked_s:
        return Placement("parked")  # the last vehicle (queued or parked) still in view
    if current is None or not holds(current, plate.text):
        # The vehicle that just left, read again on its way out (the rear camera still
        # sees it), whatever the loops did meanwhile: its plate, not the next vehicle's.
        for leaving in reversed(closing):
            if holds(leaving, plate.text):
                return Placement("late", leaving)
    if seen is not None and closing and (current is None or seen < current.started):
        last_vehicle = closing[-1]
        if seen >= last_vehicle.started - settings.plate_lead_s and not coming(
            plate, last_vehicle, seen
        ):
            return Placement("late", last_vehicle)
    if current is None:
        return Placement("join")
    if coming(plate, current, seen):
        # A front camera sees vehicles coming: a plate it saw after this vehicle's lane
        # went clear is the next vehicle's, not a tailgater's or this one's.
        return Placement("coming")
    if seen is not None and seen < current.started and seen <= ended_at:
        return Placement("stale")  # captured while the previous vehicle was in the lane
    if rival(current, plate, now, tailgate_min_s=settings.tailgate_min_s):
        held = tuple((t, r) for t, r in current.rivals if similar(r.text, plate.text))
        # One read is no second tractor: a misread of this one's plate is likelier.
        return Placement("tailgate", held=held) if held else Placement("rival")
    return Placement("join")


def add_plate(opened: OpenCrossing, plate: PlateObservation, now: float, **detail: object) -> None:
    """A read joins the vehicle's reads (its vote at ``end``) and its trace."""
    opened.plates[plate.position].append(plate)
    opened.saw.add(plate.camera)
    opened.note(
        now,
        "plate",
        position=plate.position.value,
        text=plate.text,
        confidence=round(plate.confidence, 3),
        camera=plate.camera,
        **detail,
    )


def coming(plate: PlateObservation, opened: OpenCrossing, seen: float | None) -> bool:
    """A front plate seen after ``opened``'s lane went clear: the next vehicle coming."""
    return (
        plate.position == PlatePosition.FRONT
        and seen is not None
        and opened.clear_since is not None
        and seen > opened.clear_since
    )


def holds(opened: OpenCrossing, text: str) -> bool:
    """Whether any camera read ``text`` for this vehicle."""
    return any(p.text == text for reads in opened.plates.values() for p in reads)


def rival(
    opened: OpenCrossing, plate: PlateObservation, now: float, *, tailgate_min_s: float
) -> bool:
    """A strong front read unlike every front read of ``opened``, which has a strong one
    read long enough ago for a second tractor to have come up behind it."""
    fronts = opened.plates.get(PlatePosition.FRONT)
    return (
        plate.position == PlatePosition.FRONT
        and bool(fronts)
        and not any(similar(plate.text, p.text) for p in fronts or [])
        and strong(plate)
        and any(strong(p) for p in opened.plates.get(PlatePosition.FRONT, []))
        and opened.front_since is not None
        and now - opened.front_since >= tailgate_min_s
    )


def strong(plate: PlateObservation) -> bool:
    return plate.confidence >= STRONG_CONFIDENCE


def similar(a: str, b: str) -> bool:
    """Two reads that could be one plate misread (at most 2 edits): never a tailgater."""
    return abs(len(a) - len(b)) <= 2 and edit_distance(a, b) <= 2


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def winner(observations: list[PlateObservation]) -> PlateObservation:
    """The best read of the text that wins the vote (its frame is the evidence)."""
    score: dict[str, float] = defaultdict(float)
    for obs in observations:
        score[obs.text] += obs.confidence
    text = min(score, key=lambda t: (-score[t], t))
    return max((o for o in observations if o.text == text), key=lambda o: o.confidence)


def vote(
    observations: list[PlateObservation], position: PlatePosition, *, top_n: int = 5
) -> PlateRead:
    """Multi-frame vote: texts weighted by summed confidence; the winner's reads give the rest."""
    score: dict[str, float] = defaultdict(float)
    for obs in observations:
        score[obs.text] += obs.confidence
    total = sum(score.values()) or 1.0
    ranked = sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ranked[0][0]
    best = winner(observations)
    agreement = score[text] / total
    confidence = round(min(1.0, best.confidence * (0.5 + 0.5 * agreement)), 4)
    return PlateRead(
        text=text,
        raw=best.raw,
        country=best.country,
        type=best.type,
        rows=best.rows,
        confidence=confidence,
        candidates=[Candidate(text=t, confidence=round(s / total, 4)) for t, s in ranked[:top_n]],
        camera=best.camera,
        position=position,
        country_confidence=best.country_confidence,
        layout=best.layout,
        layout_confidence=best.layout_confidence,
        row_texts=None if best.row_texts is None else list(best.row_texts),
    )
