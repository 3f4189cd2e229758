"""Vehicle class from what was measured, and the cross-checks that use it."""

from __future__ import annotations

import pytest

from edge.fusion.records import vehicle_class


@pytest.mark.parametrize(
    ("axles", "gross_kg", "trailer", "expected"),
    [
        (None, None, False, None),  # nothing measured: no guess
        (2, None, False, None),  # two axles alone: a car or a bus
        (2, 1_450.0, False, "light_vehicle"),
        (None, 3_500.0, False, "light_vehicle"),
        (None, 18_000.0, False, "heavy_vehicle"),
        (3, None, False, "heavy_vehicle"),
        (3, 24_000.0, False, "heavy_vehicle"),
        (5, None, False, "articulated"),
        (2, 17_000.0, True, "articulated"),  # the trailer plate says so; the axles disagree
        (None, None, True, "articulated"),
    ],
)
def test_vehicle_class(
    axles: int | None, gross_kg: float | None, trailer: bool, expected: str | None
) -> None:
    assert vehicle_class(axles, gross_kg, trailer=trailer) == expected
