"""Helpers for the diag tests: simulators on their own loop, `lane diag` in-process or as a
process, and lane configs with devices."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import threading
from collections.abc import Coroutine
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from edge.cli import main
from edge.devtools.localbroker import free_port
from tests.conftest import lane_yaml

ROOT = Path(__file__).resolve().parents[2]


class SimLoop:
    """Simulators live on their own event loop in a thread, like separate devices."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def call(self, fn: Any) -> None:
        self.loop.call_soon_threadsafe(fn)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@dataclass
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out.strip().splitlines()[-1])

    def lines(self) -> list[Any]:
        return [json.loads(line) for line in self.out.splitlines() if line.strip()]


def diag(capsys: pytest.CaptureFixture[str], *args: str | Path) -> Result:
    """`lane diag ARGS` in this process (fast); stdin is not a terminal here."""
    capsys.readouterr()
    code = main(["diag", *map(str, args)])
    captured = capsys.readouterr()
    return Result(code, captured.out, captured.err)


def diag_process(*args: str | Path, timeout_s: float = 60, stdin: str = "") -> Result:
    done = subprocess.run(
        [sys.executable, "-m", "edge", "diag", *map(str, args)],
        cwd=ROOT,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout_s,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    return Result(done.returncode, done.stdout, done.stderr)


def dead_port() -> int:
    """A loopback port nobody listens on (a device that is down)."""
    return free_port()


def write_lane(
    tmp_path: Path, broker_port: int, devices: str, *, mqtt_extra: str = "", extra: str = ""
) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "lane.yaml"
    config.write_text(
        lane_yaml(tmp_path / "state", broker_port, mqtt_extra=mqtt_extra, extra=devices + extra)
    )
    return config
