"""Replay a recorded lane (JSON lines) through the correlator, deterministically.

A recording's first line names the devices and fusion settings; each further line is one
input at ``t`` seconds (the agent's monotonic receive time)::

    {"devices": [{"id": "io", "kind": "laneio.modbus"}, ...], "settings": {"lane_type": "truck"}}
    {"t": 0.0, "io": {"entry_loop": true}}
    {"t": 0.4, "plate": {"camera": "cam-front", "position": "front", "text": "123ABC02",
                         "confidence": 0.93, "country": "KZ"}}
    {"t": 1.2, "weight": {"device": "scale", "gross_kg": 24310, "stable": true}}
    {"t": 3.0, "occupancy": {"device": "rpm", "gamma_max_cps": 950, ...}}
    {"t": 3.5, "thermal": {"device": "thermal", "regions": [{"index": 0, "max_c": 140}]}}
    {"t": 4.0, "health": {"device": "rpm", "state": "DOWN", "reason": "silent for 10 s"}}
    {"t": 4.2, "neighbour": {"lane": "T4", "crossing_id": "c-17", "plates": ["123ABC02"],
                             "start": 2.0, "end": 6.0}}
    {"t": 4.3, "recognition_started": {"camera": "cam-rear", "captured": 4.3}}
    {"t": 6.3, "recognition_done": {"camera": "cam-rear", "captured": 4.3}}
    {"t": 40.0, "xray": {"device": "xray1", "scan_id": "S1", "started": 2.0, "finished": 30.0,
                         "plate": "123ABC02", "container": "CSQU3054383"}}
    {"t": 5.0, "container": {"camera": "cam-side", "text": "CSQU3054383", "size_type": "22G1",
                              "confidence": 0.9}}
    {"t": 5.1, "adr": {"position": "front", "kemler": "33", "un": "1203"}}
    {"t": 9.0, "tick": true}

``recognition_started`` / ``recognition_done`` bracket a frame's plate recognition (``captured``
is its capture time); a plate it yielded comes between them, with ``"seen"`` = ``captured``.
An ``xray`` scan's ``started`` / ``finished`` are seconds on the *scanner's* clock (a skewed
scanner is recorded as such); scans the correlator sends alone come from ``take_scans``.
``"read": false`` in a ``recognition_done``: the frame waited as a candidate and was given up
unread (it does not count in the vehicle's ``frames_read``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from drivers.readings import (
    LaneIoState,
    LoopFault,
    RpmOccupancy,
    ScanFile,
    ThermalRegion,
    ThermalRegions,
    WeightReading,
    XrayScan,
)
from edge.cargo.adr import read_plate
from edge.cargo.container_read import ContainerSighting
from edge.cargo.iso6346 import read_code
from edge.events import Candidate, PlatePosition, SensorState
from edge.fusion.correlator import Correlator
from edge.fusion.model import Device, Emission, NeighbourSighting, PlateObservation
from edge.fusion.settings import FusionSettings

EPOCH = datetime(2026, 1, 1, tzinfo=UTC)


def _at(t: float) -> datetime:
    return EPOCH + timedelta(seconds=t)


def load(path: Path) -> tuple[Correlator, list[dict[str, Any]]]:
    lines = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    header, steps = lines[0], lines[1:]
    devices = [Device(d["id"], d["kind"], d.get("role")) for d in header["devices"]]
    settings = FusionSettings(**header.get("settings", {}))
    return Correlator(devices, settings, wall=_at), steps


def feed(correlator: Correlator, step: dict[str, Any]) -> list[Emission]:
    """Time passes up to the step (as the agent's periodic tick would), then the input."""
    t = float(step["t"])
    return correlator.tick(t) + _input(correlator, step, t)


def _input(correlator: Correlator, step: dict[str, Any], t: float) -> list[Emission]:
    at = _at(t)
    if "io" in step:
        return correlator.on_reading(
            LaneIoState(
                faults={k: LoopFault(v) for k, v in step.get("faults", {}).items()},
                device_id=step.get("device", "io"),
                captured_at=at,
                monotonic=t,
                inputs=step["io"],
                outputs={},
                counters=step.get("counters", {}),
            ),
            t,
        )
    if "plate" in step:
        p = dict(step["plate"])
        seen = p.pop("seen", None)  # capture time when recognition took a while
        p["position"] = PlatePosition(p["position"])
        p["candidates"] = tuple(Candidate(**c) for c in p.get("candidates", ()))
        return correlator.on_plate(PlateObservation(**p, captured_at=at), t, seen=seen)
    if "weight" in step:
        w = step["weight"]
        return correlator.on_reading(
            WeightReading(
                device_id=w.get("device", "scale"),
                captured_at=at,
                monotonic=t,
                gross_kg=w["gross_kg"],
                stable=w.get("stable", True),
                motion=not w.get("stable", True),
                division_kg=w.get("division_kg", 10),
                overload=w.get("overload", False),
            ),
            t,
        )
    if "occupancy" in step:
        o = step["occupancy"]
        return correlator.on_reading(
            RpmOccupancy(
                device_id=o.get("device", "rpm"),
                captured_at=at,
                monotonic=t,
                occupancy_no=o.get("no"),
                start=_at(o.get("start", t - 3)),
                end=at,
                gamma_max_cps=o["gamma_max_cps"],
                neutron_max=o.get("neutron_max", 0),
                gamma_background_cps=o.get("gamma_background_cps"),
                neutron_background=o.get("neutron_background"),
                sigma=o.get("sigma"),
                gamma_alarm=o.get("gamma_alarm", False),
                neutron_alarm=o.get("neutron_alarm", False),
                samples=o.get("samples", 10),
                axles=o.get("axles"),
            ),
            t,
        )
    if "thermal" in step:
        th = step["thermal"]
        regions = tuple(
            ThermalRegion(
                index=r["index"],
                max_c=r["max_c"],
                min_c=r.get("min_c"),
                avg_c=r.get("avg_c"),
                valid=r.get("valid", True),
                alarm=r.get("alarm", False),
            )
            for r in th["regions"]
        )
        return correlator.on_reading(
            ThermalRegions(
                device_id=th.get("device", "thermal"), captured_at=at, monotonic=t, regions=regions
            ),
            t,
        )
    if "xray" in step:
        x = step["xray"]
        scan = XrayScan(
            device_id=x.get("device", "xray1"),
            captured_at=at,
            monotonic=t,
            scan_id=x["scan_id"],
            started=_at(x["started"]),
            finished=_at(x["finished"]),
            files=tuple(
                ScanFile(name=f, size=None, sha256=None) for f in x.get("files", ["scan.img"])
            ),
            scanner_plate=x.get("plate"),
            scanner_container=x.get("container"),
        )
        return correlator.on_reading(scan, t)
    if "container" in step:
        c = step["container"]
        verification = read_code(c["text"])
        container = ContainerSighting(
            verification.text,
            verification,
            float(c.get("confidence", 0.9)),
            (0, 0, 1, 1),
            c.get("size_type"),
        )
        return correlator.on_container(
            container, c.get("camera", "cam-side"), t, seen=c.get("seen")
        )
    if "adr" in step:
        a = step["adr"]
        plate = read_plate(a.get("kemler"), a.get("un"), position=a["position"])
        return correlator.on_adr(plate, t, seen=a.get("seen"))
    if "neighbour" in step:
        n = step["neighbour"]
        sighting = NeighbourSighting(
            lane=n["lane"],
            crossing_id=n["crossing_id"],
            plates=frozenset(n["plates"]),
            start=_at(n["start"]),
            end=_at(n["end"]) if "end" in n else None,
        )
        return correlator.on_neighbour(sighting, t)
    if "health" in step:
        h = step["health"]
        return correlator.on_health(h["device"], SensorState(h["state"]), h.get("reason"), t)
    if "recognition_started" in step:
        r = step["recognition_started"]
        return correlator.on_recognition_started(r["camera"], float(r["captured"]), t)
    if "recognition_done" in step:
        r = step["recognition_done"]
        return correlator.on_recognition_done(
            r["camera"], float(r["captured"]), t, read=bool(r.get("read", True))
        )
    if step.get("tick"):
        return []
    if step.get("shutdown"):
        return correlator.shutdown(t)
    raise ValueError(f"unknown recording step: {step}")


def replay(path: Path) -> Iterator[Emission]:
    correlator, steps = load(path)
    for step in steps:
        yield from feed(correlator, step)


def summary(emission: Emission) -> dict[str, Any]:
    """The facts of one emission a golden file pins (no ids, no wall-clock times)."""
    r = emission.record
    out: dict[str, Any] = {"type": emission.type.value}
    if r.end_reason:
        out["end_reason"] = r.end_reason
    if r.plates:
        out["plates"] = {p.position: p.text for p in r.plates}
    if r.weight:
        out["weight_kg"] = r.weight.gross_kg
    if r.radiation:
        out["gamma_alarm"] = r.radiation.gamma_alarm
    if r.thermal:
        out["thermal_max_c"] = max(x.max_c for x in r.thermal.regions)
    if r.axle_count is not None:
        out["axles"] = r.axle_count
    if r.vehicle_class:
        out["class"] = r.vehicle_class
    if r.alarms:
        out["alarms"] = [a.code for a in r.alarms]
    if r.containers:
        out["containers"] = {c.position: f"{c.code} {c.verification}" for c in r.containers}
    if r.adr:
        out["adr"] = f"{r.adr.kemler}/{r.adr.un}" if r.adr.kemler else "blank or unread"
    if r.xray:
        out["xray"] = r.xray.scan_id
    if r.coverage.notes:
        out["coverage"] = r.coverage.notes
    if r.start and r.end:
        out["duration_s"] = round((r.end - r.start).total_seconds(), 2)
    return out
