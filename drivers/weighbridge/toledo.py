"""Mettler Toledo continuous output: ``STX SWA SWB SWC W6 T6 CR [CHK]`` (sans-I/O).

Bytes are masked to 7 bits (the format is 7 data bits + parity, often read as 8N1).
Only STX, length, digits, CR and checksum are validated: vendors disagree on the fixed
bits of the status bytes (devices.md §1.1).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.codec import CodecFault, FeedResult, RawHistory

STX = 0x02
CR = 0x0D
LB_TO_KG = 0.45359237

# SWA bits 0-2: position of the decimal point, as a multiplier of the 6 displayed digits.
_DECIMAL_FACTOR = {0: 100.0, 1: 10.0, 2: 1.0, 3: 0.1, 4: 0.01, 5: 0.001, 6: 0.0001, 7: 0.00001}
_INCREMENT = {1: 1, 2: 2, 3: 5}
_SEVEN_BITS = bytes(b & 0x7F for b in range(256))


@dataclass(frozen=True, slots=True)
class ToledoFrame:
    displayed: float
    """Displayed weight (net when ``net`` is set), in the indicator's unit."""
    tare: float
    net: bool
    negative: bool
    overload: bool
    motion: bool
    not_zeroed: bool
    unit: str
    division: float
    raw: bytes

    @property
    def gross_kg(self) -> float:
        gross = self.displayed + self.tare if self.net else self.displayed
        return gross * (LB_TO_KG if self.unit == "lb" else 1.0)

    @property
    def net_kg(self) -> float | None:
        return self.displayed * (LB_TO_KG if self.unit == "lb" else 1.0) if self.net else None

    @property
    def division_kg(self) -> float:
        return self.division * (LB_TO_KG if self.unit == "lb" else 1.0)


def checksum(body: bytes) -> int:
    """2's complement of the 7 low bits of the sum of all bytes from STX to CR."""
    return (-sum(body)) & 0x7F


def encode(
    weight: float,
    *,
    tare: float = 0.0,
    decimals: int = 0,
    increment: int = 1,
    net: bool = False,
    motion: bool = False,
    overload: bool = False,
    not_zeroed: bool = False,
    unit: str = "kg",
    with_checksum: bool = True,
) -> bytes:
    """One frame. ``decimals`` -2..5: digits after the point, negative for dummy zeros
    (not transmitted: -1 sends 12340 kg as 001234). Negative weights set SWB b1."""
    if not -2 <= decimals <= 5:
        raise ValueError("decimals must be -2..5")
    code = decimals + 2
    inc = {1: 1, 2: 2, 5: 3}[increment]
    swa = 0x20 | (inc << 3) | code
    swb = 0x20 | (0x01 if net else 0) | (0x02 if weight < 0 else 0) | (0x04 if overload else 0)
    swb |= (0x08 if motion else 0) | (0x10 if unit == "kg" else 0) | (0x40 if not_zeroed else 0)
    swc = 0x20
    scale = 10.0**decimals
    w6 = f"{min(round(abs(weight) * scale), 999_999):06d}"
    t6 = f"{min(round(abs(tare) * scale), 999_999):06d}"
    body = bytes([STX, swa, swb, swc]) + w6.encode() + t6.encode() + bytes([CR])
    return body + bytes([checksum(body)]) if with_checksum else body


def decode(frame: bytes) -> ToledoFrame:
    """Decode one validated frame (STX..CR, with or without its checksum byte)."""
    swa, swb, swc = frame[1], frame[2], frame[3]
    factor = _DECIMAL_FACTOR[swa & 0x07]
    increment = _INCREMENT.get((swa >> 3) & 0x03, 1)
    expanded = 0.1 if swc & 0x10 else 1.0
    negative = bool(swb & 0x02)
    displayed = int(frame[4:10]) * factor * expanded
    return ToledoFrame(
        displayed=-displayed if negative else displayed,
        tare=int(frame[10:16]) * factor * expanded,
        net=bool(swb & 0x01),
        negative=negative,
        overload=bool(swb & 0x04),
        motion=bool(swb & 0x08),
        not_zeroed=bool(swb & 0x40),
        unit="kg" if swb & 0x10 else "lb",
        division=increment * factor * expanded,
        raw=bytes(frame),
    )


class ToledoParser:
    """Feed bytes, get frames and faults. Resynchronises on the next STX after garbage."""

    MAX_BUFFER = 4096

    def __init__(self, *, with_checksum: bool = True, history: int = 16) -> None:
        self.with_checksum = with_checksum
        self.frame_len = 18 if with_checksum else 17
        self.history = RawHistory(history)
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[ToledoFrame | CodecFault]:
        self._buf.extend(data.translate(_SEVEN_BITS))
        out: FeedResult[ToledoFrame] = FeedResult()
        while True:
            start = self._buf.find(STX)
            if start < 0:
                if self._buf:
                    self._skip(out, len(self._buf), "garbage", "bytes outside a frame")
                break
            if start > 0:
                self._skip(out, start, "garbage", "bytes before STX")
                continue
            if self._buf[1:2] == b"\x02":
                # A run of STX: each but the last is a frame cut short by the next one.
                # Skipped in one step (an STX flood is not one Python iteration per byte).
                run = len(self._buf) - len(self._buf.lstrip(b"\x02"))
                if run > 1:
                    self._skip(out, run - 1, "truncated", "frame cut short by a new STX",
                               count=run - 1)  # fmt: skip
                    continue
            if len(self._buf) < self.frame_len:
                # A new STX inside a short tail means the tail was truncated.
                nxt = self._buf.find(STX, 1)
                if nxt > 0:
                    self._skip(out, nxt, "truncated", "frame cut short by a new STX")
                    continue
                break
            candidate = bytes(self._buf[: self.frame_len])
            problem = self._validate(candidate)
            if problem is not None:
                kind, message = problem
                # Drop only the STX: the real frame may start inside the candidate.
                nxt = self._buf.find(STX, 1, 17)
                cut = nxt if nxt > 0 else 17
                if nxt > 0:
                    kind, message = "truncated", "frame cut short by a new STX"
                elif kind == "checksum":
                    cut = self.frame_len
                self._skip(out, cut, kind, message)
                continue
            del self._buf[: self.frame_len]
            self.history.add(candidate)
            out.frame(decode(candidate))
        if len(self._buf) > self.MAX_BUFFER:
            self._skip(out, len(self._buf), "garbage", "buffer overflow")
        return out.result()

    def _validate(self, frame: bytes) -> tuple[str, str] | None:
        if frame[16] != CR:
            return ("framing", "no CR at byte 16")
        if not frame[4:16].isdigit():
            return ("framing", "non-digit in weight or tare")
        if self.with_checksum and frame[17] != checksum(frame[:17]):
            return ("checksum", f"checksum {frame[17]:02X} != {checksum(frame[:17]):02X}")
        return None

    def _skip(
        self, out: FeedResult[ToledoFrame], n: int, kind: str, message: str, *, count: int = 1
    ) -> None:
        raw = bytes(self._buf[:n])
        del self._buf[:n]
        self.history.add(raw)
        out.fault(kind, message, raw, count=count)


def format_for_division(division: float) -> tuple[int, int]:
    """(decimals, increment) that make a frame's display division equal ``division``."""
    for decimals in range(-2, 6):
        for increment in (1, 2, 5):
            if abs(increment * 10.0**-decimals - division) < 1e-9 * max(division, 1):
                return decimals, increment
    raise ValueError(f"a Toledo frame cannot express a division of {division}")
