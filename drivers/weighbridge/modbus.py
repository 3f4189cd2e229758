"""A weighbridge indicator over Modbus TCP/RTU with its register map in config (§1.5).

Maps differ per vendor (word order, 16/32-bit, scale, status bits), so all of it is
configured. Stability is decided by the same filter as the serial drivers; the status
register's motion bit, when mapped, breaks the stable run.
"""

from __future__ import annotations

import math
import struct
from typing import Any, Literal

from pydantic import Field

from drivers.errors import UnsupportedCommandError
from drivers.modbus import ModbusDriver, ModbusOptions, i16, regs_to_f32, regs_to_i32, regs_to_u32
from drivers.options import WeightBounds
from drivers.readings import WeightReading
from drivers.weighbridge.stability import StabilityFilter

ValueType = Literal["int16", "uint16", "int32", "uint32", "float32"]


class ModbusScaleOptions(ModbusOptions, WeightBounds):
    table: Literal["holding", "input"] = "holding"
    weight_address: int = Field(ge=0, le=65535)
    weight_type: ValueType = "int32"
    scale: float = Field(1.0, gt=0, description="kg per count (0.001 if the value is grams).")
    status_address: int | None = Field(None, ge=0, le=65535)
    motion_bit: int | None = Field(None, ge=0, le=15)
    overload_bit: int | None = Field(None, ge=0, le=15)
    not_zeroed_bit: int | None = Field(None, ge=0, le=15)
    command_address: int | None = Field(None, ge=0, le=65535)
    zero_value: int | None = Field(None, ge=0, le=65535)
    tare_value: int | None = Field(None, ge=0, le=65535)
    division_kg: float = Field(10.0, gt=0)
    stable_frames: int = Field(5, ge=1, le=100)


def decode_value(regs: list[int], kind: ValueType, order: Literal["big", "little"]) -> float:
    if kind == "int16":
        return float(i16(regs[0]))
    if kind == "uint16":
        return float(regs[0])
    if kind == "int32":
        return float(regs_to_i32(regs[:2], order))
    if kind == "uint32":
        return float(regs_to_u32(regs[:2], order))
    return regs_to_f32(regs[:2], order)


def encode_value(value: float, kind: ValueType, order: Literal["big", "little"]) -> list[int]:
    if kind in ("int16", "uint16"):
        return [int(value) & 0xFFFF]
    fmt = {"int32": ">i", "uint32": ">I", "float32": ">f"}[kind]
    hi, lo = struct.unpack(">HH", struct.pack(fmt, int(value) if kind != "float32" else value))
    return [hi, lo] if order == "big" else [lo, hi]


class ModbusScaleDriver(ModbusDriver):
    kind = "weighbridge.modbus"
    options: ModbusScaleOptions

    def __init__(self, device_id: str, options: ModbusScaleOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.filter = StabilityFilter(options.stable_frames, options.division_kg)

    async def _read(self, address: int, count: int) -> list[int]:
        if self.options.table == "holding":
            return await self.read_holding(address, count)
        return await self.read_input(address, count)

    async def _poll(self) -> None:
        o = self.options
        size = 1 if o.weight_type in ("int16", "uint16") else 2
        gross = decode_value(await self._read(o.weight_address, size), o.weight_type, o.word_order)
        gross *= o.scale
        if not math.isfinite(gross):
            self._fault("invalid_value", f"weight register holds {gross}")
            self.filter.reset()
            return
        problem = o.weight_problem(gross)
        if problem is not None:
            self._fault("implausible", problem)
            self.filter.reset()
            return
        status = (await self._read(o.status_address, 1))[0] if o.status_address is not None else 0

        def bit(n: int | None) -> bool:
            return n is not None and bool(status >> n & 1)

        motion, overload = bit(o.motion_bit), bit(o.overload_bit)
        stable = self.filter.feed(gross, motion=motion or overload)
        self._emit(
            WeightReading(
                device_id=self.device_id,
                gross_kg=gross,
                stable=stable and not overload,
                motion=motion,
                overload=overload,
                not_zeroed=bit(o.not_zeroed_bit),
                division_kg=o.division_kg,
            )
        )

    async def zero(self) -> None:
        o = self.options
        if o.command_address is None or o.zero_value is None:
            raise UnsupportedCommandError("no command_address/zero_value configured")
        await self.write_register(o.command_address, o.zero_value)

    async def tare(self) -> None:
        o = self.options
        if o.command_address is None or o.tare_value is None:
            raise UnsupportedCommandError("no command_address/tare_value configured")
        await self.write_register(o.command_address, o.tare_value)
