"""Colour only on a terminal, a spinner only for slow steps, watch refreshed in place."""

from __future__ import annotations

import fcntl
import io
import os
import pty
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from edge.diag.output import Printer, Progress
from tests.diag.support import ROOT, diag, write_lane


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_colour_only_on_a_terminal(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert "\033[31m" in Printer(Terminal()).paint("DOWN", "DOWN")
    assert Printer(io.StringIO()).paint("DOWN", "DOWN") == "DOWN"
    monkeypatch.setenv("NO_COLOR", "1")
    assert Printer(Terminal()).paint("DOWN", "DOWN") == "DOWN"


def test_progress_shows_only_after_a_second(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    quick, slow, pipe = Terminal(), Terminal(), io.StringIO()
    with Progress("quick", stream=quick):
        time.sleep(0.1)
    with Progress("probing devices", stream=slow):
        time.sleep(1.4)
    with Progress("piped", stream=pipe):
        time.sleep(1.2)
    assert quick.getvalue() == ""
    assert "probing devices" in slow.getvalue() and slow.getvalue().endswith("\r\033[K")
    assert pipe.getvalue() == ""


def test_watch_refreshes_in_place_on_a_terminal(lane_sims: dict[str, Any], tmp_path: Path) -> None:
    lane_sims["loop"].call(lambda: lane_sims["scale"].set_weight(7_500))
    config = write_lane(tmp_path, 1883, lane_sims["devices"])
    controller, terminal = pty.openpty()
    env = {k: v for k, v in os.environ.items() if k != "NO_COLOR"}
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "edge",
            "diag",
            "watch",
            "scale",
            "-c",
            str(config),
            "--count",
            "3",
            "--interval",
            "0.2",
        ],
        cwd=ROOT,
        stdout=terminal,
        stderr=subprocess.DEVNULL,
        stdin=subprocess.DEVNULL,
        env=env,
    )
    os.close(terminal)
    fcntl.fcntl(controller, fcntl.F_SETFL, os.O_NONBLOCK)
    data = b""
    deadline = time.monotonic() + 30
    while process.poll() is None or time.monotonic() < deadline:
        try:
            chunk = os.read(controller, 65536)
        except BlockingIOError:
            if process.poll() is not None:
                break
            time.sleep(0.05)
            continue
        except OSError:
            break
        if not chunk:
            break
        data += chunk
    os.close(controller)
    assert process.wait(10) == 0
    text = data.decode(errors="replace")
    assert text.count("\r\033[K") == 3 and text.count("7500 kg") == 3
    assert "\033[32mUP" in text  # coloured state on a terminal


def test_unknown_config_and_bad_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    missing = diag(capsys, "status", "-c", tmp_path / "nope.yaml", "--json")
    assert missing.code == 2 and '"exit_code":2' in missing.err
    bad = tmp_path / "bad.yaml"
    bad.write_text("checkpoint: X\nlane: [\n")
    assert diag(capsys, "probe", "scale", "-c", bad).code == 2
