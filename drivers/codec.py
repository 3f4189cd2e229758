"""Shared pieces of the sans-I/O codecs: faults and the raw frame history."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class CodecFault:
    """Something the parser skipped: ``kind`` is a short counter name, ``raw`` the bytes."""

    kind: str
    message: str
    raw: bytes = b""


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
