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
