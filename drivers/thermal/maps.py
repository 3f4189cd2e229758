"""Thermal camera Modbus register maps (sans-I/O decoding), devices.md §3.

FLIR AX8/A-series: input registers; box k (0-based) at ``1018 + 12k``: spot, min, max,
avg as float32 pairs, then 4 validity words (spot, min, max, avg). Temperatures in
Kelvin by default (``temperature_unit``) [unverified: check against the unit].
InfiRay AT20 (port 1502): holding registers; frame max/avg/min at 0x0007/0x0009/0x000B;
region N (0-based) at ``0x000D + 4N``: attribute, max, avg, min; degC = (reg - 2732) / 10.
Attribute bits [design, from the manual's field list]: b0 valid, b1-2 type, b3 alarm
enabled, b4 alarm active.
"""

from __future__ import annotations

from drivers.modbus import WordOrder, f32_to_regs, regs_to_f32
from drivers.readings import ThermalRegion

FLIR_BASE = 1018
FLIR_STRIDE = 12
FLIR_MAX_BOXES = 10
INFIRAY_FRAME = 0x0007
INFIRAY_BASE = 0x000D
INFIRAY_STRIDE = 4
INFIRAY_MAX_REGIONS = 16
INFIRAY_VALID = 0x01
INFIRAY_ALARM_ENABLED = 0x08
INFIRAY_ALARM_ACTIVE = 0x10
KELVIN = 273.15


def decode_flir(
    regs: list[int], boxes: int, *, order: WordOrder = "big", kelvin: bool = True
) -> tuple[ThermalRegion, ...]:
    out = []
    for k in range(boxes):
        r = regs[k * FLIR_STRIDE : (k + 1) * FLIR_STRIDE]
        offset = KELVIN if kelvin else 0.0
        mn, mx, avg = (regs_to_f32(r[i : i + 2], order) - offset for i in (2, 4, 6))
        valid_words = r[8:12]
        valid = bool(valid_words[1] and valid_words[2] and valid_words[3])
        sane = all(-100.0 < v < 2000.0 for v in (mn, mx, avg))
        out.append(
            ThermalRegion(
                index=k,
                max_c=round(mx, 2) if valid and sane else None,
                min_c=round(mn, 2) if valid and sane else None,
                avg_c=round(avg, 2) if valid and sane else None,
                valid=valid and sane,
            )
        )
    return tuple(out)


def encode_flir_box(
    spot: float,
    mn: float,
    mx: float,
    avg: float,
    *,
    valid: bool = True,
    order: WordOrder = "big",
    kelvin: bool = True,
) -> list[int]:
    offset = KELVIN if kelvin else 0.0
    regs: list[int] = []
    for value in (spot, mn, mx, avg):
        regs += f32_to_regs(value + offset, order)
    return regs + [int(valid)] * 4


def deci_kelvin(celsius: float) -> int:
    return max(0, min(0xFFFF, round(celsius * 10 + 2732)))


def from_deci_kelvin(value: int) -> float:
    return (value - 2732) / 10


def decode_infiray(regs: list[int], regions: int) -> tuple[ThermalRegion, ...]:
    """``regs`` starts at INFIRAY_BASE."""
    out = []
    for n in range(regions):
        attr, mx, avg, mn = regs[n * INFIRAY_STRIDE : (n + 1) * INFIRAY_STRIDE]
        valid = bool(attr & INFIRAY_VALID)
        out.append(
            ThermalRegion(
                index=n,
                max_c=from_deci_kelvin(mx) if valid else None,
                avg_c=from_deci_kelvin(avg) if valid else None,
                min_c=from_deci_kelvin(mn) if valid else None,
                valid=valid,
                alarm=bool(attr & INFIRAY_ALARM_ACTIVE),
            )
        )
    return tuple(out)


def encode_infiray_region(
    mx: float, avg: float, mn: float, *, valid: bool = True, alarm: bool = False
) -> list[int]:
    attr = (INFIRAY_VALID if valid else 0) | INFIRAY_ALARM_ENABLED
    attr |= INFIRAY_ALARM_ACTIVE if alarm else 0
    return [attr, deci_kelvin(mx), deci_kelvin(avg), deci_kelvin(mn)]
