"""Yaohua/Keli XK3190 serial protocol (sans-I/O), devices.md §1.3.

``tF=0`` continuous, 12 bytes: ``STX sign d6 dp XORhi XORlo ETX``.
``tF=1`` command mode: host ``STX addr cmd XORhi XORlo ETX``; reply (14 bytes)
``STX addr cmd sign d6 dp XORhi XORlo ETX``. The XOR covers every byte between STX and the
XOR; each nibble is sent as ASCII (+0x30 if <= 9, else +0x37). No motion or overload flag:
stability is inferred by :class:`drivers.weighbridge.stability.StabilityFilter`.
"""

from __future__ import annotations

from dataclasses import dataclass

from drivers.codec import CodecFault, FeedResult, RawHistory

STX = 0x02
ETX = 0x03
CONTINUOUS_LEN = 12
REPLY_LEN = 14

COMMANDS = {
    "handshake": "A",
    "gross": "B",
    "tare": "C",
    "net": "D",
    "truck_no": "E",
    "cargo_no": "F",
}


@dataclass(frozen=True, slots=True)
class XkFrame:
    weight: float
    decimals: int
    address: str | None
    command: str | None
    raw: bytes


def _nibble(v: int) -> int:
    return v + 0x30 if v <= 9 else v + 0x37


def xor_bytes(body: bytes) -> bytes:
    x = 0
    for b in body:
        x ^= b
    return bytes([_nibble(x >> 4), _nibble(x & 0x0F)])


def _weight_field(weight: float, decimals: int) -> bytes:
    if not 0 <= decimals <= 4:
        raise ValueError("decimals must be 0..4")
    value = round(abs(weight) * 10**decimals)
    sign = "-" if weight < 0 else "+"
    return f"{sign}{min(value, 999_999):06d}{decimals}".encode()


def encode_continuous(weight: float, *, decimals: int = 0) -> bytes:
    body = _weight_field(weight, decimals)
    return bytes([STX]) + body + xor_bytes(body) + bytes([ETX])


def encode_command(command: str, *, address: str = "A") -> bytes:
    """Host request in ``tF=1`` mode; ``command`` is a letter or a name from COMMANDS."""
    letter = COMMANDS.get(command, command)
    body = f"{address}{letter}".encode()
    return bytes([STX]) + body + xor_bytes(body) + bytes([ETX])


def encode_reply(command: str, weight: float, *, address: str = "A", decimals: int = 0) -> bytes:
    letter = COMMANDS.get(command, command)
    body = f"{address}{letter}".encode() + _weight_field(weight, decimals)
    return bytes([STX]) + body + xor_bytes(body) + bytes([ETX])


def _decode_weight(field: bytes) -> tuple[float, int] | None:
    sign, digits, dp = field[:1], field[1:7], field[7:8]
    if sign not in (b"+", b"-") or not digits.isdigit() or not dp.isdigit():
        return None
    decimals = int(dp)
    if decimals > 4:
        return None
    value = int(digits) / 10**decimals
    return (-value if sign == b"-" else value), decimals


class XkParser:
    """Frames between STX and ETX; 12-byte continuous frames and 14-byte replies.

    Resynchronises on the next STX; a frame whose XOR, length or digits are wrong is
    reported as a fault and dropped.
    """

    MAX_FRAME = REPLY_LEN

    def __init__(self, *, history: int = 16) -> None:
        self.history = RawHistory(history)
        self._buf = bytearray()

    def feed(self, data: bytes) -> list[XkFrame | CodecFault]:
        self._buf.extend(data)
        out: FeedResult[XkFrame] = FeedResult()
        while self._buf:
            start = self._buf.find(STX)
            if start < 0:
                self._skip(out, len(self._buf), "garbage", "bytes outside a frame")
                break
            if start > 0:
                self._skip(out, start, "garbage", "bytes before STX")
                continue
            if self._buf[1:2] == b"\x02":
                # A run of STX: each but the last is a frame cut short by the next one.
                run = len(self._buf) - len(self._buf.lstrip(b"\x02"))
                self._skip(out, run - 1, "truncated", "frame cut short by a new STX",
                           count=run - 1)  # fmt: skip
                continue
            end = self._buf.find(ETX, 1, self.MAX_FRAME)
            nxt = self._buf.find(STX, 1, self.MAX_FRAME)
            if nxt > 0 and (end < 0 or nxt < end):
                self._skip(out, nxt, "truncated", "frame cut short by a new STX")
                continue
            if end < 0:
                if len(self._buf) >= self.MAX_FRAME:
                    self._skip(out, self.MAX_FRAME, "framing", "no ETX")
                    continue
                break
            frame = bytes(self._buf[: end + 1])
            del self._buf[: end + 1]
            self.history.add(frame)
            out.add(self._decode(frame))
        return out.result()

    def _decode(self, frame: bytes) -> XkFrame | CodecFault:
        body, xor = frame[1:-3], frame[-3:-1]
        if len(frame) not in (CONTINUOUS_LEN, REPLY_LEN):
            return CodecFault("truncated", f"{len(frame)}-byte frame", frame)
        if xor != xor_bytes(body):
            return CodecFault("checksum", f"XOR {xor!r} != {xor_bytes(body)!r}", frame)
        if len(frame) == CONTINUOUS_LEN:
            address = command = None
            field = body
        else:
            address, command, field = chr(body[0]), chr(body[1]), body[2:]
            if not (0x41 <= body[0] <= 0x5A and 0x41 <= body[1] <= 0x5A):
                return CodecFault("framing", "bad address or command", frame)
        decoded = _decode_weight(field)
        if decoded is None:
            return CodecFault("framing", "bad sign, digits or decimal point", frame)
        weight, decimals = decoded
        return XkFrame(weight, decimals, address, command, frame)

    def _skip(
        self, out: FeedResult[XkFrame], n: int, kind: str, message: str, *, count: int = 1
    ) -> None:
        raw = bytes(self._buf[:n])
        del self._buf[:n]
        self.history.add(raw)
        out.fault(kind, message, raw, count=count)
