"""Thermal camera driver: per-region max/min/avg over Modbus TCP, FLIR or InfiRay map."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, model_validator

from drivers.modbus import ModbusDriver, ModbusOptions
from drivers.readings import ThermalRegions
from drivers.thermal import maps


class ThermalOptions(ModbusOptions):
    map: Literal["flir", "infiray"] = "flir"
    regions: int = Field(6, ge=1, le=16, description="Boxes/regions to read.")
    temperature_unit: Literal["K", "C"] = Field("K", description="FLIR float map only.")
    alarm_c: float | None = Field(
        None, description="Raise a region alarm above this (FLIR has no alarm register)."
    )
    poll_ms: int = Field(250, ge=50, le=60_000)

    @model_validator(mode="after")
    def _fits_map(self) -> ThermalOptions:
        limit = maps.FLIR_MAX_BOXES if self.map == "flir" else maps.INFIRAY_MAX_REGIONS
        if self.regions > limit:
            raise ValueError(f"the {self.map} map has at most {limit} regions")
        return self


class ThermalModbusDriver(ModbusDriver):
    kind = "thermal.modbus"
    options: ThermalOptions

    def __init__(self, device_id: str, options: ThermalOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.last: ThermalRegions | None = None

    async def _poll(self) -> None:
        o = self.options
        if o.map == "flir":
            regs = await self.read_input(maps.FLIR_BASE, o.regions * maps.FLIR_STRIDE)
            regions = maps.decode_flir(
                regs, o.regions, order=o.word_order, kelvin=o.temperature_unit == "K"
            )
        else:
            regs = await self.read_holding(maps.INFIRAY_BASE, o.regions * maps.INFIRAY_STRIDE)
            regions = maps.decode_infiray(regs, o.regions)
        if o.alarm_c is not None:
            regions = tuple(
                maps.ThermalRegion(
                    index=r.index,
                    max_c=r.max_c,
                    min_c=r.min_c,
                    avg_c=r.avg_c,
                    valid=r.valid,
                    alarm=r.alarm or (r.max_c is not None and r.max_c >= o.alarm_c),
                )
                for r in regions
            )
        # Unused boxes are always invalid; only a region that stops being valid, or a
        # camera with no valid region at all (NUC, detector fault), is a fault.
        was_valid = {r.index for r in self.last.regions if r.valid} if self.last else set()
        lost = [r.index for r in regions if not r.valid and r.index in was_valid]
        any_valid = any(r.valid for r in regions)
        if lost or not any_valid:
            self._fault("invalid_region", f"regions {lost or 'all'} not valid")
        self.last = ThermalRegions(device_id=self.device_id, regions=regions)
        # A camera with no valid region measures nothing: stale (DEGRADED, then DOWN).
        self._emit(self.last, useful=any_valid)
