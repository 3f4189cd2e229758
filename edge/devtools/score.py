"""`lane score`: run a scenario through the whole lane and score the events against its truth.

simulators -> drivers -> agent -> Mosquitto -> subscriber; then each received crossing is
matched to the scenario vehicle whose time in the lane it overlaps most.
"""

from __future__ import annotations

import hashlib
import statistics
import sys
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from edge.devtools.harness import LaneHarness
from edge.recognize.grammar import score_key
from edge.recognize.origin import country_right


def _t(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def _overlap(a: tuple[float, float], b: tuple[float, float]) -> float:
    return max(0.0, min(a[1], b[1]) - max(a[0], b[0]))


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 1)


@dataclass
class Matching:
    """Which crossings belong to which scenario vehicle (by time in the lane)."""

    matches: dict[int, list[int]]  # truth index -> crossing indexes
    merged: int  # crossings that overlap more than one vehicle
    phantoms: list[int]  # crossings that overlap no vehicle


def match_crossings(
    truth: list[dict[str, Any]], ends: list[tuple[dict[str, Any], float]]
) -> Matching:
    """Each ``end`` event goes to the vehicle whose time in the lane it overlaps most."""
    vehicles = [(_t(v["start"]), _t(v["end"])) for v in truth]
    matches: dict[int, list[int]] = defaultdict(list)
    merged = 0
    phantoms: list[int] = []
    for ci, (event, _arrived) in enumerate(ends):
        span = (_t(event["start"]), _t(event.get("end") or event["start"]))
        overlaps = [(_overlap(span, v), ti) for ti, v in enumerate(vehicles)]
        hits = [(o, ti) for o, ti in overlaps if o > 0.3 * (vehicles[ti][1] - vehicles[ti][0])]
        if not hits:
            hits = [max(overlaps)] if overlaps and max(overlaps)[0] > 0 else []
        if not hits:
            phantoms.append(ci)
            continue
        if len(hits) > 1:
            merged += 1
        matches[max(hits)[1]].append(ci)
    return Matching(dict(matches), merged, phantoms)


def expected_plate(vehicle: dict[str, Any], position: str) -> dict[str, Any] | None:
    """The plate a camera at ``position`` should read (the rear camera sees a trailer's)."""
    plates = vehicle["plates"]
    if position == "rear" and "trailer" in plates:
        return plates["trailer"]
    return plates.get(position)


def plate_right(read: str | None, expected: dict[str, Any]) -> bool:
    return score_key(read or "") == score_key(expected["text"])


