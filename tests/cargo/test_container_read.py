"""Container codes assembled from text lines (pure) and read from rendered frames (models)."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from edge.cargo.container_read import ContainerReader, TextLine, assemble
from edge.cargo.iso6346 import OwnerRegistry, VerificationLevel


def line(text: str, x: int, y: int, w: int = 120, h: int = 40, conf: float = 0.99) -> TextLine:
    return TextLine(text, conf, (x, y, w, h))


def test_one_row_in_one_line_with_its_size_type_below() -> None:
    (s,) = assemble([line("CSQU3054383", 40, 80, 340), line("45G1", 40, 150)])
    assert s.code == "CSQU3054383" and s.size_type == "45G1"
    assert s.level == VerificationLevel.CHECK_DIGIT and s.verification.check_digit_ok


def test_one_row_split_into_groups_side_by_side() -> None:
    lines = [line("305438", 200, 82, 180), line("CSQU", 40, 80), line("3", 400, 84, 30)]
    (s,) = assemble(lines)
    assert s.code == "CSQU3054383" and s.box[0] == 40


def test_vertical_layout_owner_over_serial() -> None:
    lines = [line("45G1", 60, 200), line("3054383", 60, 134, 210), line("CSQU", 58, 62)]
    (s,) = assemble(lines)
    assert s.code == "CSQU3054383" and s.size_type == "45G1"


def test_a_wrong_check_digit_is_never_verified() -> None:
    (s,) = assemble([line("CSQU3054384", 40, 80, 340)])
    assert s.level == VerificationLevel.READ_ONLY and not s.verification.check_digit_ok
    assert "check digit 4 read, 3 computed" in (s.verification.problem or "")


def test_owner_list_lifts_the_level_and_two_boxes_are_two_codes() -> None:
    owners = OwnerRegistry.from_csv_text("CSQU,COSCO\n")
    found = assemble(
        [line("CSQU3054383", 40, 80, 340), line("BICU1234565", 700, 80, 340)], owners=owners
    )
    assert [s.code for s in found] == ["CSQU3054383", "BICU1234565"]
    assert found[0].level == VerificationLevel.CHECK_DIGIT_AND_OWNER


def test_unrelated_text_far_apart_is_not_joined() -> None:
    assert assemble([line("CSQU", 40, 80), line("3054383", 40, 400, 210)]) == []
    assert assemble([line("MAX GROSS", 40, 80), line("30480 KG", 40, 130)]) == []


@pytest.fixture(scope="module")
def reader() -> ContainerReader:
    from edge.recognize.pipeline import PlateRecognizer

    plates = PlateRecognizer()
    return ContainerReader(plates.detector, plates.reader)


def render(rows: list[str], *, colour: tuple[int, int, int] = (40, 60, 150)) -> np.ndarray:
    image = np.full((480, 640, 3), colour, np.uint8)
    for i, text in enumerate(rows):
        cv2.putText(image, text, (50, 100 + 70 * i), cv2.FONT_HERSHEY_SIMPLEX, 1.6,
                    (240, 240, 240), 4)  # fmt: skip
    return image


@pytest.mark.parametrize(
    ("rows", "code", "ok"),
    [
        (["CSQU 305438 3", "45G1"], "CSQU3054383", True),
        (["CSQU", "305438 3", "45G1"], "CSQU3054383", True),
        (["MSCU 123456 6", "22G1"], "MSCU1234566", True),
        (["CSQU 305438 4", "45G1"], "CSQU3054384", False),
    ],
)
def test_rendered_container_sides_are_read(
    reader: ContainerReader, rows: list[str], code: str, ok: bool
) -> None:
    found = reader.read(render(rows))
    assert found and found[0].code == code
    assert found[0].verification.check_digit_ok is ok
    assert found[0].size_type == rows[-1]


@pytest.mark.parametrize("seed", range(200))
def test_no_wrong_check_digit_becomes_a_verified_code(seed: int) -> None:
    import random

    from edge.cargo.iso6346 import compute_check_digit

    rng = random.Random(seed)
    owner = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3)) + "U"
    serial = "".join(rng.choice("0123456789") for _ in range(6))
    right = compute_check_digit(owner + serial)
    wrong = (right + rng.randint(1, 9)) % 10
    if wrong == right:
        return
    text = f"{owner}{serial}{wrong}"
    lines = [line(text, 40, 80, 340), line(rng.choice(["45G1", "22G1", "42R1"]), 40, 150)]
    if rng.random() < 0.5:  # the vertical layout
        lines = [line(owner, 40, 80), line(f"{serial}{wrong}", 40, 130, 210), lines[1]]
        lines[2] = TextLine(lines[2].text, 0.99, (40, 190, 120, 40))
    found = assemble(lines)
    assert all(not s.verification.check_digit_ok for s in found), [s.code for s in found]
    assert [s.code for s in found] == [text]


def test_two_boxes_side_by_side_at_one_level_are_two_codes() -> None:
    lines = [
        line("CSQU", 65, 105, 116, 40),
        line("1425736", 66, 176, 197, 35),
        line("22G1", 64, 242, 113, 38),
        line("TGHU5318820", 548, 107, 331, 36),
        line("22G1", 542, 172, 121, 44),
    ]
    assert sorted(s.code for s in assemble(lines)) == ["CSQU1425736", "TGHU5318820"]
