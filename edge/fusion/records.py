"""An open crossing -> its :class:`CrossingRecord`: the weight, radiation, thermal, coverage and
cargo parts of the event, each a pure function of what the vehicle's crossing gathered."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace

from edge.cargo.xray import scanner_comparable, unchecked_note, unscanned_note
from edge.cargo.xray_link import xray_record
from edge.crossing import CrossingRecord
from edge.events import (
    Coverage,
    PlatePosition,
    Radiation,
    SensorCoverage,
    SensorState,
    Thermal,
    ThermalRegion,
    Weight,
)
from edge.fusion.alarms import LIGHT_VEHICLE_KG, crossing_alarms
from edge.fusion.model import Device, NeighbourSighting, OpenCrossing
from edge.fusion.plates import vote, winner
from edge.fusion.settings import FusionSettings

# Devices every vehicle must pass; a crossing they did not see is flagged, with these words.
SCREENING = {
    "rpm": "reported no occupancy for this vehicle",
    "weighbridge": "reported no stable weight for this vehicle",
}

COVERAGE_WORDS = {
    "rpm": "not radiation-screened",
    "weighbridge": "not weighed",
    "anpr": "plate not read",
    "thermal": "no thermal scan",
    "laneio": "no loop presence",
    "xray": "not X-rayed",
}
# What a device that was not UP during a crossing still delivered for it: the note then says
# so, instead of "not weighed" beside a stable weight.
DELIVERED_WORDS = {
    "rpm": "radiation-screened all the same",
    "weighbridge": "weighed all the same",
    "anpr": "plate read all the same",
    "thermal": "thermal scan taken all the same",
    "laneio": "loop presence seen all the same",
}


def snapshot(
    opened: OpenCrossing,
    *,
    devices: Mapping[str, Device],
    settings: FusionSettings,
    scanners: Sequence[str],
    neighbours: Iterable[NeighbourSighting],
    final: bool = False,
) -> CrossingRecord:
    """The crossing as it stands (``final``: at its ``end``), as a copy the caller may keep."""
    record = opened.record
    record.plates = [
        vote(observations, position, top_n=settings.top_n)
        for position, observations in sorted(opened.plates.items())
        if observations
    ]
    record.weight = weight(opened)
    record.radiation = radiation(opened)
    record.thermal = thermal(opened)
    record.coverage = coverage(opened, devices, final=final)
    record.axle_count = opened.axle_count()
    record.vehicle_class = current_class(opened)
    record.containers = opened.cargo.containers()
    record.adr = opened.cargo.adr_field()
    if opened.xray is not None:
        record.xray = xray_record(*opened.xray)
    note = unscanned_note(
        lane_type=settings.lane_type,
        xray_devices=scanners,
        scanned=opened.xray is not None,
        vehicle_class=record.vehicle_class,
    )
    if opened.xray is not None:
        comparable = scanner_comparable(
            {p.position: [p.text] for p in record.plates}, record.vehicle_class
        )
        note = unchecked_note(opened.xray[0], comparable)  # scanned: no unscanned note
    if final and note is not None:
        record.coverage = record.coverage.model_copy(
            update={"notes": [*record.coverage.notes, note]}
        )
    record.alarms = crossing_alarms(
        opened, record, settings=settings, neighbours=neighbours, final=final
    )
    if final:
        record.evidence_keys = {
            position.value: key
            for position, observations in opened.plates.items()
            if observations and (key := winner(observations).frame_key) is not None
        }
    if opened.occupancy is not None and opened.occupancy.speed_kmh is not None:
        record.speed_kmh = opened.occupancy.speed_kmh
    return replace(
        record, plates=list(record.plates), alarms=list(record.alarms), trace=list(record.trace)
    )


def current_class(opened: OpenCrossing) -> str | None:
    """The vehicle's class from what was measured of it so far."""
    measured = weight(opened)
    return vehicle_class(
        opened.axle_count(),
        measured.gross_kg if measured is not None else None,
        trailer=PlatePosition.TRAILER in opened.plates,
    )


def scanner_plates(opened: OpenCrossing) -> tuple[str, ...]:
    """Every text read of the plates an X-ray scanner's plate is checked against."""
    return scanner_comparable(
        {position.value: [p.text for p in reads] for position, reads in opened.plates.items()},
        current_class(opened),
    )


