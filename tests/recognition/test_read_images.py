"""The pipeline reads the committed synthetic images, and a sample of the real dev images."""

from __future__ import annotations

import csv
from collections import defaultdict

import cv2
import numpy as np
import pytest

from edge.config import RecognitionConfig
from edge.recognize.grammar import score_key
from edge.recognize.image import load_image
from edge.recognize.judge import plate_like
from edge.recognize.pipeline import PlateRecognizer, ReadCost
from tests.recognition.conftest import DATA, SHARED_PLATES, small_uz_plates


def _expected() -> dict[str, list[dict[str, str]]]:
    by_file: dict[str, list[dict[str, str]]] = defaultdict(list)
    with (DATA / "manifest.csv").open(encoding="utf-8") as handle:
        for row in csv.DictReader(handle):
            by_file[row["file"]].append(row)
    return dict(by_file)


EXPECTED = _expected()


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_reads_committed_synthetic_image(recognizer: PlateRecognizer, name: str) -> None:
    plates = recognizer.read(load_image(DATA / name))
    found = {p.text: p for p in plates}
    for row in EXPECTED[name]:
        assert row["plate"] in found, f"{name}: expected {row['plate']}, read {list(found)}"
        plate = found[row["plate"]]
        assert plate.country == row["country"]
        assert plate.rows == int(row["rows"])
        # Country and layout come with each read: the layout from the rows read (none of
        # these is a trailer), the text once per printed row.
        assert plate.layout == ("two-row" if plate.rows == 2 else "one-row")
        assert 0 < plate.country_confidence <= 1 and 0 < plate.layout_confidence <= 1
        assert len(plate.row_texts) == plate.rows
        assert "".join(plate.row_texts) == plate.text
        assert plate.candidates[0].text == plate.text
        assert plate.box[2] > 0 and plate.box[3] > 0
    confidences = [p.confidence for p in plates]
    assert confidences == sorted(confidences, reverse=True)


def test_scene_boxes_locate_the_plates(recognizer: PlateRecognizer) -> None:
    image = load_image(DATA / "scene_truck_night.png")
    plates = recognizer.read(image)
    assert len({p.text for p in plates}) >= 2
    for plate in plates:
        x, y, w, h = plate.box
        assert x >= 0 and y >= 0 and x + w <= image.shape[1] and y + h <= image.shape[0]


# (images, least exact share). uz_crops: 19 of these 20 with the region-cell pass, 17 without.
DEV_SAMPLES = {"lprnet_cn_crops": (20, 0.9), "uz_crops": (20, 0.9), "openalpr_eu": (8, 0.6)}
# Sets whose label names the country the read must say (at least the same share right).
COUNTRY_LABELLED = {"lprnet_cn_crops", "uz_crops"}


@pytest.mark.parametrize("source", sorted(DEV_SAMPLES))
def test_dev_images_sample(recognizer: PlateRecognizer, source: str) -> None:
    folder = SHARED_PLATES / source
    if not folder.is_dir():
        pytest.skip(f"evaluation data {folder} is absent (see bench/recognition/README.md)")
    count, floor = DEV_SAMPLES[source]
    with (folder / "manifest.csv").open(encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    rows = [rows[i] for i in np.linspace(0, len(rows) - 1, count).astype(int)]
    right = countries = 0
    for row in rows:
        plates = recognizer.read(load_image(folder / row["file"]))
        right += bool(plates) and score_key(plates[0].text) == score_key(row["plate"])
        countries += bool(plates) and plates[0].country == row["country"]
    assert right / len(rows) >= floor, f"{source}: {right}/{len(rows)} exact"
    if source in COUNTRY_LABELLED:
        assert countries / len(rows) >= floor, f"{source}: {countries}/{len(rows)} countries"


def _small_plate_frame(height: int) -> np.ndarray:
    """A 1080p frame whose only text is a clean KZ plate ``height`` pixels tall."""
    plate = np.full((96, 400, 3), 255, np.uint8)
    cv2.rectangle(plate, (1, 1), (398, 94), (0, 0, 0), 3)
    cv2.putText(plate, "123ABC01", (14, 72), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (0, 0, 0), 5)
    width = round(400 * height / 96)
    frame = np.full((1080, 1920, 3), 96, np.uint8)
    frame[700 : 700 + height, 900 : 900 + width] = cv2.resize(
        plate, (width, height), interpolation=cv2.INTER_AREA
    )
    return frame


def test_a_small_plate_is_found_by_the_finer_second_search(recognizer: PlateRecognizer) -> None:
    frame = _small_plate_frame(24)
    plain = PlateRecognizer(RecognitionConfig(escalate_side=0), threads=2)
    assert plain.read(frame) == []  # too small for the detector at 512 px
    assert [p.text for p in plain.read(_small_plate_frame(48))] == ["123ABC01"]
    plates = recognizer.read(frame)
    assert [p.text for p in plates] == ["123ABC01"]
    x, y, _, h = plates[0].box
    assert 890 <= x <= 910 and 690 <= y <= 710 and h < 40


def test_a_tight_crop_with_no_line_found_is_searched_again_with_a_margin(
    recognizer: PlateRecognizer,
) -> None:
    crops = small_uz_plates(60, width=70, seed=3)  # 15 px tall
    lines = [
        any(plate_like(b) for b in recognizer.detector(crop, max_side=512)) for _, crop in crops
    ]
    missed = [c for c, found in zip(crops, lines, strict=True) if not found]
    assert len(missed) >= 3, "the detector finds only fragments of the line in these crops"
    for _, crop in missed:
        boxes = [b for b in recognizer._detect_with_margin(crop, 512) if plate_like(b)]
        assert boxes, "with room round it the line is found"
        x, _, width, _ = boxes[0].rect  # in the crop's own coordinates, not the padded image's
        assert x >= -3 and x + width <= crop.shape[1] + 3 and width > 0.6 * crop.shape[1]
    sample = missed + [c for c, found in zip(crops, lines, strict=True) if found][:3]
    costs = [ReadCost() for _ in sample]
    reads = [recognizer.read(crop, cost) for (_, crop), cost in zip(sample, costs, strict=True)]
    assert [p[0].text if p else "" for p in reads] == [text for text, _ in sample]
    searched = [cost.margin_searches for cost in costs]
    assert sum(searched[: len(missed)]) == len(missed)
    assert not any(searched[len(missed) :])  # crops whose line was found pay nothing


def test_other_text_beside_a_sure_plate_costs_no_second_look(
    recognizer: PlateRecognizer,
) -> None:
    frame = _small_plate_frame(60)
    cv2.putText(frame, "CUSTOMS LANE", (300, 300), cv2.FONT_HERSHEY_SIMPLEX, 2.0, (250,) * 3, 4)
    cost = ReadCost()
    plates = recognizer.read(frame, cost)
    assert plates[0].text == "123ABC01"
    # The plate and the sign are read together, once.
    assert len(cost.reader_batches) == 1 and cost.reader_batches[0] >= 2
