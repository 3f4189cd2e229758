"""Shared pieces of the sans-I/O codecs: faults, their coalescing, and the raw frame history."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from typing import Generic, TypeVar

F = TypeVar("F")

# A coalesced fault keeps this many of its bytes: enough to show in diag what the peer
# sent, bounded however long the run of garbage was.
FAULT_RAW_MAX = 64


@dataclass(frozen=True, slots=True)
class CodecFault:
    """Something the parser skipped: ``kind`` is a short counter name, ``raw`` the bytes.

    ``count`` is how many faults of this kind came in a row (a flood of garbage is one
    fault object with a count, not one object per byte); ``raw`` holds the first
    :data:`FAULT_RAW_MAX` bytes of the run and ``message`` the first fault's message.
    """

    kind: str
    message: str
    raw: bytes = b""
    count: int = 1


class FeedResult(Generic[F]):
    """The output of one ``feed()``: frames in order, consecutive faults of a kind merged.

    Merging happens as the parser goes, so a run of N bad bytes costs one counter bump per
    byte and allocates one :class:`CodecFault`, not N.
    """

    __slots__ = ("_count", "_kind", "_message", "_raw", "out")

    def __init__(self) -> None:
        self.out: list[F | CodecFault] = []
        self._kind: str | None = None
        self._message = ""
        self._raw = bytearray()
        self._count = 0

    def frame(self, item: F) -> None:
        self._flush()
        self.out.append(item)

    def fault(self, kind: str, message: str, raw: bytes = b"", *, count: int = 1) -> None:
        if kind == self._kind:
            self._count += count
            room = FAULT_RAW_MAX - len(self._raw)
            if room > 0:
                self._raw += raw[:room]
            return
        self._flush()
        self._kind, self._message, self._count = kind, message, count
        self._raw = bytearray(raw[:FAULT_RAW_MAX])

    def add(self, item: F | CodecFault) -> None:
        if isinstance(item, CodecFault):
            self.fault(item.kind, item.message, item.raw, count=item.count)
        else:
            self.frame(item)

    def result(self) -> list[F | CodecFault]:
        self._flush()
        return self.out

    def _flush(self) -> None:
        if self._kind is not None:
            self.out.append(CodecFault(self._kind, self._message, bytes(self._raw), self._count))
            self._kind = None


class RawHistory:
    """The last N raw frames (good or bad), for ``probe()`` and protocol errors."""

    def __init__(self, size: int = 16) -> None:
        self._frames: deque[bytes] = deque(maxlen=size)

    def add(self, raw: bytes) -> None:
        self._frames.append(bytes(raw))

    def frames(self) -> tuple[bytes, ...]:
        return tuple(self._frames)


def printable(raw: bytes) -> str:
    """ASCII with control bytes escaped, for diagnostics."""
    return "".join(
        chr(b) if 0x20 <= b < 0x7F else {13: "\\r", 10: "\\n"}.get(b, f"\\x{b:02x}") for b in raw
    )
