"""`lane recognize`: one JSON object per image, errors as objects, directories walked."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from edge.cli import main
from edge.cli.recognize import SAMPLES
from tests.recognition.conftest import DATA


def _lines(capsys: pytest.CaptureFixture[str]) -> list[dict]:  # type: ignore[type-arg]
    return [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]


def test_json_per_image_with_errors(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    blank = tmp_path / "blank.png"
    cv2.imwrite(str(blank), np.full((120, 240, 3), 255, np.uint8))
    broken = tmp_path / "broken.jpg"
    broken.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    missing = tmp_path / "missing.png"
    plate = sorted(DATA.glob("*.png"))[0]
    rc = main(["recognize", "--json", str(blank), str(broken), str(missing), str(plate)])
    records = _lines(capsys)
    assert rc == 1  # some files could not be read
    assert [r["file"] for r in records] == [str(blank), str(broken), str(missing), str(plate)]
    assert records[0]["plates"] == [] and records[0]["latency_ms"] >= 0
    assert "error" in records[1] and "error" in records[2]
    read = records[3]
    assert set(read) == {"file", "latency_ms", "plates"}
    assert read["plates"], "the committed synthetic plate is read"
    first = read["plates"][0]
    assert set(first) == {
        "text", "raw", "country", "type", "rows", "confidence", "box", "candidates",
        "country_confidence", "layout", "layout_confidence", "row_texts",
    }  # fmt: skip
    assert len(first["box"]) == 4
    assert all(set(c) == {"text", "confidence"} for c in first["candidates"])
    confidences = [p["confidence"] for p in read["plates"]]
    assert confidences == sorted(confidences, reverse=True)


def test_directory_and_text_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for name in ("a.png", "b.jpg"):
        cv2.imwrite(str(tmp_path / name), np.full((60, 80, 3), 30, np.uint8))
    (tmp_path / "notes.txt").write_text("not an image")
    rc = main(["recognize", str(tmp_path)])
    out = capsys.readouterr().out.splitlines()
    assert rc == 0
    assert len(out) == 2 and all("no plate" in line for line in out)


def test_bad_overrides_are_named_not_a_traceback(capsys: pytest.CaptureFixture[str]) -> None:
    plate = sorted(DATA.glob("*.png"))[0]
    rc = main(["recognize", "--detector-side", "50", "--min-confidence", "3", str(plate)])
    err = capsys.readouterr().err
    assert rc == 2
    assert "recognition.detector_side" in err and "recognition.min_confidence" in err
    assert "Traceback" not in err


def test_detection_sizes_from_the_command_line(capsys: pytest.CaptureFixture[str]) -> None:
    plate = DATA / "kz_1row_905GXB11.png"
    rc = main(["recognize", "--json", "--detector-side", "320", "--escalate-side", "0", str(plate)])
    assert rc == 0
    assert [p["text"] for p in _lines(capsys)[0]["plates"]][:1] == ["905GXB11"]


def test_region_cells_switch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from tests.recognition.test_region import _small_uz_crops

    text, crop = _small_uz_crops(1)[0]
    path = tmp_path / "uz.png"
    cv2.imwrite(str(path), crop)
    assert main(["recognize", "--json", str(path)]) == 0
    assert main(["recognize", "--json", "--no-region-cells", str(path)]) == 0
    default, off = (r["plates"] for r in _lines(capsys))
    assert default and default[0]["text"] == text and "|" in default[0]["raw"]  # the cell's read
    assert all("|" not in p["raw"] for p in off)


def test_rereads_switch(capsys: pytest.CaptureFixture[str]) -> None:
    from tests.recognition.make_test_images import REREAD_IMAGE

    path = str(DATA / REREAD_IMAGE)
    assert main(["recognize", "--json", path]) == 0
    assert main(["recognize", "--json", "--no-rereads", path]) == 0
    default, off = (r["plates"] for r in _lines(capsys))
    assert default[0]["text"] == "X465PY53"
    assert not off or off[0]["text"] != "X465PY53"


def test_samples_carry_country_layout_and_each_row(capsys: pytest.CaptureFixture[str]) -> None:
    """The shipped samples (``lane recognize --samples``): a one-row KZ plate and a two-row
    RU one, each with its country, layout and the text of each row."""
    rc = main(["recognize", "--json", str(SAMPLES)])
    records = {Path(r["file"]).name: r["plates"][0] for r in _lines(capsys)}
    assert rc == 0
    kz, ru = records["kz_1row_905GXB11.png"], records["ru_2row_5836OP163.png"]
    assert (kz["text"], kz["country"], kz["layout"]) == ("905GXB11", "KZ", "one-row")
    assert kz["row_texts"] == ["905GXB11"]
    assert (ru["text"], ru["country"], ru["layout"]) == ("5836OP163", "RU", "two-row")
    assert ru["row_texts"] == ["5836", "OP163"]
    for plate in (kz, ru):
        assert 0 < plate["country_confidence"] <= 1 and 0 < plate["layout_confidence"] <= 1
    rc = main(["recognize", str(SAMPLES / "ru_2row_5836OP163.png")])
    line = capsys.readouterr().out
    assert rc == 0
    assert "5836OP163 (RU " in line and "two-row" in line and "5836 / OP163" in line
