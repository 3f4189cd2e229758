"""A short scenario end to end: simulators -> drivers -> agent -> Mosquitto -> subscriber,
scored against the scenario's ground truth (the same code as `lane score`)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from edge.devtools.harness import DEFAULT_SCENARIO
from edge.devtools.score import run_score, score


def test_short_scenario_scores_end_to_end(tmp_path: Path) -> None:
    result = run_score(DEFAULT_SCENARIO, vehicles=14, speedup=4, workdir=tmp_path, progress=False)
    assert result["vehicles"] == 14
    counts = (result["missed"], result["split"], result["merged"], result["phantom"])
    assert counts == (0, 0, 0, 0), result
    assert result["crossings"] == 14, result
    assert result["alarms_found"] == result["alarms_expected"] > 0
    assert result["weighed"] >= 12 and result["weight_error_kg_max"] <= 10
    assert result["coverage_correct"] == 1.0
    # The lane I/O axle counter: each vehicle's axles, and no false axle_mismatch alarm.
    assert result["axles_counted"] >= 12 and result["axles_exact"] >= 0.9, result
    assert result["axle_alarms"] <= result["axles_counted"] * (1 - result["axles_exact"])
    # Recognition accuracy is measured by bench/recognition; here read plates must reach the
    # events of the right vehicles (how many depends on how busy the 2 cores are).
    assert result["plate_exact"] is not None and result["plate_exact"] > 0
    evidence = result["evidence"]  # best frame and plate crop per read plate, sha256-checked
    assert evidence["named"] > 0 and evidence["received_intact"] == evidence["named"]
    assert result["latency_p95_ms"] < 500 + result["settle_s"] * 1000 + 3000


def test_scoring_counts_missed_split_merged_and_phantom() -> None:
    def vehicle(start: int, end: int) -> dict[str, object]:
        return {
            "start": f"2026-01-01T00:00:{start:02d}+00:00",
            "end": f"2026-01-01T00:00:{end:02d}+00:00",
            "plates": {},
            "gross_kg": 1000,
            "radiation": {"gamma_alarm": False},
        }

    def crossing(start: int, end: int) -> tuple[dict[str, object], float]:
        return (
            {
                "start": f"2026-01-01T00:00:{start:02d}Z",
                "end": f"2026-01-01T00:00:{end:02d}Z",
                "plates": [],
                "coverage": {"notes": []},
            },
            0.0,
        )

    truth = [vehicle(0, 10), vehicle(20, 30), vehicle(40, 50), vehicle(52, 58)]
    ends = [
        crossing(0, 4),
        crossing(5, 10),  # vehicle 0 split in two
        crossing(40, 58),  # vehicles 2 and 3 merged
        crossing(33, 38),  # nothing there: phantom
    ]  # vehicle 1 missed
    result = score(truth, ends)
    assert (result["missed"], result["split"], result["merged"], result["phantom"]) == (2, 1, 1, 1)


def test_scoring_names_each_wrong_or_missing_plate() -> None:
    truth = [
        {
            "start": "2026-01-01T00:00:00+00:00",
            "end": "2026-01-01T00:00:10+00:00",
            "plates": {
                "front": {"text": "123ABC01", "country": "KZ"},
                "trailer": {"text": "45ABC01", "country": "KZ"},
            },
            "gross_kg": 1000,
        }
    ]
    plates = [{"position": "front", "text": "123 abc 01"}]  # read; the trailer's was not
    ends = [
        (
            {
                "start": "2026-01-01T00:00:00Z",
                "end": "2026-01-01T00:00:10Z",
                "plates": plates,
                "coverage": {"notes": []},
            },
            0.0,
        )
    ]
    result = score(truth, ends)
    assert result["plate_exact_by"] == {"front/KZ": "1/1", "rear/KZ": "0/1"}
    assert result["plates_wrong"] == ["vehicle 0 rear/KZ: 45ABC01 -> (none)"]
    assert result["plate_country_by"] == {"front/KZ": "0/1", "rear/KZ": "0/1"}  # none said


def test_scoring_counts_each_plate_whose_country_the_event_says() -> None:
    def vehicle(start: int, front: tuple[str, str], rear: tuple[str, str]) -> dict[str, object]:
        return {
            "start": f"2026-01-01T00:00:{start:02d}+00:00",
            "end": f"2026-01-01T00:00:{start + 9:02d}+00:00",
            "plates": {
                "front": {"text": front[0], "country": front[1]},
                "rear": {"text": rear[0], "country": rear[1]},
            },
            "gross_kg": 1000,
        }

    def crossing(start: int, *plates: tuple[str, str, str]) -> tuple[dict[str, object], float]:
        body = {
            "start": f"2026-01-01T00:00:{start:02d}Z",
            "end": f"2026-01-01T00:00:{start + 9:02d}Z",
            "plates": [{"position": p, "text": t, "country": c} for p, t, c in plates],
            "coverage": {"notes": []},
        }
        return body, 0.0

    truth = [
        vehicle(0, ("01123ABC", "KG"), ("01123ABC", "KG")),
        vehicle(20, ("AB123CD", "EU"), ("1A23456", "EU")),
    ]
    ends = [
        # The KG plate read right, once as KG and once as an Uzbek legal entity's.
        crossing(0, ("front", "01123ABC", "KG"), ("rear", "01123ABC", "UZ")),
        # EU: the shared layout or a member's own code are both right; unknown is not.
        crossing(20, ("front", "AB123CD", "EU"), ("rear", "1A23456", "CZ")),
    ]
    result = score(truth, ends)
    assert result["plate_exact"] == 1.0
    assert result["plate_country"] == 0.75
    assert result["plate_country_by"] == {
        "front/EU": "1/1", "front/KG": "1/1", "rear/EU": "1/1", "rear/KG": "0/1"
    }  # fmt: skip
    body, _ = ends[1]
    body["plates"][1]["country"] = "unknown"  # type: ignore[index]
    assert score(truth, ends)["plate_country_by"]["rear/EU"] == "0/1"


def _descendants(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            children = (task / "children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            found |= {child} | _descendants(child)
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def test_a_terminated_score_stops_the_broker_and_agent_it_started(tmp_path: Path) -> None:
    """`kill` of a running `lane score` (a technician's Ctrl-C from another shell, a CI
    timeout) must not leave its Mosquitto and agent running on the controller."""
    command = [sys.executable, "-m", "edge", "score", "--vehicles", "50", "--json"]
    score_run = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    started: set[int] = set()
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and len(started) < 2:  # the broker and the agent
            started = _descendants(score_run.pid)
            time.sleep(0.2)
        assert len(started) >= 2, started
        time.sleep(1.0)
        score_run.send_signal(signal.SIGTERM)
        assert score_run.wait(90) == 128 + signal.SIGTERM
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline and any(_alive(p) for p in started):
            time.sleep(0.2)
        assert not [p for p in started if _alive(p)], "left running after SIGTERM"
    finally:
        for pid in {score_run.pid, *started, *_descendants(score_run.pid)}:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        score_run.wait(10)


def test_scoring_counts_vehicles_a_camera_read_no_frame_of() -> None:
    def vehicle(start: int, end: int) -> dict[str, object]:
        return {
            "start": f"2026-01-01T00:00:{start:02d}+00:00",
            "end": f"2026-01-01T00:00:{end:02d}+00:00",
            "plates": {},
            "gross_kg": 1000,
        }

    def crossing(start: int, end: int, front: int, rear: int) -> tuple[dict[str, object], float]:
        sensors = [
            {"device": "io", "kind": "laneio.modbus", "state": "UP", "saw_vehicle": True},
            {"device": "cam_front", "state": "UP", "saw_vehicle": True, "frames_read": front},
            {"device": "cam_rear", "state": "UP", "saw_vehicle": True, "frames_read": rear},
        ]
        return (
            {
                "start": f"2026-01-01T00:00:{start:02d}Z",
                "end": f"2026-01-01T00:00:{end:02d}Z",
                "plates": [],
                "coverage": {"notes": [], "sensors": sensors},
            },
            0.0,
        )

    truth = [vehicle(0, 10), vehicle(20, 30)]
    ends = [
        crossing(0, 10, front=3, rear=0),
        crossing(20, 24, front=0, rear=0),
        crossing(25, 30, front=0, rear=2),  # split: its other part read the rear
    ]
    result = score(truth, ends)
    assert result["vehicles_without_read_attempt"] == {"cam_front": 1, "cam_rear": 1}
    assert result["unread_detail"] == ["vehicle 0 cam_rear", "vehicle 1 cam_front"]
    # Events of an agent that does not report frames_read: not known, not zero.
    for event, _ in ends:
        for sensor in event["coverage"]["sensors"]:  # type: ignore[index]
            sensor.pop("frames_read", None)
    assert score(truth, ends)["vehicles_without_read_attempt"] is None
