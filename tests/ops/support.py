"""Helpers for the operations tests: the agent as a real subprocess under a fake systemd.

``NotifyListener`` is a real AF_UNIX datagram socket standing in for systemd's notify socket;
``AgentProcess`` runs ``python -m edge run`` with ``NOTIFY_SOCKET``/``WATCHDOG_USEC`` set, the
way systemd starts ``lane@.service``.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from edge.devtools.subscriber import Received, Subscriber

REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True, slots=True)
class Notification:
    at: float  # time.monotonic() when received
    fields: dict[str, str]

    def has(self, key: str, value: str | None = None) -> bool:
        return key in self.fields and (value is None or self.fields[key] == value)


class NotifyListener:
    """Collects sd_notify datagrams on a real unix socket, in a thread."""

    def __init__(self) -> None:
        # A short path: sun_path is limited to 108 bytes and pytest's tmp_path can be long.
        self._dir = tempfile.TemporaryDirectory(prefix="notify-")
        self.path = str(Path(self._dir.name) / "notify.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.1)
        self.messages: list[Notification] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="notify-listener", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                return
            fields = dict(line.split("=", 1) for line in data.decode().splitlines() if "=" in line)
            with self._lock:
                self.messages.append(Notification(time.monotonic(), fields))

    def snapshot(self) -> list[Notification]:
        with self._lock:
            return list(self.messages)

    def wait_for(
        self, predicate: Callable[[Notification], bool], timeout_s: float, *, after: float = 0
    ) -> Notification:
        deadline = time.monotonic() + timeout_s
        while True:
            for message in self.snapshot():
                if message.at >= after and predicate(message):
                    return message
            if time.monotonic() >= deadline:
                break
            time.sleep(0.02)
        raise AssertionError(
            f"no matching notification within {timeout_s} s; got {self.fields_since(after)}"
        )

    def fields_since(self, at: float) -> list[dict[str, str]]:
        return [m.fields for m in self.snapshot() if m.at >= at]

    def pings(self, start: float = 0, end: float = float("inf")) -> list[float]:
        return [m.at for m in self.snapshot() if m.has("WATCHDOG", "1") and start <= m.at <= end]

    def close(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()
        self._dir.cleanup()


class AgentProcess:
    """``python -m edge run --config F`` as systemd would start it."""

    def __init__(
        self,
        config: Path,
        *,
        notify: NotifyListener | None = None,
        watchdog_s: float | None = None,
        log_path: Path,
    ) -> None:
        env = dict(os.environ)
        env.pop("JOURNAL_STREAM", None)
        if notify is not None:
            env["NOTIFY_SOCKET"] = notify.path
        if watchdog_s is not None:
            env["WATCHDOG_USEC"] = str(int(watchdog_s * 1_000_000))
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "--config", str(config)],
            cwd=REPO,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )

    def signal(self, sig: signal.Signals) -> None:
        self.proc.send_signal(sig)

    def stop(self, timeout_s: float = 20.0) -> int:
        """SIGTERM and wait, as `systemctl stop` does within TimeoutStopSec."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
            raise AssertionError(
                f"agent ignored SIGTERM for {timeout_s} s:\n{self.log()}"
            ) from None
        finally:
            self._log.close()

    def log(self) -> str:
        self._log.flush()
        return self.log_path.read_text(errors="replace")

    def wait_log(self, text: str, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if text in self.log():
                return
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        raise AssertionError(f"{text!r} not logged within {timeout_s} s:\n{self.log()}")


def collect(
    subscriber: Subscriber,
    predicate: Callable[[list[Received]], bool],
    timeout_s: float,
    into: list[Received],
) -> list[Received]:
    """Append received messages to ``into`` until ``predicate(into)`` holds."""
    import queue

    deadline = time.monotonic() + timeout_s
    while not predicate(into):
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise AssertionError(f"condition not met within {timeout_s} s; got {len(into)} msgs")
        try:
            into.append(subscriber.messages.get(timeout=min(0.2, remaining)))
        except queue.Empty:
            continue
    return into


def payloads(messages: list[Received], suffix: str) -> list[dict[str, object]]:
    return [json.loads(m.payload) for m in messages if m.topic.endswith(suffix)]


def scrape(port: int) -> dict[str, float]:
    """GET /metrics and parse the sample lines into {'name{labels}': value}."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.rpartition(" ")
            samples[name] = float(value)
    return samples
