"""What `lane diag` prints: values, not Python reprs (issue 24, item 5)."""

from __future__ import annotations

from datetime import UTC, datetime

from drivers.base import _summary
from drivers.readings import WeightReading
from drivers.text import fields, number, plain


def test_numbers_read_like_a_display() -> None:
    assert number(41200.0) == "41,200"
    assert number(12.299137341404194) == "12.3"
    assert number(0.58281) == "0.583"
    assert number(3.0) == "3"
    assert plain(18650) == "18,650"


def test_records_lists_and_candidates_are_words() -> None:
    assert plain([{"text": "C67340", "confidence": 1.0}]) == "C67340 (1.00)"
    assert plain(True) == "yes" and plain(None) == "-"
    assert plain(list(range(20))).endswith("... (+12 more)")
    assert fields({"kg": 41200.0, "stable": True}) == "kg 41,200, stable yes"


def test_a_reading_summary_has_no_repr() -> None:
    reading = WeightReading(
        device_id="scale",
        captured_at=datetime.now(UTC),
        monotonic=0.0,
        gross_kg=18650.0,
        stable=True,
        motion=False,
        division_kg=10.0,
    )
    line = _summary(reading)
    assert line.startswith("weight: ") and "gross_kg 18,650" in line and "stable yes" in line
    assert "WeightReading(" not in line and "=" not in line
