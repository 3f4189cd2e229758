"""The per-camera read scheduler (edge/recognize/schedule.py): pure, driven by hand."""

from __future__ import annotations

import random
from datetime import UTC, datetime

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from edge.recognize.schedule import (
    Candidate,
    ReadScheduler,
    ScheduleSettings,
    Skipped,
    sharpness,
)
from simulators.render import SceneVehicle, make_plate, render_scene


def _scheduler(**overrides: object) -> ReadScheduler[str]:
    return ReadScheduler(ScheduleSettings(**overrides))  # type: ignore[arg-type]


def _offer(
    s: ReadScheduler[str],
    name: str,
    t: float,
    *,
    promise: float = 1.0,
    crossing: str | None = "A",
    moving: bool = True,
) -> list[Skipped[str]]:
    _kept, skipped = s.offer(name, captured=t, promise=promise, moving=moving, crossing=crossing)
    return skipped


def _take(s: ReadScheduler[str], now: float) -> str | None:
    candidate, _skipped = s.take(now)
    return candidate.item if candidate is not None else None


def test_while_the_recogniser_is_busy_every_vehicle_gets_its_best_frame_read_first() -> None:
    s = _scheduler(max_latency_s=10.0)
    # Three vehicles pass while one long read runs: nothing is taken meanwhile.
    for crossing, base in (("A", 0.0), ("B", 2.0), ("C", 4.0)):
        for k, promise in enumerate((0.2, 0.9, 0.5, 0.1)):
            _offer(s, f"{crossing}{k}", base + 0.1 * k, promise=promise, crossing=crossing)
    firsts = [_take(s, 4.5) for _ in range(3)]
    assert firsts == ["A1", "B1", "C1"]  # the oldest vehicle first, each its sharpest frame
    assert _take(s, 4.5) == "A2"  # then second reads, best first


def test_a_sure_read_ends_its_vehicles_reading_and_later_frames_are_skipped() -> None:
    s = _scheduler(sure_confidence=0.9)
    for k in range(3):
        _offer(s, f"A{k}", 0.1 * k, promise=1.0 - 0.1 * k)
    candidate, _ = s.take(1.0)
    assert candidate is not None and candidate.item == "A0"
    skipped = s.finished(candidate, confidence=0.95)
    assert sorted((x.candidate.item, x.reason) for x in skipped) == [("A1", "sure"), ("A2", "sure")]
    assert [(x.candidate.item, x.reason) for x in _offer(s, "A9", 0.5)] == [("A9", "sure")]
    assert _take(s, 1.0) is None
    # An unsure read leaves the rest waiting.
    _offer(s, "B0", 2.0, crossing="B")
    _offer(s, "B1", 2.1, crossing="B")
    candidate, _ = s.take(2.2)
    assert candidate is not None and s.finished(candidate, confidence=0.5) == []
    assert _take(s, 2.2) is not None


def test_the_frame_budget_bounds_the_reads_of_one_vehicle() -> None:
    s = _scheduler(frames_per_vehicle=2, candidates_per_vehicle=5)
    for k in range(4):
        _offer(s, f"A{k}", 0.1 * k)
    assert _take(s, 0.5) is not None
    candidate, skipped = s.take(0.5)
    assert candidate is not None
    assert sorted(x.reason for x in skipped) == ["budget", "budget"]
    assert [x.reason for x in _offer(s, "A5", 0.6)] == ["budget"]


def test_a_full_vehicle_keeps_its_most_promising_frames() -> None:
    s = _scheduler(candidates_per_vehicle=2)
    assert _offer(s, "A0", 0.0, promise=0.5) == []
    assert _offer(s, "A1", 0.1, promise=0.9) == []
    (out,) = _offer(s, "A2", 0.2, promise=0.7)
    assert (out.candidate.item, out.reason) == ("A0", "outranked")
    (out,) = _offer(s, "A3", 0.3, promise=0.1)  # the newcomer itself is the least promising
    assert (out.candidate.item, out.reason) == ("A3", "outranked")
    assert s.waiting == 2


def test_a_frame_that_waited_past_max_latency_is_skipped_unread() -> None:
    s = _scheduler(max_latency_s=2.0)
    _offer(s, "A0", 0.0)
    _offer(s, "A1", 1.5)
    candidate, skipped = s.take(2.5)
    assert candidate is not None and candidate.item == "A1"
    assert [(x.candidate.item, x.reason) for x in skipped] == [("A0", "late")]


def test_a_still_frame_is_read_only_as_its_vehicles_first_attempt() -> None:
    s = _scheduler()
    # A presence opened over an empty road (nothing moving), then the vehicle comes in view.
    _offer(s, "road", 0.0, moving=False, promise=5.0)
    _offer(s, "plate", 0.1, moving=True, promise=0.2)
    assert _take(s, 0.2) == "plate"  # a moving frame first, however sharp the still one
    assert _take(s, 0.2) is None  # the still one went: its vehicle was read
    assert [x.reason for x in _offer(s, "road2", 0.3, moving=False)] == ["still"]
    # With nothing else, a still frame is a vehicle's attempt (no vehicle goes unread).
    _offer(s, "B-still", 3.0, moving=False, crossing="B")
    assert _take(s, 3.1) == "B-still"


