"""How readings become crossings: the fusion settings a lane may change."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field

from edge.config.base import IDENTIFIER, StrictModel


class FusionConfig(StrictModel):
    """How readings become crossings (edge.fusion.settings.FusionSettings)."""

    presence_order: list[Literal["io", "weight", "rpm", "camera"]] | None = Field(
        None, description="Presence sources, best first. Default by lane type."
    )
    presence_inputs: list[str] = Field(
        ["entry_loop", "exit_loop", "light_curtain"], description="Lane I/O inputs = presence."
    )
    presence_kg: float = Field(300.0, ge=0, description="Weight above this means a vehicle.")
    settle_s: float = Field(
        1.5, gt=0, description="Lane clear this long ends the crossing (late results attach)."
    )
    min_presence_s: float = Field(0.6, ge=0, description="Shorter, with no evidence: ignored.")
    thermal_vehicle_c: float = Field(
        5.0,
        gt=0,
        description="A thermal region this much warmer than it shows the empty lane saw a "
        "vehicle (the camera reports every poll, vehicle or not).",
    )
    min_gap_s: float = Field(
        1.0, ge=0, description="No exit loop: a clear lane this long means the next vehicle."
    )
    max_crossing_s: float = Field(600.0, gt=0, description="Longer: ended as a timeout.")
    parked_s: float = Field(60.0, ge=0, description="The last plate seen again: ignored.")
    axle_counter: str = Field(
        "axles", description="Lane I/O counter wired to the axle detector (counters: {...})."
    )
    max_axle_kg: float = Field(
        13_000.0, gt=0, description="More weight per counted axle raises axle_mismatch."
    )
    neighbour_lanes: list[Annotated[str, Field(pattern=IDENTIFIER)]] = Field(
        [],
        description="Lanes of this checkpoint whose crossings are watched (same broker): our "
        "plate read there at the same time raises plate_in_neighbour_lane.",
    )
    neighbour_window_s: float = Field(
        10.0, ge=0, description="How close in time a neighbour's read of our plate counts."
    )
    xray_wait_s: float = Field(
        60.0,
        ge=0,
        le=3600,
        description="Truck lane with an X-ray device: how long past settle_s a truck's end "
        "waits for its scan; a later scan goes out alone on the xray topic (docs/cargo.md).",
    )
    xray_clock_tolerance_s: float = Field(
        5.0,
        ge=0,
        le=300,
        description="A scan's own start..finish is widened by this when matched to a crossing.",
    )
    xray_max_offset_s: float = Field(
        600.0, gt=0, le=86400, description="A scanner clock sample further off is refused."
    )
    xray_clock_offset: bool = Field(
        True,
        description="Estimate the scanner's clock offset from its scans' times; false: trust "
        "both clocks as NTP-synchronised (an export always later than the tolerance).",
    )
