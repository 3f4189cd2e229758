"""The overlay learner (edge/recognize/overlay.py): which reads are a camera's stamped text."""

from __future__ import annotations

from edge.recognize.overlay import (
    FORGET_READS,
    MAX_REGIONS,
    OverlayLearner,
    TextRead,
    looks_like_clock,
    text_line,
)

W, H = 960, 540
STAMP = (60, 9, 150, 18)  # a short stamp (8:1, not a "line"): learned by evidence alone


def frame(learner: OverlayLearner, *reads: TextRead, crossing: str | None = None) -> list[str]:
    return learner.observe(list(reads), width=W, height=H, crossing=crossing)


def moving_plate(text: str, step: int) -> TextRead:
    """A vehicle's plate: it comes nearer, its box moves down and grows."""
    return TextRead((400 - step * 4, 200 + step * 30, 150 + step * 8, 32 + step), text)


def test_a_ticking_stamp_is_learned_and_ignored_then_a_plate_still_passes() -> None:
    learner = OverlayLearner()
    texts = ["FRON20", "FRON206", "FRON204", "FRON205", "FRON20"]
    verdicts = [frame(learner, TextRead(STAMP, t))[0] for t in texts]
    # Three sightings with three different texts in one fixed box: a clock.
    assert verdicts[:3] == ["", "", ""]
    assert all(v.startswith("camera overlay") for v in verdicts[3:])
    (region,) = learner.regions()
    assert "texts in one place" in region.why
    assert abs(region.box[1] - 9 / H) < 0.01
    # A vehicle's plate elsewhere in the same frames is never touched.
    out = frame(learner, TextRead(STAMP, "FRON206"), moving_plate("905GXB11", 3))
    assert out[0].startswith("camera overlay") and out[1] == ""


def test_a_box_that_drifts_a_few_pixels_is_the_same_place() -> None:
    learner = OverlayLearner()
    for i, t in enumerate(["A1", "B2", "C3", "D4"]):
        frame(
            learner, TextRead((60 + i % 2 * 3, 9 - i % 2 * 2, 150 + i % 2 * 4, 18 + i % 2 * 4), t)
        )
    assert len(learner.regions()) == 1


def test_a_constant_name_is_learned_once_it_outlived_crossings() -> None:
    learner = OverlayLearner()
    name = TextRead(STAMP, "GATE3")
    assert frame(learner, name) == [""]
    assert frame(learner, name, crossing="c1") == [""]
    assert not learner.regions()  # 2 sightings, one text, two epochs: not yet
    assert frame(learner, name, crossing="c2") == [""]  # third epoch: learned now
    assert learner.regions()[0].why.startswith("stayed through 3")
    assert frame(learner, name, crossing="c2")[0].startswith("camera overlay")


def test_one_crossing_of_a_standing_truck_is_no_overlay() -> None:
    """A truck stands at the barrier: its plate in one fixed box, frame after frame."""
    learner = OverlayLearner()
    plate = TextRead((400, 380, 157, 33), "A123BC77")
    for _ in range(50):
        assert frame(learner, plate, crossing="c1") == [""]
    assert not learner.regions()


def test_a_plate_that_came_into_view_is_never_learned_even_read_noisily() -> None:
    learner = OverlayLearner()
    for step in range(4):
        frame(learner, moving_plate("A123BC77", step), crossing="c1")
    stopped = (420, 400, 160, 34)
    for text in ["A123BC77", "A123BC7", "A1238C77", "A123BC77", "4123BC77"] * 4:
        assert frame(learner, TextRead(stopped, text), crossing="c1") == [""]
    assert not learner.regions()


def test_a_standing_truck_learned_at_start_is_unlearned_when_it_moves() -> None:
    """The agent starts with a truck in view: its noisy reads look like a clock..."""
    learner = OverlayLearner()
    stopped = TextRead((420, 400, 160, 34), "A123BC77")
    for text in ["A123BC77", "A123BC7", "A1238C77", "A123BC77"]:
        frame(learner, TextRead(stopped.box, text))
    assert learner.regions()  # wrongly learned, for now
    frame(learner, moving_plate("A123BC77", 6), crossing="c1")  # it drives off: a plate
    assert not learner.regions()
    # The next vehicle that stops on the same spot is read.
    assert frame(learner, TextRead(stopped.box, "905GXB11"), crossing="c2") == [""]


def test_a_date_or_time_is_learned_after_two_sightings() -> None:
    learner = OverlayLearner()
    stamp = TextRead(STAMP, "CAM1", raw="CAM120261201")
    assert frame(learner, stamp) == [""]
    assert frame(learner, stamp) == [""]
    assert learner.regions()[0].why == "date/time text"
    assert frame(learner, stamp)[0].startswith("camera overlay")


def test_clock_patterns() -> None:
    assert looks_like_clock("FRONT 2026-12-01 23:41:46")
    assert looks_like_clock("CAM20261201")
    assert looks_like_clock("23:41")
    assert not looks_like_clock("905GXB11")
    assert not looks_like_clock("A123BC77")
    assert not looks_like_clock("20261399")  # no month 13


def test_a_line_of_text_is_no_plate_from_its_first_sighting() -> None:
    learner = OverlayLearner()
    assert text_line((8, 9, 261, 18)) and not text_line((404, 382, 157, 33))
    assert frame(learner, TextRead((8, 9, 261, 18), "FRON20114")) == ["a line of text, not a plate"]
    assert learner.ignored == 1


def test_a_place_not_read_for_long_is_forgotten() -> None:
    learner = OverlayLearner()
    for t in ["A1", "B2", "C3"]:
        frame(learner, TextRead(STAMP, t))
    assert learner.regions()
    for step in range(FORGET_READS + 1):
        frame(learner, crossing=f"c{step // 20}")
    assert not learner.regions()
    assert frame(learner, TextRead(STAMP, "D4")) == [""]


def test_regions_are_bounded() -> None:
    learner = OverlayLearner()
    for k in range(MAX_REGIONS + 3):
        box = (10 + 60 * k, 500, 50, 18)
        for t in ["A1", "B2", "C3"]:
            frame(learner, TextRead(box, f"{t}{k}"))
    assert len(learner.regions()) == MAX_REGIONS
    # The newest are kept; the oldest gave way.
    assert min(r.box[0] for r in learner.regions()) > 10 / W


def test_many_one_off_texts_keep_the_memory_bounded() -> None:
    learner = OverlayLearner()
    for k in range(1000):
        frame(learner, TextRead((k % 900, (k * 7) % 500, 40, 12), f"T{k}"))
    assert learner.tracked <= 16 + MAX_REGIONS