def score(truth: list[dict[str, Any]], ends: list[tuple[dict[str, Any], float]]) -> dict[str, Any]:
    """Compare ``end`` events (with their arrival time) with the scenario's ground truth."""
    vehicles = [(_t(v["start"]), _t(v["end"])) for v in truth]
    matching = match_crossings(truth, ends)
    matches, merged, phantoms = matching.matches, matching.merged, matching.phantoms
    missed = sum(1 for ti in range(len(truth)) if not matches.get(ti))
    split = sum(1 for cis in matches.values() if len(cis) > 1)

    def described(ci: int, since: float) -> dict[str, Any]:
        event = ends[ci][0]
        return {
            "start_s": round(_t(event["start"]) - since, 2),
            "end_reason": event.get("end_reason"),
            "plates": {p["position"]: p["text"] for p in event.get("plates", [])},
            "sources": [
                s["device"] for s in event["coverage"].get("sensors", []) if s.get("saw_vehicle")
            ],
        }

    # What a split vehicle's crossings said, to tell why it was cut in two.
    split_detail = [
        {"vehicle": ti, "crossings": [described(ci, vehicles[ti][0]) for ci in cis]}
        for ti, cis in sorted(matches.items())
        if len(cis) > 1
    ]
    # A phantom, placed after the vehicle that last left before it began.
    phantom_detail = []
    for ci in phantoms:
        begun = _t(ends[ci][0]["start"])
        before = [ti for ti, v in enumerate(vehicles) if v[1] <= begun]
        ti = max(before, key=lambda i: vehicles[i][1]) if before else None
        since = vehicles[ti][1] if ti is not None else begun
        phantom_detail.append({"after_vehicle": ti} | described(ci, since))

    plate_total: Counter[str] = Counter()
    plate_exact: Counter[str] = Counter()
    plate_country: Counter[str] = Counter()  # the event's plate says the plate's country
    weight_errors: list[float] = []
    confusion = Counter[str]()
    latencies: list[float] = []
    coverage_ok = coverage_total = 0
    axles_counted = axles_exact = 0
    axles_wrong: list[str] = []
    plates_wrong: list[str] = []
    # Per plate camera: vehicles of which it read no frame (coverage ``frames_read`` 0).
    unread: dict[str, int] = {}
    unread_detail: list[str] = []
    for ti, cis in matches.items():
        vehicle = truth[ti]
        event, arrived = ends[cis[0]]
        for sensor in event["coverage"].get("sensors", []):
            if sensor.get("frames_read") is not None:
                read_any = any(
                    s.get("device") == sensor["device"] and s.get("frames_read")
                    for ci in cis
                    for s in ends[ci][0]["coverage"].get("sensors", [])
                )
                unread[sensor["device"]] = unread.get(sensor["device"], 0) + (not read_any)
                if not read_any:
                    unread_detail.append(f"vehicle {ti} {sensor['device']}")
        latencies.append((arrived - vehicles[ti][1]) * 1000)
        read = {p["position"]: p["text"] for p in event.get("plates", [])}
        country = {p["position"]: p.get("country") for p in event.get("plates", [])}
        for position in ("front", "rear"):
            expected = expected_plate(vehicle, position)
            if expected is None or not expected.get("rendered", True):
                continue
            key = f"{position}/{expected['country']}"
            plate_total[key] += 1
            plate_country[key] += country_right(expected["country"], country.get(position))
            if plate_right(read.get(position), expected):
                plate_exact[key] += 1
            else:
                got = read.get(position) or "(none)"
                plates_wrong.append(f"vehicle {ti} {key}: {expected['text']} -> {got}")
        if "weight" in event:
            weight_errors.append(abs(event["weight"]["gross_kg"] - vehicle["gross_kg"]))
        if event.get("axle_count") is not None:
            axles_counted += 1
            if event["axle_count"] == vehicle.get("axles"):
                axles_exact += 1
            else:
                axles_wrong.append(f"vehicle {ti}: {vehicle.get('axles')} -> {event['axle_count']}")
        expected_alarm = bool(vehicle.get("radiation", {}).get("gamma_alarm"))
        found_alarm = bool(event.get("radiation", {}).get("gamma_alarm"))
        confusion[
            f"{'alarm' if expected_alarm else 'clear'}->{'alarm' if found_alarm else 'clear'}"
        ] += 1
        # Coverage is right when a missing radiation result is explained in the event.
        coverage_total += 1
        screened = "radiation" in event
        explained = any(
            n.startswith("not radiation-screened") for n in event["coverage"].get("notes", [])
        )
        coverage_ok += screened or explained
    total_plates = sum(plate_total.values())
    return {
        "vehicles": len(truth),
        "crossings": len(ends),
        "missed": missed,
        "split": split,
        "split_detail": split_detail,
        "merged": merged,
        "phantom": len(phantoms),
        "phantom_detail": phantom_detail,
        "plate_exact": round(sum(plate_exact.values()) / total_plates, 4) if total_plates else None,
        "plate_exact_by": {k: f"{plate_exact[k]}/{n}" for k, n in sorted(plate_total.items())},
        # Of the same plates, how many the event gave the right country (an unread one: no).
        "plate_country": round(sum(plate_country.values()) / total_plates, 4)
        if total_plates
        else None,
        "plate_country_by": {k: f"{plate_country[k]}/{n}" for k, n in sorted(plate_total.items())},
        "plates_wrong": plates_wrong,
        "weight_error_kg_mean": round(statistics.mean(weight_errors), 1) if weight_errors else None,
        "weight_error_kg_max": round(max(weight_errors), 1) if weight_errors else None,
        "weighed": len(weight_errors),
        "axles_counted": axles_counted,
        "axles_exact": round(axles_exact / axles_counted, 4) if axles_counted else None,
        "axles_wrong": axles_wrong,
        # The scenario's vehicles are consistent: every axle_mismatch here is a false alarm.
        "axle_alarms": sum(
            any(a["code"] == "crossing.axle_mismatch" for a in e.get("alarms", ())) for e, _ in ends
        ),
        "radiation_confusion": dict(sorted(confusion.items())),
        "alarms_expected": sum(bool(v.get("radiation", {}).get("gamma_alarm")) for v in truth),
        "alarms_found": sum(bool(e.get("radiation", {}).get("gamma_alarm")) for e, _ in ends),
        "coverage_correct": round(coverage_ok / coverage_total, 4) if coverage_total else None,
        # None: the agent's events do not say (an agent from before frames_read).
        "vehicles_without_read_attempt": dict(sorted(unread.items())) if unread else None,
        "unread_detail": unread_detail,
        "latency_p50_ms": _percentile(latencies, 0.5),
        "latency_p95_ms": _percentile(latencies, 0.95),
    }