def vehicle_class(axles: int | None, gross_kg: float | None, *, trailer: bool) -> str | None:
    """A coarse class from what was measured, or None when nothing tells.

    ``articulated`` (a trailer plate, or 5+ axles), ``light_vehicle`` (3.5 t or less),
    ``heavy_vehicle`` (heavier, or 3-4 axles: a rigid truck, a bus or a light semi-trailer).
    """
    if trailer or (axles is not None and axles >= 5):
        return "articulated"
    if gross_kg is not None:
        return "light_vehicle" if gross_kg <= LIGHT_VEHICLE_KG else "heavy_vehicle"
    if axles is not None and axles >= 3:
        return "heavy_vehicle"
    return None


def weight(opened: OpenCrossing) -> Weight | None:
    stable = [w for w in opened.weights if w.stable]
    if not stable:
        return None
    # The vehicle wholly on the deck is the heaviest stable plateau.
    best = max(stable, key=lambda w: w.gross_kg)
    return Weight(
        gross_kg=best.gross_kg,
        stable=True,
        device=best.device_id,
        division_kg=best.division_kg,
    )


def radiation(opened: OpenCrossing) -> Radiation | None:
    o = opened.occupancy
    if o is None:
        return None
    return Radiation(
        device=o.device_id,
        occupancy_start=o.start,
        occupancy_end=o.end,
        gamma_max_cps=float(o.gamma_max_cps),
        # Counts are whole numbers; a background or a sigma shown past 0.1 / 0.01 is noise.
        gamma_background_cps=_rounded(o.gamma_background_cps, 1),
        neutron_max_cps=float(o.neutron_max),
        neutron_background_cps=_rounded(o.neutron_background, 1),
        sigma=_rounded(o.sigma, 2),
        gamma_alarm=o.gamma_alarm,
        neutron_alarm=o.neutron_alarm,
    )


def thermal(opened: OpenCrossing) -> Thermal | None:
    if not opened.thermal:
        return None
    best: dict[int, tuple[float, bool]] = {}
    for reading in opened.thermal:
        for region in reading.regions:
            if not region.valid or region.max_c is None:
                continue
            peak, alarm = best.get(region.index, (float("-inf"), False))
            best[region.index] = (max(peak, region.max_c), alarm or region.alarm)
    device = opened.thermal[-1].device_id
    return Thermal(
        device=device,
        regions=[
            ThermalRegion(region=f"region{i}", max_c=round(peak, 2), alarm=alarm)
            for i, (peak, alarm) in sorted(best.items())
        ],
    )


def coverage(opened: OpenCrossing, devices: Mapping[str, Device], *, final: bool) -> Coverage:
    """Each device's worst state during the crossing and whether it saw the vehicle, with a
    note for every gap (a device down, or up and silent about a vehicle it must screen)."""
    sensors, notes = [], []
    for device_id, device in devices.items():
        state, reason = opened.worst.get(device_id, (SensorState.UP, None))
        sensors.append(
            SensorCoverage(
                device=device_id,
                kind=device.kind,
                state=state,
                saw_vehicle=device_id in opened.saw,
                reason=reason,
                frames_read=opened.frames_read.get(device_id, 0)
                if device.device_class == "anpr" and device.role != "overview"
                else None,
            )
        )
        words = COVERAGE_WORDS.get(device.device_class, "sensor unavailable")
        why = f" ({reason})" if reason else ""
        if state != SensorState.UP and _delivered(opened, device_id, device.device_class):
            notes.append(
                f"{device_id} {state.value} during this crossing{why}; "
                f"{DELIVERED_WORDS.get(device.device_class, 'its reading used')}"
            )
        elif state != SensorState.UP:
            notes.append(f"{words}: {device_id} {state.value}{why}")
        elif final and device.device_class in SCREENING and device_id not in opened.saw:
            # Up, yet silent about this vehicle: say so rather than leave a gap unexplained.
            notes.append(f"{words}: {device_id} {SCREENING[device.device_class]}")
    if final and not opened.plates:
        notes.append("unidentified: no plate read")
    return Coverage(sensors=sensors, notes=notes)


def _delivered(opened: OpenCrossing, device_id: str, device_class: str) -> bool:
    """The device gave this vehicle what it is there for (a weight, a screening ...)."""
    record = opened.record
    if device_class == "weighbridge":
        return record.weight is not None
    if device_class == "rpm":
        return record.radiation is not None
    if device_class == "thermal":
        return record.thermal is not None
    if device_class == "anpr":
        return any(o.camera == device_id for obs in opened.plates.values() for o in obs)
    return device_id in opened.saw


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
