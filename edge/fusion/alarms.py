"""Alarm rules: each a pure function of a crossing's record and what its vehicle gathered
(radiation, heat, no plate, class and axle cross-checks, a plate also read in a neighbouring
lane, cargo and X-ray mismatches). ``final``: the crossing has ended; rules that need the whole
crossing (an unidentified vehicle, class and axles) only then."""

from __future__ import annotations

from collections.abc import Iterable

from edge.cargo.xray import scanner_comparable, xray_mismatch_alarm
from edge.crossing import CrossingRecord
from edge.events import Alarm, PlatePosition
from edge.fusion.model import NeighbourSighting, OpenCrossing
from edge.fusion.settings import FusionSettings

LIGHT_VEHICLE_KG = 3500.0  # at most: a car or small van (category M1/N1)


def crossing_alarms(
    opened: OpenCrossing,
    record: CrossingRecord,
    *,
    settings: FusionSettings,
    neighbours: Iterable[NeighbourSighting],
    final: bool,
) -> list[Alarm]:
    """Every alarm the crossing raises, in a stable order."""
    alarms = radiation_alarms(record)
    alarms += thermal_alarms(record, hot_c=settings.thermal_alarm_c)
    if final and not record.plates and (record.weight is not None or opened.occupancy):
        alarms.append(
            Alarm(
                code="crossing.unidentified",
                severity="warning",
                message="vehicle weighed or screened but no plate read",
            )
        )
    alarms += neighbour_alarms(record, neighbours, window_s=settings.neighbour_window_s)
    alarms += opened.cargo.alarms()
    if opened.xray is not None:
        mismatch = xray_mismatch_alarm(
            opened.xray[0],
            plates=scanner_comparable(
                {p.position: [p.text] for p in record.plates}, record.vehicle_class
            ),
            containers=opened.cargo.codes_read(),
        )
        alarms += [mismatch] if mismatch is not None else []
    if final:
        alarms += axle_alarms(record, settings=settings)
        alarms += class_alarms(record, lane_type=settings.lane_type)
    return alarms


def radiation_alarms(record: CrossingRecord) -> list[Alarm]:
    radiation = record.radiation
    alarms = []
    if radiation is not None and radiation.gamma_alarm:
        alarms.append(
            Alarm(
                code="radiation.gamma",
                severity="critical",
                message=f"gamma alarm, max {radiation.gamma_max_cps:.0f} cps",
                device=radiation.device,
            )
        )
    if radiation is not None and radiation.neutron_alarm:
        alarms.append(
            Alarm(
                code="radiation.neutron",
                severity="critical",
                message="neutron alarm",
                device=radiation.device,
            )
        )
    return alarms


def thermal_alarms(record: CrossingRecord, *, hot_c: float) -> list[Alarm]:
    """A region the camera flagged, or one at ``hot_c`` or more."""
    if record.thermal is None:
        return []
    hot = [r for r in record.thermal.regions if r.alarm or r.max_c >= hot_c]
    if not hot:
        return []
    return [
        Alarm(
            code="thermal.hot",
            severity="warning",
            device=record.thermal.device,
            message="hot: " + ", ".join(f"{r.region} {r.max_c:.1f} C" for r in hot),
        )
    ]


def class_alarms(record: CrossingRecord, *, lane_type: str) -> list[Alarm]:
    """The weighed vehicle against the lane's type: a heavy one in a car lane, a light one in
    a truck lane."""
    if record.weight is None:
        return []
    weight = record.weight.gross_kg
    if lane_type == "car" and weight > LIGHT_VEHICLE_KG:
        return [
            Alarm(
                code="crossing.class_mismatch",
                severity="warning",
                message=f"{weight:.0f} kg in a car lane",
            )
        ]
    if lane_type == "truck" and weight <= LIGHT_VEHICLE_KG:
        return [
            Alarm(
                code="crossing.class_mismatch",
                severity="info",
                message=f"light vehicle ({weight:.0f} kg) in a truck lane",
            )
        ]
    return []


def axle_alarms(record: CrossingRecord, *, settings: FusionSettings) -> list[Alarm]:
    """Axle count against the vehicle's class: weight, trailer plate and lane type."""
    axles = record.axle_count
    if not axles:
        return []
    weight = record.weight.gross_kg if record.weight is not None else None
    most = settings.max_axle_kg
    problems = []
    if weight is not None and axles >= 3 and weight <= LIGHT_VEHICLE_KG:
        problems.append(f"{axles} axles counted but {weight:.0f} kg weighed")
    if weight is not None and weight / axles > most:
        problems.append(
            f"{weight:.0f} kg on {axles} axles ({weight / axles:.0f} kg per axle, more than "
            f"{most:.0f}): axles miscounted or overloaded"
        )
    if any(p.position == PlatePosition.TRAILER for p in record.plates) and axles < 3:
        problems.append(f"a trailer plate was read but only {axles} axles counted")
    if settings.lane_type == "car" and axles > 2:
        problems.append(f"{axles} axles in a car lane")
    return [
        Alarm(code="crossing.axle_mismatch", severity="warning", message=problem)
        for problem in problems
    ]


def neighbour_alarms(
    record: CrossingRecord, neighbours: Iterable[NeighbourSighting], *, window_s: float
) -> list[Alarm]:
    """Our plate read in a neighbouring lane at the same time: a camera seeing across
    lanes, or two vehicles with one plate (cloned plates)."""
    ours_from, ours_to = record.start, record.end or record.start
    sightings = list(neighbours)
    alarms = []
    for plate in record.plates:
        for sighting in sightings:
            if plate.text not in sighting.plates:
                continue
            gap = max(
                (sighting.start - ours_to).total_seconds(),
                (ours_from - (sighting.end or sighting.start)).total_seconds(),
            )
            if gap <= window_s:
                alarms.append(
                    Alarm(
                        code="crossing.plate_in_neighbour_lane",
                        severity="warning",
                        message=(
                            f"plate {plate.text} ({plate.position}) also read in lane "
                            f"{sighting.lane} at {sighting.start:%H:%M:%S} "
                            f"(crossing {sighting.crossing_id})"
                        ),
                    )
                )
                break
    return alarms