def test_vehicles_are_told_apart_by_crossing_and_by_gaps() -> None:
    front = _scheduler(frames_per_vehicle=1)
    _offer(front, "cab", 0.0, crossing=None)  # the cab before the loop: the same vehicle
    _offer(front, "cab2", 0.2, crossing="A")
    assert _take(front, 0.3) in {"cab", "cab2"} and _take(front, 0.3) is None
    # After the crossing a front camera sees the next vehicle coming, however soon.
    _offer(front, "next", 0.5, crossing=None)
    assert _take(front, 0.6) == "next"
    rear = _scheduler(frames_per_vehicle=1, follows_leaving=True)
    _offer(rear, "trailer", 0.0, crossing="A")
    assert _take(rear, 0.1) == "trailer"
    # A rear camera's frames just after the crossing still show the vehicle leaving ...
    assert [x.reason for x in _offer(rear, "leaving", 0.5, crossing=None)] == ["budget"]
    # ... and, after a gap, another vehicle.
    assert _offer(rear, "other", 5.0, crossing=None) == []


def test_sharpness_ranks_a_near_plate_above_a_far_one_and_focus_above_blur() -> None:
    rng = random.Random(7)
    plate = make_plate("KZ", rng)

    def frame(position: float, blur: int) -> np.ndarray:
        vehicle = SceneVehicle(plate, (40, 90, 160), position, "front")
        return render_scene(vehicle, now=datetime(2026, 1, 1, tzinfo=UTC), rng=rng, blur=blur)

    area = (0.0, 0.08, 1.0, 0.92)
    assert sharpness(frame(1.0, 0), area) > sharpness(frame(0.2, 0), area)
    assert sharpness(frame(0.8, 0), area) > sharpness(frame(0.8, 2), area)
    assert sharpness(np.zeros((0, 0, 3), np.uint8)) == 0.0
    assert sharpness(np.full((8, 8), 128, np.uint8)) == 0.0


_ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("offer"),
            st.floats(0, 1),
            st.sampled_from([None, "A", "B", "C", "D", "E", "F", "G", "H", "I", "J"]),
            st.booleans(),
            st.floats(0, 3),
        ),
        st.tuples(st.just("take"), st.floats(0, 3)),
        st.tuples(st.just("finish"), st.floats(0, 1)),
    ),
    max_size=80,
)


@settings(max_examples=200, deadline=None)
@given(_ops, st.booleans())
def test_every_frame_is_read_skipped_or_waiting_exactly_once(
    ops: list[tuple[object, ...]], follows_leaving: bool
) -> None:
    s = _scheduler(
        frames_per_vehicle=3,
        candidates_per_vehicle=2,
        max_latency_s=2.0,
        follows_leaving=follows_leaving,
    )
    t = 0.0
    offered: list[str] = []
    read: list[str] = []
    skipped: list[str] = []
    in_flight: list[Candidate[str]] = []
    for op in ops:
        if op[0] == "offer":
            _, promise, crossing, moving, step = op
            t += float(step)  # type: ignore[arg-type]
            name = f"f{len(offered)}"
            offered.append(name)
            _kept, out = s.offer(
                name,
                captured=t,
                promise=float(promise),  # type: ignore[arg-type]
                moving=bool(moving),
                crossing=crossing,  # type: ignore[arg-type]
            )
            skipped += [x.candidate.item for x in out]
        elif op[0] == "take":
            t += float(op[1])  # type: ignore[arg-type]
            candidate, out = s.take(t)
            skipped += [x.candidate.item for x in out]
            if candidate is not None:
                assert t - candidate.captured <= 2.0  # never a frame past max_latency_s
                read.append(candidate.item)
                in_flight.append(candidate)
        elif in_flight:
            out = s.finished(in_flight.pop(0), confidence=float(op[1]))  # type: ignore[arg-type]
            skipped += [x.candidate.item for x in out]
        assert s.waiting <= 2 * 8  # bounded whatever comes
    accounted = read + skipped
    assert len(accounted) == len(set(accounted))  # nothing given up or read twice
    assert len(accounted) + s.waiting == len(offered)


def test_frames_of_a_vehicle_forgotten_for_newer_ones_come_back_as_skipped() -> None:
    s = _scheduler(max_latency_s=100.0)
    _offer(s, "still", 0.0, crossing="A", moving=False)  # waits: moving frames go first
    skipped: list[Skipped[str]] = []
    for k in range(1, 10):  # nine more vehicles, each read at once
        skipped += _offer(s, f"v{k}", float(k), crossing=f"V{k}")
        assert _take(s, float(k)) == f"v{k}"
    assert [(x.candidate.item, x.reason) for x in skipped] == [("still", "late")]
    assert s.waiting == 0


def test_a_still_first_attempt_does_not_make_its_vehicle_wait_behind_others() -> None:
    """Cameras sharing the recogniser compare urgencies: a rear camera whose only read of the
    leaving vehicle was the empty road goes before the front camera's first read of the next
    one (the leaving one ends first)."""
    front = _scheduler(max_latency_s=100.0)
    rear = _scheduler(max_latency_s=100.0, follows_leaving=True)
    _offer(rear, "A-road", 0.0, crossing="A", moving=False)
    assert _take(rear, 0.1) == "A-road"  # nothing else waited: the road was A's first attempt
    _offer(front, "B-cab", 0.5, crossing=None)  # the next vehicle coming
    _offer(rear, "A-trailer", 1.0, crossing="A")  # A's trailer comes into the rear view
    front_next, rear_next = front.peek(), rear.peek()
    assert front_next is not None and rear_next is not None and rear_next < front_next
