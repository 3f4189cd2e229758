"""Lane I/O over a Modbus TCP DI/DO module: Moxa ioLogik E1200 or Advantech ADAM-6050.

Inputs and outputs are named in config (``inputs: {entry_loop: 0, ...}``); channel
numbers are offsets from the map's DI/DO base. A state reading is emitted on every
change and at least every ``heartbeat_ms``. Pulse counters (a DI in counter mode, e.g. an axle
detector: ``counters: {axles: 16}``) are read as u32 from two input registers, high word
first (ioLogik E1200 counter registers), and carried on every reading. Outputs are commanded with
:meth:`LaneIoDriver.set_output` (FC05) and read back, so a relay that does not follow its
coil is reported.
"""

from __future__ import annotations

import time
from typing import Any, Literal

from pydantic import Field, model_validator

from drivers.errors import DriverConfigError
from drivers.laneio.loops import LoopMonitor
from drivers.modbus import ModbusDriver, ModbusOptions
from drivers.readings import LaneIoState, LoopFault

# (DI base, DO base) per module family; devices.md §5.
MAPS: dict[str, tuple[int, int]] = {"moxa": (0, 0), "adam6050": (0, 16)}


class LaneIoOptions(ModbusOptions):
    map: Literal["moxa", "adam6050", "custom"] = "moxa"
    di_address: int | None = Field(None, ge=0, description="Override the map's DI base.")
    do_address: int | None = Field(None, ge=0, description="Override the map's DO base.")
    inputs: dict[str, int] = Field(default_factory=dict, description="name -> DI channel")
    outputs: dict[str, int] = Field(default_factory=dict, description="name -> DO channel")
    counters: dict[str, int] = Field(
        default_factory=dict,
        description="name -> first of two input registers holding a u32 pulse counter",
    )
    loops: list[str] = Field(default_factory=list, description="Inputs that are loops.")
    chatter_changes: int = Field(6, ge=2)
    locked_on_s: float = Field(300.0, gt=0)
    no_hits_s: float | None = Field(None, gt=0)
    heartbeat_ms: int = Field(1000, ge=50)
    poll_ms: int = Field(50, ge=10, le=10_000)

    @model_validator(mode="after")
    def _check(self) -> LaneIoOptions:
        if self.map == "custom" and (self.di_address is None or self.do_address is None):
            raise ValueError("map: custom needs di_address and do_address")
        unknown = [name for name in self.loops if name not in self.inputs]
        if unknown:
            raise ValueError(f"loops {unknown} are not among the inputs")
        return self

    @property
    def di_base(self) -> int:
        return self.di_address if self.di_address is not None else MAPS[self.map][0]

    @property
    def do_base(self) -> int:
        return self.do_address if self.do_address is not None else MAPS[self.map][1]


class LaneIoDriver(ModbusDriver):
    kind = "laneio.modbus"
    options: LaneIoOptions

    def __init__(self, device_id: str, options: LaneIoOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        now = time.monotonic()
        self.monitors = {
            name: LoopMonitor(
                chatter_changes=options.chatter_changes,
                locked_on_s=options.locked_on_s,
                no_hits_s=options.no_hits_s,
                now=now,
            )
            for name in options.loops
        }
        self.state: LaneIoState | None = None
        self.commanded: dict[str, bool] = {}
        self._last_emit = 0.0
        self._di_count = max(options.inputs.values(), default=-1) + 1
        self._do_count = max(options.outputs.values(), default=-1) + 1

    async def set_output(self, name: str, value: bool) -> None:
        if name not in self.options.outputs:
            raise DriverConfigError(
                f"no output named {name!r}; have {sorted(self.options.outputs)}"
            )
        await self.write_coil(self.options.do_base + self.options.outputs[name], value)
        self.commanded[name] = value

    async def _poll(self) -> None:
        o = self.options
        di = await self.read_discrete(o.di_base, self._di_count) if self._di_count else []
        do = await self.read_coils(o.do_base, self._do_count) if self._do_count else []
        counters = {}
        for name, address in o.counters.items():
            high, low = await self.read_input(address, 2)
            counters[name] = (high << 16) | low
        now = time.monotonic()
        self._useful()  # every poll reads the whole state, emitted or not (heartbeat)
        inputs = {name: bool(di[ch]) for name, ch in o.inputs.items()}
        outputs = {name: bool(do[ch]) for name, ch in o.outputs.items()}
        faults: dict[str, LoopFault] = {}
        for name, monitor in self.monitors.items():
            fault = monitor.update(inputs[name], now)
            if fault is not None:
                faults[name] = fault
        for name, wanted in self.commanded.items():
            if outputs.get(name) != wanted:
                self._fault(
                    "output_mismatch",
                    f"output {name} reads {outputs.get(name)}, commanded {wanted}",
                )
        changed = (
            self.state is None
            or inputs != self.state.inputs
            or outputs != self.state.outputs
            or faults != self.state.faults
            or counters != self.state.counters
        )
        for name, fault in faults.items():
            if self.state is None or self.state.faults.get(name) != fault:
                self._fault(f"loop_{fault.value}", f"loop {name}: {fault.value}")
        if faults:
            self._last_fault_mono = now  # a standing loop fault keeps the device DEGRADED
        if changed or now - self._last_emit >= o.heartbeat_ms / 1000:
            self.state = LaneIoState(
                device_id=self.device_id,
                inputs=inputs,
                outputs=outputs,
                faults=faults,
                counters=counters,
            )
            self._last_emit = now
            self._emit(self.state)
