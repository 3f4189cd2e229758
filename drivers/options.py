"""Option models shared by several drivers (each driver's own model sits beside it)."""

from __future__ import annotations

import math
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class StrictOptions(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SerialOptions(StrictOptions):
    url: str = Field(
        description="pyserial URL: /dev/ttyUSB0, socket://host:4001, rfc2217://host:port"
    )
    baudrate: int = Field(9600, ge=300, le=921_600)
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    stopbits: Literal[1, 2] = 1


class WeightBounds(StrictOptions):
    """Plausibility bounds of a weighbridge: a value outside them is a fault, not a reading."""

    min_plausible_kg: float = Field(
        -1000.0,
        allow_inf_nan=False,
        description="Gross weights below this are faults (an empty deck may read below 0).",
    )
    max_plausible_kg: float = Field(
        200_000.0,
        gt=0,
        allow_inf_nan=False,
        description="Gross weights above this are faults (no road vehicle weighs 200 t).",
    )

    @model_validator(mode="after")
    def _ordered_weight_bounds(self) -> WeightBounds:
        if self.min_plausible_kg >= self.max_plausible_kg:
            raise ValueError("min_plausible_kg must be below max_plausible_kg")
        return self

    def weight_problem(self, kg: float) -> str | None:
        """Why ``kg`` cannot be a real gross weight, or None."""
        if not math.isfinite(kg):
            return f"weight {kg} is not a number"
        if not self.min_plausible_kg <= kg <= self.max_plausible_kg:
            return (
                f"weight {kg:.6g} kg outside {self.min_plausible_kg:g}..{self.max_plausible_kg:g}"
            )
        return None


class RadiationBounds(StrictOptions):
    """Plausibility bounds of a radiation portal monitor's counts (all panels together)."""

    max_gamma_cps: float = Field(
        1e7, gt=0, allow_inf_nan=False, description="Gamma counts/s above this are faults."
    )
    max_neutron_cps: float = Field(
        1e5, gt=0, allow_inf_nan=False, description="Neutron counts/s above this are faults."
    )

    def gamma_problem(self, cps: float, what: str = "gamma") -> str | None:
        if not math.isfinite(cps) or not 0 <= cps <= self.max_gamma_cps:
            return f"{what} {cps:.6g} cps outside 0..{self.max_gamma_cps:g}"
        return None

    def neutron_problem(self, cps: float, what: str = "neutron") -> str | None:
        if not math.isfinite(cps) or not 0 <= cps <= self.max_neutron_cps:
            return f"{what} {cps:.6g} cps outside 0..{self.max_neutron_cps:g}"
        return None
