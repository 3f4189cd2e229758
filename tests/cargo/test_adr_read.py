"""Orange ADR plates found by colour and read (rendered frames, the shipped text reader)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.cargo.adr_read import AdrReader, orange_regions

ORANGE = (0, 120, 255)  # BGR, about RAL 2003


def plate(
    image: np.ndarray, x: int, y: int, kemler: str, un: str, *, w: int = 160, border: bool = True
) -> None:
    h = w * 3 // 4
    if border:
        cv2.rectangle(image, (x - 6, y - 6), (x + w + 6, y + h + 6), (0, 0, 0), -1)
    cv2.rectangle(image, (x, y), (x + w, y + h), ORANGE, -1)
    if kemler or un:
        cv2.line(image, (x, y + h // 2), (x + w, y + h // 2), (0, 0, 0), 5)
        font = cv2.FONT_HERSHEY_SIMPLEX
        cv2.putText(image, kemler, (x + w // 4, y + h // 2 - 12), font, 1.5, (0, 0, 0), 4)
        cv2.putText(image, un, (x + w // 10, y + h - 12), font, 1.5, (0, 0, 0), 4)


def truck(kemler: str = "33", un: str = "1203", **kw: object) -> np.ndarray:
    image = np.full((480, 640, 3), (150, 150, 150), np.uint8)
    cv2.rectangle(image, (120, 60), (520, 420), (200, 200, 200), -1)  # the cab
    plate(image, 240, 280, kemler, un, **kw)  # type: ignore[arg-type]
    return image


@pytest.fixture(scope="module")
def reader() -> AdrReader:
    from edge.recognize.pipeline import PlateRecognizer

    return AdrReader(PlateRecognizer().reader)


@pytest.mark.parametrize(("kemler", "un"), [("33", "1203"), ("80", "1830"), ("268", "1005")])
def test_numbered_plates_are_read(reader: AdrReader, kemler: str, un: str) -> None:
    (found,) = reader.read(truck(kemler, un), position="front")
    assert (found.kemler, found.un, found.readable) == (kemler, un, True)


def test_a_blank_plate_is_blank(reader: AdrReader) -> None:
    (found,) = reader.read(truck("", ""), position="rear")
    assert found.blank and found.position == "rear"


def test_no_plate_and_an_orange_cab_are_no_plate(reader: AdrReader) -> None:
    grey = np.full((480, 640, 3), (150, 150, 150), np.uint8)
    assert reader.read(grey, position="front") == []
    cab = grey.copy()
    cv2.rectangle(cab, (120, 60), (440, 300), ORANGE, -1)  # an orange tractor, no border
    assert orange_regions(cab) == []
    unframed = truck(border=False)
    assert orange_regions(unframed) == []


@pytest.mark.parametrize("position", [0.5, 0.8, 1.0])
def test_a_plate_on_a_red_cab_in_a_simulated_scene(reader: AdrReader, position: float) -> None:
    """The cab's colour is within the orange range: the plate's thin black border alone
    separates them (a closing or an outer-contour search would merge them)."""
    import random
    from datetime import UTC, datetime

    from simulators.render import SceneVehicle, make_plate, render_scene

    rng = random.Random(1)
    scene = SceneVehicle(
        make_plate("KZ", rng), (60, 80, 160), position, "front", adr=("33", "1203")
    )
    image = render_scene(scene, now=datetime(2026, 12, 2, tzinfo=UTC), rng=rng)
    (found,) = reader.read(image, position="front")
    assert (found.kemler, found.un) == ("33", "1203")
    scene = SceneVehicle(make_plate("KZ", rng), (60, 80, 160), position, "front")
    assert reader.read(render_scene(scene, now=datetime(2026, 12, 2, tzinfo=UTC), rng=rng),
                       position="front") == []  # fmt: skip


# --- robustness: perspective, glare, dirt, a rolled camera, orange vehicles, blank plates ---


def _scene(
    colour: tuple[int, int, int],
    position: float,
    adr: tuple[str, str] | None,
    *,
    view: str = "front",
    brightness: float = 1.0,
    blur: int = 0,
    angle: float = 0.0,
    seed: int = 1,
) -> np.ndarray:
    import random
    from datetime import UTC, datetime

    from simulators.render import SceneVehicle, make_plate, render_scene

    rng = random.Random(seed)
    scene = SceneVehicle(make_plate("KZ", rng), colour, position, view, adr=adr)
    return render_scene(
        scene,
        now=datetime(2026, 12, 2, tzinfo=UTC),
        rng=rng,
        brightness=brightness,
        blur=blur,
        angle_deg=angle,
    )


def test_a_plate_seen_at_an_angle_is_rectified_by_its_own_outline(reader: AdrReader) -> None:
    """A side-mounted camera sees the plate as a trapezoid: its four corners come from the
    orange's outline, and the digits are read upright."""
    image = truck("33", "1203")
    h, w = image.shape[:2]
    source = np.array([[0, 0], [w, 0], [w, h], [0, h]], np.float32)
    target = np.array([[40, 30], [w - 10, 0], [w, h], [60, h - 40]], np.float32)
    skewed = cv2.warpPerspective(
        image, cv2.getPerspectiveTransform(source, target), (w, h), borderValue=(150, 150, 150)
    )
    (found,) = reader.read(skewed, position="front")
    assert (found.kemler, found.un) == ("33", "1203")