def evidence_check(harness: LaneHarness) -> dict[str, int]:
    """Evidence named in the end events, and how much of it arrived intact."""
    named = matched = 0
    for delivered in harness.crossings("end"):
        crossing = delivered.body["crossing_id"]
        for plate in delivered.body.get("plates", []):
            for ref in plate.get("evidence", []):
                named += 1
                data = harness.evidence.get(f"{crossing}/{ref['file']}")
                matched += data is not None and hashlib.sha256(data).hexdigest() == ref["sha256"]
    return {"named": named, "received_intact": matched}


def _progress(harness: LaneHarness, elapsed_s: float, width: int = 30) -> str:
    """`[#########.........] 9/30 vehicles, 8 crossings, ETA 1 min 5 s`."""
    total = max(1, len(harness.lane.vehicles))
    done = len(harness.truth)
    filled = int(width * done / total)
    eta = f"ETA {_duration(elapsed_s / done * (total - done))}" if done else "ETA -"
    return (
        f"[{'#' * filled}{'.' * (width - filled)}] {done}/{total} vehicles, "
        f"{len(harness.crossings('end'))} crossings, {eta}   "
    )


def _duration(seconds: float) -> str:
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes} min {secs} s" if minutes else f"{secs} s"


def run_score(
    scenario_path: Path,
    *,
    vehicles: int | None,
    speedup: float | None,
    workdir: Path,
    settle_s: float = 1.0,
    progress: bool = True,
) -> dict[str, Any]:
    from simulators.scenario import RandomVehicles, Scenario

    scenario = Scenario.load(scenario_path)
    updates: dict[str, Any] = {}
    if speedup:
        updates["speedup"] = speedup
    if vehicles is not None:
        scripted = scenario.vehicles[:vehicles]
        rest = vehicles - len(scripted)
        random_vehicles = (scenario.random_vehicles or RandomVehicles()).model_copy(
            update={"count": rest}
        )
        updates |= {"vehicles": scripted, "random_vehicles": random_vehicles}
    scenario = scenario.model_copy(update=updates)
    harness = LaneHarness(scenario, workdir, settle_s=settle_s).start()
    started = time.monotonic()
    try:
        while not harness.vehicles_done():
            harness.poll(0.5)
            if progress and sys.stdout.isatty():
                print(f"\r{_progress(harness, time.monotonic() - started)}", end="", flush=True)
            if not harness.agent_alive():
                raise RuntimeError(f"the agent died; see {harness.agent_log}")
        deadline = time.monotonic() + settle_s + 5
        while time.monotonic() < deadline:
            harness.poll(0.2)
    finally:
        harness.stop()
    if progress:
        print()
    ends = [(d.body, d.received.timestamp()) for d in harness.crossings("end")]
    result = score(harness.truth, ends)
    if any("cargo" in v for v in harness.truth):
        from edge.devtools.score_cargo import cargo_score

        alone = [d.body for d in harness.delivered if d.topic.endswith("/xray")]
        result |= cargo_score(harness.truth, ends, match_crossings(harness.truth, ends), alone)
    result["duplicates"] = harness.duplicates
    result["evidence"] = evidence_check(harness)
    result["speedup"] = scenario.speedup
    result["settle_s"] = settle_s
    result["wall_s"] = round(time.monotonic() - started, 1)
    return result
