"""The simulated cameras' plates: real layouts, so the agent's grammar knows every one."""

from __future__ import annotations

import random

import pytest

from edge.recognize import grammar
from simulators.render import make_plate


@pytest.mark.parametrize("country", ["KZ", "RU", "UZ", "KG", "EU", "CN"])
@pytest.mark.parametrize("trailer", [False, True], ids=["one-row", "trailer"])
def test_every_simulated_plate_is_a_layout_of_its_country(country: str, trailer: bool) -> None:
    rng = random.Random(7)
    for _ in range(40):
        plate = make_plate(country, rng, trailer=trailer)
        found = {i.country for i in grammar.interpret(plate.text, rows=plate.rows)}
        assert country in found, plate
