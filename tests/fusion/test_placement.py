"""Which vehicle a plate read belongs to is a pure decision (edge.fusion.plates.place): the
golden recordings pin it end to end; these pin each answer on its own."""

from __future__ import annotations

from datetime import UTC, datetime

from edge.crossing import CrossingRecord
from edge.events import PlatePosition
from edge.fusion.model import OpenCrossing, PlateObservation
from edge.fusion.plates import Placement, place, vote
from edge.fusion.settings import FusionSettings

SETTINGS = FusionSettings()
NEVER = (float("-inf"), set[str]())


def vehicle(
    started: float, *fronts: tuple[str, float], clear_since: float | None = None
) -> OpenCrossing:
    opened = OpenCrossing(
        record=CrossingRecord.begin(datetime(2026, 1, 1, tzinfo=UTC)),
        started=started,
        clear_since=clear_since,
    )
    for text, confidence in fronts:
        opened.plates[PlatePosition.FRONT].append(front(text, confidence))
    opened.front_since = started if fronts else None
    return opened


def front(text: str, confidence: float = 0.9) -> PlateObservation:
    return PlateObservation("cam-front", PlatePosition.FRONT, text, confidence)


def placed(
    plate: PlateObservation,
    now: float,
    seen: float | None = None,
    *,
    current: OpenCrossing | None = None,
    closing: tuple[OpenCrossing, ...] = (),
    previous: tuple[float, set[str]] = NEVER,
) -> Placement:
    return place(
        plate,
        now,
        seen,
        current=current,
        closing=closing,
        previous=previous,
        ended_at=float("-inf"),
        settings=SETTINGS,
    )


def test_the_previous_vehicles_plate_still_in_view_is_ignored() -> None:
    assert placed(front("01A123BC"), 10.0, previous=(5.0, {"01A123BC"})).where == "parked"
    # Past parked_s it is a vehicle again.
    assert placed(front("01A123BC"), 70.0, previous=(5.0, {"01A123BC"})).where == "join"


def test_a_read_of_a_leaving_vehicle_goes_to_it_not_to_the_one_in_the_lane() -> None:
    leaving = vehicle(0.0, ("01A123BC", 0.9), clear_since=4.0)
    current = vehicle(5.0, ("10B456CD", 0.9))
    result = placed(front("01A123BC"), 6.0, current=current, closing=(leaving,))
    assert result == Placement("late", leaving)


def test_a_front_plate_seen_after_the_lane_went_clear_is_the_next_vehicles() -> None:
    current = vehicle(0.0, ("01A123BC", 0.9), clear_since=4.0)
    assert placed(front("10B456CD"), 5.0, seen=4.5, current=current).where == "coming"
    assert placed(front("01A123BC"), 5.0, seen=3.5, current=current).where == "join"


def test_one_strong_unlike_front_read_is_held_and_a_second_like_it_is_tailgating() -> None:
    current = vehicle(0.0, ("01A123BC", 0.9))
    assert placed(front("10B456CD"), 2.0, current=current).where == "rival"
    assert placed(front("10B456CD"), 0.5, current=current).where == "join"  # too soon
    assert placed(front("01A128BC"), 2.0, current=current).where == "join"  # a misread
    current.rivals.append((2.0, front("10B456CD")))
    result = placed(front("10B456CD"), 3.0, current=current)
    assert result.where == "tailgate" and result.held == ((2.0, front("10B456CD")),)


def test_the_vote_weighs_texts_by_summed_confidence() -> None:
    reads = [front("01A123BC", 0.7), front("01A123BC", 0.6), front("01A128BC", 0.9)]
    plate = vote(reads, PlatePosition.FRONT, top_n=2)
    assert plate.text == "01A123BC"
    assert [c.text for c in plate.candidates] == ["01A123BC", "01A128BC"]
    assert plate.confidence < 0.7  # the best read of the winner, lowered by the disagreement
