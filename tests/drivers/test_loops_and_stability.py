"""Pure state machines: loop fault detection and the stable-weight rule."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.laneio.loops import LoopMonitor
from drivers.readings import LoopFault
from drivers.weighbridge.stability import StabilityFilter


def test_loop_normal_vehicle_is_no_fault() -> None:
    m = LoopMonitor(locked_on_s=60, no_hits_s=600)
    states = [(0.0, False), (1.0, True), (4.0, True), (5.0, False), (30.0, False)]
    assert [m.update(s, t) for t, s in states] == [None] * 5
    assert m.hits == 1


def test_loop_chatter_locked_on_and_no_hits() -> None:
    chatter = LoopMonitor(chatter_changes=4)
    faults = [chatter.update(i % 2 == 0, i * 0.1) for i in range(8)]
    assert faults[-1] is LoopFault.CHATTER
    assert chatter.update(False, 5.0) is None  # quiet again: the fault clears

    locked = LoopMonitor(locked_on_s=120)
    assert locked.update(True, 0.0) is None
    assert locked.update(True, 119.0) is None
    assert locked.update(True, 121.0) is LoopFault.LOCKED_ON
    assert locked.update(False, 122.0) is None

    quiet = LoopMonitor(no_hits_s=3600, now=0.0)
    assert quiet.update(False, 10.0) is None
    assert quiet.update(False, 3601.0) is LoopFault.NO_HITS
    quiet.update(True, 3602.0)
    assert quiet.update(False, 3603.0) is None


@settings(max_examples=300, deadline=None)
@given(
    frames=st.lists(st.tuples(st.integers(0, 60_000), st.booleans()), min_size=1, max_size=40),
    n=st.integers(1, 8),
)
def test_stable_only_after_n_quiet_frames_within_one_division(
    frames: list[tuple[int, bool]], n: int
) -> None:
    division = 10.0
    f = StabilityFilter(n, division)
    for i, (weight, motion) in enumerate(frames):
        stable = f.feed(float(weight), motion=motion)
        window = frames[max(0, i - n + 1) : i + 1]
        expected = (
            len(window) == n
            and not any(m for _, m in window)
            and max(w for w, _ in window) - min(w for w, _ in window) <= division
        )
        assert stable == expected
