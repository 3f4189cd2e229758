"""An unsure frame is read again at other reader widths, and the reads of each plate vote."""

from __future__ import annotations

from edge.config import RecognitionConfig
from edge.recognize.image import load_image
from edge.recognize.judge import PlateCandidate, PlateResult
from edge.recognize.pipeline import PlateRecognizer, ReadCost, _agree
from tests.recognition.conftest import DATA
from tests.recognition.make_test_images import REREAD_IMAGE


def _plate(
    text: str, confidence: float, box: tuple[int, int, int, int] = (10, 10, 80, 20), *others: str
) -> PlateResult:
    """A read of ``text`` whose other candidates (``others``) are each at 0.3."""
    candidates = (PlateCandidate(text, confidence), *(PlateCandidate(t, 0.3) for t in others))
    return PlateResult(text, text, "RU", "standard", 1, confidence, box, candidates)


def test_the_reads_agreeing_outvote_a_surer_single_read() -> None:
    first = _plate("1465PV53", 0.58)
    narrow, wide = _plate("X465PY53", 0.55, (12, 10, 78, 20)), _plate("X465PY53", 0.52)
    agreed = _agree(first, [[narrow], [wide]])
    assert agreed is narrow  # the winner as its surest read gave it: text, box, confidence
    lone = _agree(_plate("1465PV53", 0.9), [[_plate("X465PY53", 0.5)], [_plate("Y465", 0.3)]])
    assert lone.text == "1465PV53"  # 0.9 against 0.5: one clear read stands


def test_a_runner_up_alone_never_wins_and_other_boxes_do_not_vote() -> None:
    box = (10, 10, 80, 20)
    first = _plate("A123BC77", 0.4, box, "A128BC77")
    others = [
        [_plate("B123BC77", 0.3, box, "A128BC77")],
        [_plate("C123BC77", 0.3, box, "A128BC77")],
    ]
    # A128BC77 tops the tally (3 x 0.15 = 0.45 against 0.4) but no read gave it as its own.
    assert _agree(first, others) is first
    elsewhere = _plate("20I4051", 0.9, (600, 400, 60, 12))  # a time stamp, another box
    assert _agree(first, [[elsewhere], [elsewhere]]) is first


def test_the_reader_gives_more_frames_to_a_wider_input(recognizer: PlateRecognizer) -> None:
    crop = load_image(DATA / "kz_1row_905GXB11.png")
    frames = [len(recognizer.reader.frames([crop], stretch=s)[0]) for s in (0.9, 1.0, 1.1)]
    assert frames[0] < frames[1] < frames[2]


def test_an_unsure_plate_is_read_again_and_the_reads_vote(recognizer: PlateRecognizer) -> None:
    image = load_image(DATA / REREAD_IMAGE)
    alone = PlateRecognizer(RecognitionConfig(rereads=False), threads=2).read(image)
    assert alone and alone[0].text != "X465PY53" and alone[0].confidence < 0.8  # unsure, wrong
    cost = ReadCost()
    plates = recognizer.read(image, cost)
    assert plates[0].text == "X465PY53" and plates[0].country == "RU"
    assert cost.views == [1.0, 0.9, 1.1]
    assert cost.detections and all(width == 1.0 for width, _ in cost.detections)  # boxes kept


def test_a_sure_plate_is_read_once(recognizer: PlateRecognizer) -> None:
    cost = ReadCost()
    plates = recognizer.read(load_image(DATA / "kz_1row_905GXB11.png"), cost)
    assert plates[0].text == "905GXB11" and plates[0].confidence >= 0.8
    assert cost.views == [1.0]
