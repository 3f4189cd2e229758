"""Human output: colour only on a terminal, a progress line for anything over a second."""

from __future__ import annotations

import os
import sys
import threading
import time
from types import TracebackType
from typing import TextIO

from edge.redact import redact_text

COLOURS = {"UP": "32", "DEGRADED": "33", "DOWN": "31", "ok": "32", "warn": "33", "bad": "31"}
PROGRESS_DELAY_S = 1.0


def use_colour(stream: TextIO) -> bool:
    if os.environ.get("NO_COLOR"):
        return False
    return hasattr(stream, "isatty") and stream.isatty()


class Printer:
    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream or sys.stdout
        self.colour = use_colour(self.stream)

    def paint(self, text: str, tone: str) -> str:
        code = COLOURS.get(tone)
        return f"\033[{code}m{text}\033[0m" if self.colour and code else text

    def line(self, text: str = "") -> None:
        print(redact_text(text), file=self.stream, flush=True)

    def field(self, name: str, value: object, tone: str | None = None) -> None:
        text = str(value)
        self.line(f"{name:<18} {self.paint(text, tone) if tone else text}")


class Progress:
    """A spinner on stderr (terminal only) that appears once a step takes over a second."""

    FRAMES = "|/-\\"

    def __init__(self, what: str, *, stream: TextIO | None = None, enabled: bool = True) -> None:
        self.what = what
        self.stream = stream or sys.stderr
        self.enabled = enabled and use_colour(self.stream)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._shown = False

    def __enter__(self) -> Progress:
        if self.enabled:
            self._thread = threading.Thread(target=self._spin, name="diag-progress", daemon=True)
            self._thread.start()
        return self

    def __exit__(
        self, _t: type[BaseException] | None, _e: BaseException | None, _tb: TracebackType | None
    ) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(1.0)
        if self._shown:
            self.stream.write("\r\033[K")
            self.stream.flush()

    def _spin(self) -> None:
        if self._stop.wait(PROGRESS_DELAY_S):
            return
        start = time.monotonic() - PROGRESS_DELAY_S
        frame = 0
        while not self._stop.is_set():
            self._shown = True
            spent = time.monotonic() - start
            self.stream.write(f"\r\033[K{self.FRAMES[frame % 4]} {self.what} ({spent:.0f} s)")
            self.stream.flush()
            frame += 1
            self._stop.wait(0.2)


def age(seconds: float | None) -> str:
    if seconds is None:
        return "never"
    if seconds < 120:
        return f"{seconds:.1f} s ago"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min ago"
    return f"{seconds / 3600:.1f} h ago"


def size(n: int) -> str:
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if value < 1024 or unit == "GiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{n} B"
