"""Modbus TCP device simulators on real pymodbus 3.x servers.

:class:`ModbusSimServer` keeps a plain model (coils, discrete inputs, holding and input
registers as lists) and copies it into pymodbus' store on every request, through the
SimDevice ``action`` hook; writes from the client land in the model. Faults: ``exception``
(device failure replies), ``stall`` (no reply), ``disconnect`` (drop clients), ``freeze``
(model stops updating). Device models (thermal camera, lane I/O module, Aspect RPM, scale
indicator) build on it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from drivers.rpm.aspect import AspectMonitor, encode_monitor
from drivers.thermal import maps
from drivers.weighbridge.modbus import encode_value
from simulators.faults import FaultState

if TYPE_CHECKING:
    from pymodbus.constants import ExcCodes

_FC_TABLE = {1: "c", 5: "c", 15: "c", 2: "d", 3: "h", 6: "h", 16: "h", 23: "h", 4: "i"}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


class ModbusSimServer:
    def __init__(
        self,
        *,
        unit: int = 1,
        host: str = "127.0.0.1",
        port: int = 0,
        bits: int = 64,
        registers: int = 2048,
        rtu_port: str | None = None,
    ) -> None:
        self.unit = unit
        self.rtu_port = rtu_port
        self.host = host
        self.port = port
        self.coils = [False] * bits
        self.discrete = [False] * bits
        self.holding = [0] * registers
        self.input = [0] * registers
        self.faults = FaultState()
        self.on_read: Callable[[], None] | None = None
        self.on_write: Callable[[str, int, list[int] | list[bool]], None] | None = None
        self.requests = 0
        self._server: object | None = None
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> int:
        from pymodbus.server import ModbusTcpServer
        from pymodbus.simulator import SimData, SimDevice
        from pymodbus.simulator.simutils import DataType

        # pymodbus warns loudly about every client that goes away; the simulator expects it.
        logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
        device = SimDevice(
            self.unit,
            simdata=(
                [SimData(0, values=list(self.coils), datatype=DataType.BITS)],
                [SimData(0, values=list(self.discrete), datatype=DataType.BITS)],
                [SimData(0, values=list(self.holding), datatype=DataType.REGISTERS)],
                [SimData(0, values=list(self.input), datatype=DataType.REGISTERS)],
            ),
            action=self._action,
        )
        if self.rtu_port is not None:
            from pymodbus.server import ModbusSerialServer

            serial_server = ModbusSerialServer(device, port=self.rtu_port, baudrate=9600)
            self._server = serial_server
            self._task = asyncio.create_task(serial_server.serve_forever())
            await asyncio.sleep(0.1)
            return 0
        self.port = self.port or free_port(self.host)
        server = ModbusTcpServer(device, address=(self.host, self.port))
        self._server = server
        self._task = asyncio.create_task(server.serve_forever())
        for _ in range(100):  # until it listens
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection(self.host, self.port)
                writer.close()
                break
            await asyncio.sleep(0.02)
        return self.port

    async def stop(self) -> None:
        server = self._server
        if server is not None:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await server.shutdown()  # type: ignore[attr-defined]
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._task

    async def inject(
        self, kind: str, *, count: int = 1, duration_s: float = 0.0, **params: float | str
    ) -> None:
        self.faults.inject(kind, count=count, duration_s=duration_s, **params)
        if kind == "disconnect":
            self.faults.take("disconnect")
            server = self._server
            for conn in list(getattr(server, "active_connections", {}).values()):
                conn.close()

    async def _action(
        self,
        function_code: int,
        start_address: int,
        address: int,
        count: int,
        registers: list[int],
        values: list[int] | list[bool] | None,
    ) -> ExcCodes | None:
        from pymodbus.constants import ExcCodes
        from pymodbus.simulator.simutils import SimUtils

        self.requests += 1
        if self.faults.active("stall"):
            await asyncio.sleep(max(0.0, self.faults.until["stall"] - time.monotonic()))
            return ExcCodes.DEVICE_BUSY
        if self.faults.active("exception") or self.faults.take("exception"):
            return ExcCodes.DEVICE_FAILURE
        table = _FC_TABLE.get(function_code, "h")
        models: dict[str, list[bool] | list[int]]
        models = {"c": self.coils, "d": self.discrete, "h": self.holding, "i": self.input}
        model = models[table]  # bits for "c"/"d", words for "h"/"i": the ignores below rely on it
        if values is not None:
            for i, v in enumerate(values):
                if address + i < len(model):
                    model[address + i] = bool(v) if table in "cd" else int(v)  # type: ignore[call-overload]
            if self.on_write is not None:
                self.on_write(table, address, values)
        elif self.on_read is not None and not self.faults.active("freeze"):
            self.on_read()
        registers[:] = SimUtils.bitsToRegisters(model) if table in "cd" else model  # type: ignore[arg-type]
        return None


# -- thermal camera ------------------------------------------------------------------------

Region = tuple[float, float, float]  # (max, min, avg) in degC


class ModbusDevice(ABC):
    """A device model behind a :class:`ModbusSimServer`: its registers are refreshed from the
    model on every read (``_refresh``); faults are injected into the server."""

    def __init__(self, server: ModbusSimServer) -> None:
        self.server = server
        self.server.on_read = self._refresh
        self.port = server.port
        self._t0 = time.monotonic()

    @property
    def faults(self) -> FaultState:
        return self.server.faults

    async def start(self) -> int:
        self._t0 = time.monotonic()
        self._refresh()
        self.port = await self.server.start()
        return self.port

    async def stop(self) -> None:
        await self.server.stop()

    async def inject(self, kind: str, **kwargs: float | str | int) -> None:
        await self.server.inject(kind, **kwargs)  # type: ignore[arg-type]

    @abstractmethod
    def _refresh(self) -> None:
        """Write the model's current state into the server's registers."""


class ThermalSimulator(ModbusDevice):
    """FLIR float map (input registers, Kelvin) or InfiRay deci-Kelvin map (holding)."""

    def __init__(
        self,
        map: Literal["flir", "infiray"] = "flir",
        *,
        regions: int = 6,
        ambient_c: float = 12.0,
        alarm_c: float = 80.0,
        hysteresis_c: float = 3.0,
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.map = map
        self.regions = regions
        super().__init__(ModbusSimServer(port=port))
        self.rng = random.Random(seed)
        self.ambient_c = ambient_c
        self.alarm_c = alarm_c
        self.hysteresis_c = hysteresis_c
        self.temps: list[Region] = [(ambient_c + 1, ambient_c - 1, ambient_c)] * regions
        self.profile: Callable[[float], list[Region]] | None = None
        self._alarm = [False] * regions

    def set_regions(self, temps: list[Region]) -> None:
        self.profile = None
        self.temps = list(temps) + self.temps[len(temps) :]

    def _refresh(self) -> None:
        if self.profile is not None:
            self.temps = self.profile(time.monotonic() - self._t0)
        valid = not self.faults.active("detector")
        for k, (mx, mn, avg) in enumerate(self.temps[: self.regions]):
            # Alarm with hysteresis, like the camera's own alarm function.
            if mx >= self.alarm_c:
                self._alarm[k] = True
            elif mx < self.alarm_c - self.hysteresis_c:
                self._alarm[k] = False
            if self.map == "flir":
                base = maps.FLIR_BASE + k * maps.FLIR_STRIDE
                regs = maps.encode_flir_box(mx, mn, mx, avg, valid=valid)
                self.server.input[base : base + maps.FLIR_STRIDE] = regs
            else:
                base = maps.INFIRAY_BASE + k * maps.INFIRAY_STRIDE
                regs = maps.encode_infiray_region(mx, avg, mn, valid=valid, alarm=self._alarm[k])
                self.server.holding[base : base + maps.INFIRAY_STRIDE] = regs
        if self.map == "infiray" and self.temps:
            frame = [max(t[0] for t in self.temps), sum(t[2] for t in self.temps) / len(self.temps),
                     min(t[1] for t in self.temps)]  # fmt: skip
            for i, value in enumerate(frame):
                self.server.holding[maps.INFIRAY_FRAME + 2 * i] = maps.deci_kelvin(value)


# -- lane I/O module -----------------------------------------------------------------------


class LaneIoSimulator(ModbusDevice):
    """A Moxa E1200 / ADAM-6050 style DI/DO module wired to loops, curtain and barrier.

    ``barrier`` output drives a barrier that travels ``barrier_travel_s`` and reports its
    limit switches on ``barrier_open``/``barrier_closed`` inputs (when configured).
    ``counters`` are DI pulse counters (name -> first input register, u32 high word first),
    e.g. an axle detector; ``count[name]`` is their running total.
    """

    def __init__(
        self,
        *,
        map: Literal["moxa", "adam6050"] = "moxa",
        inputs: dict[str, int] | None = None,
        outputs: dict[str, int] | None = None,
        counters: dict[str, int] | None = None,
        barrier_travel_s: float = 3.0,
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.map = map
        self.di_base, self.do_base = {"moxa": (0, 0), "adam6050": (0, 16)}[map]
        self.inputs = inputs or {
            "entry_loop": 0, "exit_loop": 1, "light_curtain": 2,
            "barrier_open": 3, "barrier_closed": 4,
        }  # fmt: skip
        self.outputs = outputs or {"barrier": 0, "light_green": 1, "light_red": 2}
        self.counters = counters if counters is not None else {"axles": 16}
        self.count = dict.fromkeys(self.counters, 0)
        super().__init__(ModbusSimServer(port=port))
        self.server.on_write = self._written
        self.rng = random.Random(seed)
        self.barrier_travel_s = barrier_travel_s
        self.state = dict.fromkeys(self.inputs, False)
        self.stuck_relays: set[str] = set()
        self._barrier_cmd = False
        self._barrier_pos = 0.0  # 0 closed .. 1 open
        self._barrier_t = time.monotonic()

    def set_input(self, name: str, value: bool) -> None:
        self.state[name] = value

    def output(self, name: str) -> bool:
        return self.server.coils[self.do_base + self.outputs[name]]

    def _written(self, table: str, address: int, values: list[int] | list[bool]) -> None:
        if table != "c":
            return
        for name, ch in self.outputs.items():
            index = self.do_base + ch - address
            if 0 <= index < len(values):
                if name in self.stuck_relays:
                    # The relay does not follow its coil: the read-back shows the old state.
                    self.server.coils[self.do_base + ch] = not bool(values[index])
                elif name == "barrier":
                    self._barrier_cmd = bool(values[index])

    def _refresh(self) -> None:
        now = time.monotonic()
        step = (now - self._barrier_t) / self.barrier_travel_s
        self._barrier_t = now
        target = 1.0 if self._barrier_cmd else 0.0
        if self._barrier_pos < target:
            self._barrier_pos = min(target, self._barrier_pos + step)
        else:
            self._barrier_pos = max(target, self._barrier_pos - step)
        if "barrier_open" in self.inputs:
            self.state["barrier_open"] = self._barrier_pos >= 1.0
        if "barrier_closed" in self.inputs:
            self.state["barrier_closed"] = self._barrier_pos <= 0.0
        shown = dict(self.state)
        loop = str(self.faults.params.get("chatter", {}).get("input", "entry_loop"))
        if self.faults.active("chatter") and loop in shown:
            shown[loop] = self.rng.random() < 0.5
        stuck = str(self.faults.params.get("locked_on", {}).get("input", "entry_loop"))
        if self.faults.active("locked_on") and stuck in shown:
            shown[stuck] = True
        for name, ch in self.inputs.items():
            self.server.discrete[self.di_base + ch] = shown[name]
        for name, address in self.counters.items():
            value = self.count[name] & 0xFFFFFFFF
            self.server.input[address : address + 2] = [value >> 16, value & 0xFFFF]


# -- Aspect RPM ----------------------------------------------------------------------------


@dataclass
class AspectTruth:
    object_counter: int
    gamma_alarm: bool
    neutron_alarm: bool
    gamma_max: int


class AspectSimulator(ModbusDevice):
    """Monitor registers at ``base`` (low word first), updated as vehicles pass."""

    def __init__(
        self,
        *,
        base: int = 100,
        gamma_background: float = 850.0,
        neutron_background: float = 4.0,
        nsigma: float = 6.0,
        port: int = 0,
        seed: int = 0,
    ) -> None:
        self.base = base
        super().__init__(ModbusSimServer(port=port))
        self.rng = random.Random(seed)
        self.gamma_background = gamma_background
        self.neutron_background = neutron_background
        self.nsigma = nsigma
        self.truth: list[AspectTruth] = []
        self.object_counter = 0
        self._inputs = 0x80  # Dir10 idle
        self._gamma = int(gamma_background)
        self._neutron = int(neutron_background)
        self._gamma_status = 0x80
        self._neutron_status = 0x80
        self._speed = 0
        self._mark = 0
        # Description block at 0: signature, count, monitor id, base, n.
        self.server.holding[0:5] = [0x4153, 1, 1, base, 21]

    async def pass_vehicle(
        self,
        *,
        duration_s: float = 1.0,
        gamma_cps: float = 0.0,
        neutron_cps: float = 0.0,
        speed_kmh: float = 8.0,
        axles: int = 5,
        step_s: float = 0.05,
    ) -> AspectTruth:
        self.object_counter += 1
        threshold = self.gamma_background + self.nsigma * math.sqrt(self.gamma_background)
        steps = max(1, round(duration_s / step_s))
        truth = AspectTruth(self.object_counter, False, False, 0)
        self._speed = round(speed_kmh / 0.0036)
        self._mark = axles
        for i in range(steps):
            shape = math.sin(math.pi * (i + 0.5) / steps) ** 2
            gamma = max(
                0,
                round(
                    self.rng.gauss(self.gamma_background, math.sqrt(self.gamma_background))
                    + gamma_cps * shape
                ),
            )
            neutron = max(0, round(self.neutron_background + neutron_cps * shape))
            truth.gamma_alarm |= gamma > threshold
            truth.neutron_alarm |= neutron > self.neutron_background + 6 * math.sqrt(
                max(self.neutron_background, 1)
            )
            truth.gamma_max = max(truth.gamma_max, gamma)
            self._inputs = 0x80 | 0x01 | (0x02 if i > steps // 3 else 0)
            self._gamma, self._neutron = gamma, neutron
            self._gamma_status = 0x80 | (0x01 if truth.gamma_alarm else 0)
            self._neutron_status = 0x80 | (0x01 if truth.neutron_alarm else 0)
            await asyncio.sleep(step_s)
        self._inputs = 0x80
        self._gamma_status = self._neutron_status = 0x80
        self._gamma = int(self.gamma_background)
        self._neutron = int(self.neutron_background)
        self.truth.append(truth)
        await asyncio.sleep(step_s * 3)
        return truth

    def _refresh(self) -> None:
        gamma_status = self._gamma_status | (0x40 if self.faults.active("detector") else 0)
        monitor = AspectMonitor(
            elapsed=int((time.monotonic() - self._t0) * 1000),
            inputs=self._inputs,
            gamma_status=gamma_status,
            gamma_count=self._gamma,
            gamma_background=self.gamma_background,
            gamma_variance=self.gamma_background,
            neutron_status=self._neutron_status,
            neutron_count=self._neutron,
            neutron_background=self.neutron_background,
            neutron_variance=self.neutron_background,
            object_counter=self.object_counter,
            object_mark=self._mark,
            speed_mm_s=self._speed,
            outputs=0x1 if self._gamma_status & 1 or self._neutron_status & 1 else 0,
        )
        self.server.holding[self.base : self.base + 21] = encode_monitor(monitor)


# -- Modbus weighing indicator -------------------------------------------------------------


class ModbusScaleSimulator(ModbusDevice):
    """Weight as int32 (high word first) at holding 0, status at 2 (b0 motion, b1 overload)."""

    WEIGHT = 0
    STATUS = 2
    COMMAND = 10

    def __init__(
        self,
        *,
        division_kg: float = 10.0,
        capacity_kg: float = 80_000.0,
        port: int = 0,
        rtu_port: str | None = None,
    ) -> None:
        super().__init__(ModbusSimServer(port=port, rtu_port=rtu_port))
        self.server.on_write = self._written
        self.division_kg = division_kg
        self.capacity_kg = capacity_kg
        self.weight_kg = 0.0
        self.motion = False
        self.zero_offset_kg = 0.0
        self.profile: Callable[[float], tuple[float, bool]] | None = None

    def set_weight(self, kg: float, *, motion: bool = False) -> None:
        self.profile = None
        self.weight_kg, self.motion = kg, motion

    def _written(self, table: str, address: int, values: list[int] | list[bool]) -> None:
        if table == "h" and address == self.COMMAND and values and int(values[0]) == 1:
            self.zero_offset_kg = self.weight_kg

    def _refresh(self) -> None:
        if self.profile is not None:
            self.weight_kg, self.motion = self.profile(time.monotonic() - self._t0)
        weight = self.weight_kg - self.zero_offset_kg
        shown = round(weight / self.division_kg) * self.division_kg
        self.server.holding[self.WEIGHT : self.WEIGHT + 2] = encode_value(shown, "int32", "big")
        overload = shown > self.capacity_kg
        self.server.holding[self.STATUS] = int(self.motion) | (int(overload) << 1)
