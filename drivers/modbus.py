"""Shared Modbus client plumbing for Modbus drivers (pymodbus 3.x, TCP or RTU).

A :class:`ModbusDriver` polls every ``poll_ms``. An exception reply means the device is
alive but refusing: it is counted (DEGRADED). A poll is *useful* only when its values
decode and are plausible (each driver's ``_poll`` says so by emitting, or calling
``_useful()``); no useful poll for the device timeout plus a poll period is DEGRADED, for
twice that DOWN (reconnect), whether the device answers exceptions, absurd values or
nothing valid. No reply within the timeout, or a dropped socket, is a transient error
(DOWN, reconnect with backoff).
"""

from __future__ import annotations

import asyncio
import struct
import time
from abc import abstractmethod
from typing import Any, Literal

from pydantic import Field

from drivers.base import Driver
from drivers.errors import (
    DriverConnectionError,
    DriverTimeoutError,
    MissingExtraError,
)
from drivers.options import StrictOptions

WordOrder = Literal["big", "little"]


class ModbusOptions(StrictOptions):
    host: str | None = Field(None, description="Modbus TCP host (or use rtu_url).")
    port: int = Field(502, ge=1, le=65535)
    rtu_url: str | None = Field(None, description="Serial port for Modbus RTU instead of TCP.")
    baudrate: int = Field(9600, ge=300, le=921_600)
    unit: int = Field(1, ge=0, le=255, description="Modbus unit (slave) id.")
    poll_ms: int = Field(200, ge=10, le=60_000)
    word_order: WordOrder = Field("big", description="32-bit values: big = high word first.")


class ModbusReplyError(Exception):
    """A reply that came but cannot be used: counted as a fault, the session goes on."""

    fault = "modbus_reply"


class ModbusExceptionReply(ModbusReplyError):
    fault = "modbus_exception"

    def __init__(self, code: int, what: str) -> None:
        super().__init__(f"Modbus exception {code:02d} reading {what}")
        self.code = code


class ModbusShortReply(ModbusReplyError):
    fault = "short_reply"


def _enough(values: list[Any], count: int, what: str) -> list[Any]:
    if len(values) < count:
        raise ModbusShortReply(f"{len(values)} values in the reply to {what}, asked {count}")
    return values[:count]


def regs_to_f32(regs: list[int], order: WordOrder = "big") -> float:
    hi, lo = (regs[0], regs[1]) if order == "big" else (regs[1], regs[0])
    return float(struct.unpack(">f", struct.pack(">HH", hi, lo))[0])


def f32_to_regs(value: float, order: WordOrder = "big") -> list[int]:
    hi, lo = struct.unpack(">HH", struct.pack(">f", value))
    return [hi, lo] if order == "big" else [lo, hi]


def regs_to_u32(regs: list[int], order: WordOrder = "big") -> int:
    hi, lo = (regs[0], regs[1]) if order == "big" else (regs[1], regs[0])
    return (hi << 16) | lo


def regs_to_i32(regs: list[int], order: WordOrder = "big") -> int:
    value = regs_to_u32(regs, order)
    return value - (1 << 32) if value & 0x8000_0000 else value


def u32_to_regs(value: int, order: WordOrder = "big") -> list[int]:
    value &= 0xFFFF_FFFF
    hi, lo = value >> 16, value & 0xFFFF
    return [hi, lo] if order == "big" else [lo, hi]


def i16(value: int) -> int:
    return value - 0x10000 if value & 0x8000 else value


class ModbusDriver(Driver):
    options: ModbusOptions

    def __init__(self, device_id: str, options: ModbusOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.client: Any = None
        self.polls = 0

    @property
    def stale_after_s(self) -> float:
        return self.timeout_s + self.options.poll_ms / 1000

    @property
    def endpoint(self) -> str:
        o = self.options
        return o.rtu_url if o.rtu_url else f"{o.host}:{o.port}"

    async def _connect(self) -> None:
        try:
            from pymodbus.client import AsyncModbusSerialClient, AsyncModbusTcpClient
        except ModuleNotFoundError as exc:  # pragma: no cover - pymodbus is a core dependency
            raise MissingExtraError(self.kind, "pymodbus", "modbus") from exc
        o = self.options
        if o.rtu_url:
            self.client = AsyncModbusSerialClient(
                o.rtu_url,
                baudrate=o.baudrate,
                timeout=self.timeout_s,
                retries=0,
                reconnect_delay=0,
            )
        else:
            if not o.host:
                raise DriverConnectionError("no host or rtu_url configured")
            self.client = AsyncModbusTcpClient(
                o.host, port=o.port, timeout=self.timeout_s, retries=0, reconnect_delay=0
            )
        if not await self.client.connect():
            raise DriverConnectionError(f"cannot connect to Modbus device at {self.endpoint}")

    async def _disconnect(self) -> None:
        if self.client is not None:
            self.client.close()
            self.client = None

    async def _call(self, what: str, method: str, *args: Any, **kwargs: Any) -> Any:
        from pymodbus.exceptions import ConnectionException, ModbusException

        if self.client is None:
            raise DriverConnectionError("not connected")
        try:
            async with asyncio.timeout(self.timeout_s + 0.5):
                reply = await getattr(self.client, method)(
                    *args, device_id=self.options.unit, **kwargs
                )
        except ConnectionException as exc:
            raise DriverConnectionError(f"{self.endpoint}: {exc}") from exc
        except (ModbusException, TimeoutError) as exc:
            raise DriverTimeoutError(f"{self.endpoint}: no reply to {what}") from exc
        if reply.isError():
            raise ModbusExceptionReply(getattr(reply, "exception_code", 0), what)
        return reply

    async def read_holding(self, address: int, count: int) -> list[int]:
        what = f"HR {address}+{count}"
        reply = await self._call(what, "read_holding_registers", address, count=count)
        return _enough(list(reply.registers), count, what)

    async def read_input(self, address: int, count: int) -> list[int]:
        what = f"IR {address}+{count}"
        reply = await self._call(what, "read_input_registers", address, count=count)
        return _enough(list(reply.registers), count, what)

    async def read_discrete(self, address: int, count: int) -> list[bool]:
        what = f"DI {address}+{count}"
        reply = await self._call(what, "read_discrete_inputs", address, count=count)
        return _enough(list(reply.bits), count, what)

    async def read_coils(self, address: int, count: int) -> list[bool]:
        what = f"coils {address}+{count}"
        reply = await self._call(what, "read_coils", address, count=count)
        return _enough(list(reply.bits), count, what)

    async def write_coil(self, address: int, value: bool) -> None:
        await self._call(f"coil {address}", "write_coil", address, value)

    async def write_register(self, address: int, value: int) -> None:
        await self._call(f"HR {address}", "write_register", address, value)

    @abstractmethod
    async def _poll(self) -> None:
        """Read the device once; emit readings (or call ``_useful()``) when the values are
        valid and plausible, count a fault when they are not."""

    async def _session(self) -> None:
        period = self.options.poll_ms / 1000
        while True:
            started = time.monotonic()
            try:
                await self._poll()
                self._alive()
                self.polls += 1
            except ModbusReplyError as exc:
                self._fault(exc.fault, str(exc))
            self._check_useful()
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))
