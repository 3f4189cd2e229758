"""Mettler Toledo MT-SICS (sans-I/O): CRLF-terminated command/response lines, §1.2.

Replies: ``S S     100.00 g`` (weight), ``Z A`` (zero done), ``T S 100.00 kg`` (tare),
``ES``/``ET``/``EL`` (syntax, transmission, logical errors). Status: S stable, D dynamic,
I not executable, ``+``/``-`` over/under range, A done (Z).
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.codec import CodecFault, FeedResult, RawHistory

MAX_LINE = 80
_UNITS_TO_KG = {"kg": 1.0, "g": 0.001, "t": 1000.0, "lb": 0.45359237, "mg": 1e-6}
ERROR_REPLIES = {"ES": "syntax error", "ET": "transmission error", "EL": "logical error"}


@dataclass(frozen=True, slots=True)
class SicsReply:
    command: str
    status: str
    value: float | None = None
    unit: str | None = None
    raw: bytes = b""

    @property
    def value_kg(self) -> float | None:
        if self.value is None or self.unit is None:
            return None
        return self.value * _UNITS_TO_KG[self.unit]


def encode_command(command: str) -> bytes:
    if not command or not command.isascii() or "\r" in command or "\n" in command:
        raise ValueError(f"bad SICS command {command!r}")
    return command.encode() + b"\r\n"


def encode_reply(
    command: str, status: str, value: float | None = None, *, unit: str = "kg", decimals: int = 0
) -> bytes:
    if value is None:
        return f"{command} {status}\r\n".encode()
    return f"{command} {status} {value:>10.{decimals}f} {unit}\r\n".encode()


def decode_line(line: bytes) -> SicsReply | CodecFault:
    try:
        text = line.decode("ascii").strip()
    except UnicodeDecodeError:
        return CodecFault("garbage", "non-ASCII line", line)
    parts = text.split()
    if not parts:
        return CodecFault("framing", "empty line", line)
    command = parts[0]
    if command in ERROR_REPLIES and len(parts) == 1:
        return SicsReply(command, "E", raw=line)
    if len(parts) < 2 or not command.isalnum() or not command[:1].isalpha():
        return CodecFault("framing", f"not a SICS reply: {text!r}", line)
    status = parts[1]
    if len(status) != 1 or status not in "SDIAL+-":
        return CodecFault("framing", f"unknown status {status!r}", line)
    if len(parts) == 2 or (command[0] == "I" and command[1:].isdigit()):
        return SicsReply(command, status, raw=line)  # I2, I4 ...: identity text in ``raw``
    if len(parts) != 4 or parts[3] not in _UNITS_TO_KG:
        return CodecFault("framing", f"bad weight field in {text!r}", line)
    try:
        value = float(parts[2])
    except ValueError:
        return CodecFault("framing", f"bad number {parts[2]!r}", line)
    if value != value or value in (float("inf"), float("-inf")):
        return CodecFault("framing", f"bad number {parts[2]!r}", line)
    return SicsReply(command, status, value, parts[3], raw=line)


class SicsParser:
    """Splits the byte stream on LF (tolerating a missing CR); overlong lines are dropped."""

    def __init__(self, *, history: int = 16) -> None:
        self.history = RawHistory(history)
        self._buf = bytearray()
        self._discarding = False

    def feed(self, data: bytes) -> list[SicsReply | CodecFault]:
        self._buf.extend(data)
        out: FeedResult[SicsReply] = FeedResult()
        buf = self._buf
        while True:
            if buf[:1] in (b"\n", b"\r"):
                # A run of empty lines is one coalesced fault, found in one C-level step.
                run = len(buf) - len(buf.lstrip(b"\r\n"))
                lines = buf.count(b"\n", 0, run)
                if self._discarding and lines:
                    self._discarding = False
                    lines -= 1
                del buf[:run]
                if lines:
                    out.fault("framing", "empty line", b"\r\n", count=lines)
                continue
            nl = buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > MAX_LINE:
                    raw = bytes(self._buf)
                    self._buf.clear()
                    self.history.add(raw)
                    if not self._discarding:
                        out.fault("framing", "line too long", raw[:MAX_LINE])
                    self._discarding = True
                break
            line = bytes(self._buf[: nl + 1])
            del self._buf[: nl + 1]
            self.history.add(line)
            if self._discarding:
                self._discarding = False
                continue
            if len(line) > MAX_LINE:
                out.fault("framing", "line too long", line[:MAX_LINE])
                continue
            out.add(decode_line(line))
        return out.result()