def test_glare_and_dirt_on_the_plate_do_not_stop_the_read(reader: AdrReader) -> None:
    image = truck("80", "1830")
    glare = image.copy()
    cv2.ellipse(glare, (270, 300), (45, 25), 20, 0, 360, (255, 255, 255), -1)
    image = cv2.addWeighted(glare, 0.45, image, 0.55, 0)
    for x, y, r in ((262, 292, 4), (372, 370, 5), (300, 372, 3)):  # mud spots
        cv2.circle(image, (x, y), r, (40, 50, 60), -1)
    (found,) = reader.read(image, position="rear")
    assert (found.kemler, found.un) == ("80", "1830")


@pytest.mark.parametrize("brightness", [1.0, 0.6, 0.35])
def test_a_blank_plate_is_present_without_numbers(reader: AdrReader, brightness: float) -> None:
    image = truck("", "")
    image = cv2.convertScaleAbs(image, alpha=brightness, beta=0)
    (found,) = reader.read(image, position="front")
    assert found.blank and found.readable and found.label == "blank"


@pytest.mark.parametrize("brightness", [1.0, 0.6, 0.35])
@pytest.mark.parametrize("view", ["front", "rear"])
def test_an_orange_vehicle_without_a_plate_shows_none(
    reader: AdrReader, brightness: float, view: str
) -> None:
    """An orange cab or trailer door, day or night: plate-coloured and dark-ringed at night,
    but a windscreen is no digit, and the dark around a trailer at night is the road, not a
    thin border. (Before, these were read as blank plates: false ADR alarms.)"""
    for colour in ((30, 120, 200), (49, 158, 201), (60, 80, 160)):
        for position in (0.2, 0.6, 1.0):
            image = _scene(colour, position, None, view=view, brightness=brightness, blur=2)
            assert reader.read(image, position=view) == [], (colour, position)


@pytest.mark.parametrize("blur", [0, 2])
def test_a_plate_on_an_orange_cab_is_read_even_with_its_border_blurred(
    reader: AdrReader, blur: int
) -> None:
    """Blurred, the plate's thin black border turns dark orange, still orange by hue: the
    plate is cut from the cab by its dip in brightness."""
    image = _scene((49, 158, 201), 0.9, ("268", "1005"), blur=blur)
    (found,) = reader.read(image, position="front")
    assert (found.kemler, found.un) == ("268", "1005")


@pytest.mark.parametrize("angle", [-3.0, 3.0])
def test_a_rolled_camera_still_joins_the_two_halves(reader: AdrReader, angle: float) -> None:
    """Rolled a few degrees, the boxes of the plate's two halves overlap: still one plate."""
    for position in (0.5, 0.8):
        image = _scene((200, 200, 200), position, ("30", "1202"), angle=angle, blur=1)
        (found,) = reader.read(image, position="front")
        assert (found.kemler, found.un) == ("30", "1202"), position


def test_a_plate_with_marks_that_do_not_read_is_seen_not_blank(reader: AdrReader) -> None:
    image = truck("33", "1203")
    # Smear the UN number into a bar: marks are there, no number reads.
    cv2.rectangle(image, (252, 355), (392, 382), (0, 0, 0), -1)
    plates = reader.read(image, position="front")
    assert all(not p.blank for p in plates)
    assert all(not p.readable or (p.kemler, p.un) != ("33", "1203") for p in plates)


def test_digits_are_decoded_as_digits_not_look_alikes() -> None:
    """Where the network's weight is on ``O`` (or ``I``), the digit step reads the digit
    with the most weight among the digits."""
    from edge.cargo.adr_read import decode_digits
    from edge.recognize.ocr import ALPHABET_INDEX, PLATE_ALPHABET

    def frame(glyph: str | None, second: str | None = None) -> np.ndarray:
        row = np.zeros(1 + len(PLATE_ALPHABET), np.float32)
        if glyph is None:
            row[0] = 1.0
            return row
        row[1 + ALPHABET_INDEX[glyph]] = 0.7
        if second is not None:
            row[1 + ALPHABET_INDEX[second]] = 0.2
        row[0] = 1.0 - row.sum()
        return row

    glyphs = [("1", None), (None, None), ("2", None), (None, None), ("O", "0"), (None, None)]
    glyphs += [("I", "3"), (None, None)]
    frames = np.stack([frame(g, s) for g, s in glyphs])
    text, confidence = decode_digits(frames)
    assert text == "1203"
    assert 0 < confidence <= 1
    x_frames = np.stack([frame("X"), frame(None), frame("8"), frame(None), frame("8")])
    assert decode_digits(x_frames)[0] == "X88"


def test_a_number_plate_read_on_an_orange_face_is_told_apart() -> None:
    """The recogniser reads an ADR plate's digits as a number plate (``903082``) where the
    finder did not confirm the plate (far, half hidden): its box is mostly orange."""
    from edge.cargo.adr_read import orange_share

    image = truck("90", "3082")
    assert orange_share(image, (240, 280, 160, 120)) > 0.6  # the orange plate
    assert orange_share(image, (130, 70, 100, 40)) == 0.0  # the cab, grey
    assert orange_share(image, (0, 0, 0, 0)) == 0.0
