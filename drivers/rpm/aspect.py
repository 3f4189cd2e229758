"""Aspect-style RPM over Modbus TCP (devices.md §2.4), map and driver.

Monitor registers: FC03 at ``base`` (100) x 21, 32-bit values low word first. An
occupancy lasts while any Occup input bit is set; it is emitted when they clear, with
the object counter as its number. Unlike the reference driver, exceptions are never
swallowed (stale data must not look live) and the poll loop sleeps. Counts and backgrounds
outside the plausibility bounds (negative, not finite, above ``max_gamma_cps`` /
``max_neutron_cps``) make the poll a fault: nothing from it reaches an occupancy.
"""

from __future__ import annotations

import math
import struct
import time
from dataclasses import dataclass
from typing import Any

from pydantic import Field

from drivers.modbus import (
    ModbusDriver,
    ModbusOptions,
    WordOrder,
    regs_to_f32,
    regs_to_i32,
    regs_to_u32,
)
from drivers.options import RadiationBounds
from drivers.readings import RpmCounts, RpmOccupancy, utc_now

MONITOR_COUNT = 21
OCCUPIED = 0x000F
INPUT_FAULTS = {0x100: "power_fail", 0x200: "low_battery", 0x400: "open", 0x800: "error"}
ALARM = 0x0003
CHANNEL_FAULTS = {0x10: "low_count", 0x20: "high_count", 0x40: "overload"}
READY = 0x80


@dataclass(frozen=True, slots=True)
class AspectMonitor:
    elapsed: int
    inputs: int
    gamma_status: int
    gamma_count: int
    gamma_background: float
    gamma_variance: float
    neutron_status: int
    neutron_count: int
    neutron_background: float
    neutron_variance: float
    object_counter: int
    object_mark: int
    speed_mm_s: int
    outputs: int

    @property
    def occupied(self) -> bool:
        return bool(self.inputs & OCCUPIED)


def decode_monitor(regs: list[int], order: WordOrder = "little") -> AspectMonitor:
    if len(regs) < MONITOR_COUNT:
        raise ValueError(f"need {MONITOR_COUNT} registers, got {len(regs)}")
    return AspectMonitor(
        elapsed=regs_to_u32(regs[0:2], order),
        inputs=regs[2],
        gamma_status=regs[3],
        gamma_count=regs_to_i32(regs[4:6], order),
        gamma_background=regs_to_f32(regs[6:8], order),
        gamma_variance=regs_to_f32(regs[8:10], order),
        neutron_status=regs[10],
        neutron_count=regs_to_i32(regs[11:13], order),
        neutron_background=regs_to_f32(regs[13:15], order),
        neutron_variance=regs_to_f32(regs[15:17], order),
        object_counter=regs[17],
        object_mark=regs[18],
        speed_mm_s=regs[19],
        outputs=regs[20],
    )


def encode_monitor(m: AspectMonitor, order: WordOrder = "little") -> list[int]:
    def pair(fmt: str, value: float | int) -> list[int]:
        hi, lo = struct.unpack(">HH", struct.pack(fmt, value))
        return [lo, hi] if order == "little" else [hi, lo]

    return [
        *pair(">I", m.elapsed), m.inputs, m.gamma_status, *pair(">i", m.gamma_count),
        *pair(">f", m.gamma_background), *pair(">f", m.gamma_variance), m.neutron_status,
        *pair(">i", m.neutron_count), *pair(">f", m.neutron_background),
        *pair(">f", m.neutron_variance), m.object_counter & 0xFFFF, m.object_mark & 0xFFFF,
        m.speed_mm_s & 0xFFFF, m.outputs & 0xFFFF,
    ]  # fmt: skip


class AspectOptions(ModbusOptions, RadiationBounds):
    base: int = Field(100, ge=0, le=65000)
    word_order: WordOrder = "little"
    emit_counts: bool = False


@dataclass
class _Open:
    start: Any
    gamma_max: int = 0
    neutron_max: int = 0
    gamma_alarm: bool = False
    neutron_alarm: bool = False
    samples: int = 0


class AspectDriver(ModbusDriver):
    kind = "rpm.aspect"
    options: AspectOptions

    def __init__(self, device_id: str, options: AspectOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.last: AspectMonitor | None = None
        self._open: _Open | None = None
        self._faults_seen: set[str] = set()

    def _implausible(self, m: AspectMonitor) -> str | None:
        o = self.options
        return (
            o.gamma_problem(m.gamma_count, "gamma count")
            or o.gamma_problem(m.gamma_background, "gamma background")
            or o.neutron_problem(m.neutron_count, "neutron count")
            or o.neutron_problem(m.neutron_background, "neutron background")
        )

    async def _poll(self) -> None:
        regs = await self.read_holding(self.options.base, MONITOR_COUNT)
        m = decode_monitor(regs, self.options.word_order)
        problem = self._implausible(m)
        if problem is not None:
            self._fault("implausible", problem)
            return
        self._useful()
        now = utc_now()
        faults = {name for bit, name in INPUT_FAULTS.items() if m.inputs & bit}
        for prefix, status in (("gamma", m.gamma_status), ("neutron", m.neutron_status)):
            faults |= {f"{prefix}_{n}" for bit, n in CHANNEL_FAULTS.items() if status & bit}
        for name in sorted(faults - self._faults_seen):
            self._fault("detector", name)
        if faults:
            self._last_fault_mono = time.monotonic()  # a standing fault stays DEGRADED
        self._faults_seen = faults
        if m.occupied:
            occ = self._open or _Open(start=now)
            self._open = occ
            occ.samples += 1
            occ.gamma_max = max(occ.gamma_max, m.gamma_count)
            occ.neutron_max = max(occ.neutron_max, m.neutron_count)
            occ.gamma_alarm |= bool(m.gamma_status & ALARM)
            occ.neutron_alarm |= bool(m.neutron_status & ALARM)
        elif self._open is not None:
            occ, self._open = self._open, None
            bg = m.gamma_background
            self._emit(
                RpmOccupancy(
                    device_id=self.device_id,
                    captured_at=now,
                    occupancy_no=m.object_counter,
                    start=occ.start,
                    end=now,
                    gamma_max_cps=occ.gamma_max,
                    neutron_max=occ.neutron_max,
                    gamma_background_cps=bg,
                    neutron_background=m.neutron_background,
                    sigma=(occ.gamma_max - bg) / math.sqrt(bg) if bg > 0 else None,
                    gamma_alarm=occ.gamma_alarm,
                    neutron_alarm=occ.neutron_alarm,
                    samples=occ.samples,
                    speed_kmh=m.speed_mm_s * 0.0036,
                    axles=m.object_mark or None,
                )
            )
        if self.options.emit_counts or self.last is None or m.occupied or m != self.last:
            self._emit(
                RpmCounts(
                    device_id=self.device_id,
                    captured_at=now,
                    line_type="occupied" if m.occupied else "background",
                    counts=(m.gamma_count, m.neutron_count),
                    alarm=bool((m.gamma_status | m.neutron_status) & ALARM),
                    fault=", ".join(sorted(faults)) or None,
                )
            )
        self.last = m
