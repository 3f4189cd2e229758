"""The cargo scenario: its plan, its ground truth, its frames and the score of its events."""

from __future__ import annotations

import itertools
import random
from pathlib import Path

import cv2
import numpy as np

from edge.cargo.iso6346 import compute_check_digit
from edge.devtools.score import match_crossings
from edge.devtools.score_cargo import cargo_score
from simulators.cargo import CargoPlan, CargoSpec, check_digit, plan_cargo, render_side
from simulators.scenario import Scenario, plan

ROOT = Path(__file__).resolve().parents[2]


def test_the_simulators_check_digit_is_iso_6346s() -> None:
    rng = random.Random(5)
    for _ in range(500):
        ten = "".join(rng.choice("ABCDEFGHIJKLMNOPQRSTUVWXYZ") for _ in range(3)) + "U"
        ten += "".join(rng.choice("0123456789") for _ in range(6))
        assert check_digit(ten) == compute_check_digit(ten)


def test_cargo_yaml_plans_100_trucks_with_every_kind_of_cargo() -> None:
    vehicles = plan(Scenario.load(ROOT / "simulators/scenarios/cargo.yaml"))
    assert len(vehicles) == 100
    assert {v.vehicle_class for v in vehicles} <= {"truck", "truck_trailer"}
    boxes = [b for v in vehicles for b in v.cargo.boxes]
    assert sum(not b.check_digit_ok for b in boxes) >= 3  # the fault share is there
    assert any(len(v.cargo.boxes) == 2 for v in vehicles)
    assert any(b.vertical for b in boxes)
    assert sum(v.cargo.adr is not None for v in vehicles) >= 15
    assert all(v.cargo.scan_id for v in vehicles)
    assert any(v.cargo.scanner_plate_wrong for v in vehicles)
    for b in boxes:
        assert (compute_check_digit(b.code[:10]) == int(b.code[10])) is b.check_digit_ok


def test_cargo_leaves_the_vehicles_of_a_scenario_unchanged() -> None:
    base = Scenario.load(ROOT / "simulators/scenarios/default.yaml")
    with_cargo = base.model_copy(update={"cargo": CargoSpec()})
    a, b = plan(base), plan(with_cargo)
    assert [(v.plates, v.gross_kg, v.start_s) for v in a] == [
        (v.plates, v.gross_kg, v.start_s) for v in b
    ]
    assert all(not v.cargo.boxes and v.cargo.adr is None for v in a)


def test_side_frames_change_while_empty_so_the_stream_is_not_frozen() -> None:
    rng = random.Random(1)
    one, two = (render_side(CargoPlan(), 0.0, rng, (320, 180)) for _ in range(2))
    assert (one != two).any()
    # As the camera driver looks (a 64 x 36 thumbnail): an empty side view keeps changing
    # (the exposure's flicker), so a lane without trucks for a while is no frozen stream
    # and the camera is not reconnected just as the next truck comes.
    frames = [render_side(CargoPlan(), 0.0, rng, (960, 540)) for _ in range(12)]
    thumbs = [cv2.resize(f, (64, 36), interpolation=cv2.INTER_AREA) for f in frames]
    changes = [float(np.abs(a.astype(np.int16) - b).mean()) for a, b in itertools.pairwise(thumbs)]
    assert sum(c > 0.05 for c in changes) >= 8, changes
    full = plan_cargo(CargoSpec(container_share=1.0), 1, "truck", rng)
    assert (render_side(full, 0.5, rng, (320, 180)) != one).any()


def _end(cid: str, start: str, end: str, **body: object) -> tuple[dict[str, object], float]:
    event = {"crossing_id": cid, "start": start, "end": end, "coverage": {}, **body}
    return event, 0.0


def test_score_counts_exact_codes_adr_links_and_false_alarms() -> None:
    truth = [
        {"start": "2026-12-02T04:00:00+00:00", "end": "2026-12-02T04:00:10+00:00",
         "cargo": {"containers": [{"code": "CSQU3054383"}], "adr": {"kemler": "33", "un": "1203"},
                   "xray": {"scan_id": "S1", "mismatch": True}}},
        {"start": "2026-12-02T04:00:20+00:00", "end": "2026-12-02T04:00:30+00:00",
         "cargo": {"containers": [{"code": "CSQU3054384"}],
                   "xray": {"scan_id": "S2", "mismatch": False}}},
    ]  # fmt: skip
    box = {"position": "whole", "confidence": 0.9}
    ends = [
        _end("c1", "2026-12-02T04:00:00Z", "2026-12-02T04:00:10Z",
             containers=[{**box, "code": "CSQU3054383", "verification": "check_digit"}],
             adr={"present": True, "kemler": "33", "un": "1203"},
             xray={"scan_id": "S1"}, alarms=[{"code": "cargo.xray_mismatch"}]),
        _end("c2", "2026-12-02T04:00:20Z", "2026-12-02T04:00:30Z",
             containers=[{**box, "code": "CSQU3054384", "verification": "read_only"}],
             alarms=[{"code": "cargo.dangerous_goods"}]),
    ]  # fmt: skip
    alone = [{"crossing_id": "c2", "reason": "late", "xray": {"scan_id": "S2"}, "alarms": []}]
    result = cargo_score(truth, ends, match_crossings(truth, ends), alone)
    assert result["container_exact"] == 1.0 and result["container_wrong_verified"] == 0
    assert result["adr_exact"] == 1.0 and result["xray_linked"] == 1.0
    assert result["xray_mismatch_injected"] == 1 and result["xray_mismatch_raised"] == 1
    assert result["cargo_false_alarms"]["cargo.dangerous_goods"] == 1
    assert result["cargo_false_alarms"]["cargo.xray_mismatch"] == 0
