"""Scripted crossings: a deterministic stream of plausible vehicles, for demos and tests.

Stands in for live devices when the lane config has a ``scripted:`` section. Each vehicle
yields ``new`` then ``end``; the content (plates, weight, radiation) is drawn from a seed.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta

from edge.crossing import CrossingRecord
from edge.events import Alarm, EventType, PlatePosition, PlateRead, Radiation, Weight, utc_now

_LETTERS = "ABCDEFHKLMNPRSTUVXYZ"


def _kz_plate(rng: random.Random) -> str:
    region = rng.choice(["01", "02", "05", "15", "17"])
    letters = "".join(rng.choice(_LETTERS) for _ in range(3))
    return f"{rng.randint(100, 999)}{letters}{region}"


def _ru_plate(rng: random.Random) -> str:
    letters = "ABEKMHOPCTYX"
    return (
        f"{rng.choice(letters)}{rng.randint(100, 999)}{rng.choice(letters)}{rng.choice(letters)}"
        f"{rng.choice(['77', '54', '174', '02'])}"
    )


def _cn_plate(rng: random.Random) -> str:
    return f"新{rng.choice('ABCDFG')}{rng.randint(10000, 99999)}"


PLATE_MAKERS = {"KZ": _kz_plate, "RU": _ru_plate, "CN": _cn_plate}


@dataclass(frozen=True, slots=True)
class ScriptedStep:
    event_type: EventType
    record: CrossingRecord


def scripted_crossings(vehicles: int, *, seed: int = 1) -> Iterator[ScriptedStep]:
    """Yield new/end steps for ``vehicles`` crossings, reproducible from ``seed``."""
    rng = random.Random(seed)
    for _ in range(vehicles):
        record = CrossingRecord.begin()
        yield ScriptedStep(EventType.NEW, record)
        country = rng.choice(list(PLATE_MAKERS))
        text = PLATE_MAKERS[country](rng)
        confidence = round(rng.uniform(0.80, 0.99), 3)
        record.plates = [
            PlateRead(
                text=text,
                raw=text,
                country=country,
                type="standard",
                confidence=confidence,
                camera="cam-front",
                position=PlatePosition.FRONT,
            )
        ]
        record.weight = Weight(
            gross_kg=round(rng.uniform(8000, 40000), -1),
            stable=True,
            device="scale",
            division_kg=10,
        )
        gamma_bg = round(rng.uniform(180, 260), 1)
        alarm = rng.random() < 0.02
        record.radiation = Radiation(
            device="rpm",
            gamma_background_cps=gamma_bg,
            gamma_max_cps=round(gamma_bg * (rng.uniform(4, 8) if alarm else rng.uniform(1, 1.3))),
            gamma_alarm=alarm,
        )
        if alarm:
            record.alarms = [
                Alarm(
                    code="radiation.gamma", severity="critical", message="gamma alarm", device="rpm"
                )
            ]
        record.vehicle_class = "heavy_vehicle"
        record.end = max(utc_now(), record.start + timedelta(milliseconds=1))
        record.end_reason = "exit"
        yield ScriptedStep(EventType.END, record)
