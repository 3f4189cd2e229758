"""systemd service notification (sd_notify) and the stage heartbeats behind the watchdog.

The protocol is one AF_UNIX datagram of ``KEY=value`` lines to ``$NOTIFY_SOCKET``; a leading
``@`` names a socket in the abstract namespace (systemd's MIT-0
``man/notify-selfcontained-example.py`` does the same). Outside systemd the variable is unset
and every call is a no-op, so the agent runs the same from a shell.

The watchdog is only worth having if a ping means "healthy": ``Heartbeats`` records when each
pipeline stage (main loop, publisher thread, device readers, recogniser) last made progress,
and the agent sends ``WATCHDOG=1`` only while none of them has been silent too long. A blind
timer thread would keep a wedged agent alive forever.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

SEND_TIMEOUT_S = 1.0


class Notifier:
    """Sends sd_notify datagrams; silent when the process is not run by systemd."""

    def __init__(self, address: str | None = None) -> None:
        address = address if address is not None else os.environ.get("NOTIFY_SOCKET", "")
        self.address: str | bytes | None = None
        if address.startswith("@"):
            self.address = "\0" + address[1:]
        elif address.startswith("/"):
            self.address = address
        elif address:
            log.warning("NOTIFY_SOCKET %r is neither a path nor @abstract; not notifying", address)
        self.failures = 0
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def notify(self, *lines: str) -> bool:
        """Send ``lines`` as one datagram. Never raises: systemd's absence is not our failure."""
        if self.address is None:
            return False
        message = "\n".join(lines).encode()
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(
                        socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC
                    )
                    self._socket.settimeout(SEND_TIMEOUT_S)
                self._socket.sendto(message, self.address)
            except OSError as exc:
                self.failures += 1
                if not self._warned:
                    log.warning("cannot notify systemd on %s: %s", self.address, exc)
                    self._warned = True
                return False
        self._warned = False
        return True

    def ready(self, status: str | None = None) -> bool:
        return self.notify("READY=1", *([f"STATUS={status}"] if status else []))

    def status(self, text: str) -> bool:
        return self.notify(f"STATUS={_one_line(text)}")

    def watchdog(self) -> bool:
        return self.notify("WATCHDOG=1")

    def reloading(self) -> bool:
        # MONOTONIC_USEC lets Type=notify-reload (systemd >= 253) match this reload.
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={time.monotonic_ns() // 1000}")

    def stopping(self, status: str | None = None) -> bool:
        return self.notify("STOPPING=1", *([f"STATUS={_one_line(status)}"] if status else []))

    def close(self) -> None:
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def watchdog_period_s(environ: dict[str, str] | None = None) -> float | None:
    """``WatchdogSec=`` as exported to us, or None when no watchdog applies to this process."""
    env = os.environ if environ is None else environ
    usec = env.get("WATCHDOG_USEC")
    if not usec:
        return None
    pid = env.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None  # the watchdog belongs to another process (e.g. a wrapper)
    try:
        value = int(usec)
    except ValueError:
        log.warning("WATCHDOG_USEC %r is not a number; watchdog disabled", usec)
        return None
    return value / 1_000_000 if value > 0 else None


@dataclass(slots=True)
class Stage:
    name: str
    max_silence_s: float
    last_beat: float
    alive: Callable[[], bool] | None = None
    # A stage that keeps its own timestamp (a thread stamping a float) is read, not told.
    read_beat: Callable[[], float] | None = None

    def silence(self, now: float) -> float:
        last = self.read_beat() if self.read_beat is not None else self.last_beat
        return now - last


class Heartbeats:
    """When each pipeline stage last made progress; thread-safe, cheap enough to call per loop.

    A stage registers once with the longest silence it may keep (its slowest legitimate
    blocking call plus a margin) and then calls ``beat(name)`` from its own loop. ``alive``
    optionally reports whether the stage's thread still exists at all.
    """

    def __init__(self, *, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._stages: dict[str, Stage] = {}
        self._lock = threading.Lock()

    def register(
        self,
        name: str,
        *,
        max_silence_s: float,
        alive: Callable[[], bool] | None = None,
        read_beat: Callable[[], float] | None = None,
    ) -> None:
        """Watch a stage. ``read_beat`` returns its last progress time (``time.monotonic``)."""
        with self._lock:
            self._stages[name] = Stage(name, max_silence_s, self._clock(), alive, read_beat)

    def unregister(self, name: str) -> None:
        with self._lock:
            self._stages.pop(name, None)

    def beat(self, name: str) -> None:
        stage = self._stages.get(name)
        if stage is not None:
            stage.last_beat = self._clock()

    def stalled(self) -> dict[str, str]:
        """Stage name -> what is wrong, for stages dead or silent too long; empty if healthy."""
        now = self._clock()
        problems = {}
        with self._lock:
            stages = list(self._stages.values())
        for stage in stages:
            if stage.alive is not None and not stage.alive():
                problems[stage.name] = f"{stage.name} has stopped"
            elif (silence := stage.silence(now)) > stage.max_silence_s:
                problems[stage.name] = f"{stage.name} silent for {silence:.1f} s"
        return problems

    def silence_s(self) -> dict[str, float]:
        now = self._clock()
        with self._lock:
            return {s.name: s.silence(now) for s in self._stages.values()}
