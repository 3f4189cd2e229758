"""sd_notify over a real unix datagram socket, path and abstract; the stage heartbeats."""

from __future__ import annotations

import os
import socket
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.notify import Heartbeats, Notifier, watchdog_period_s


@pytest.fixture
def listener() -> Iterator[tuple[socket.socket, str]]:
    with tempfile.TemporaryDirectory(prefix="n-") as tmp:
        path = str(Path(tmp) / "notify")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(2)
        yield sock, path
        sock.close()


def test_notify_to_a_path(listener: tuple[socket.socket, str]) -> None:
    sock, path = listener
    notifier = Notifier(path)
    assert notifier.ready("outbox 0 pending")
    assert sock.recv(4096) == b"READY=1\nSTATUS=outbox 0 pending"
    assert notifier.status("two\nlines  here")
    assert sock.recv(4096) == b"STATUS=two lines here"  # a newline would start a new field
    assert notifier.watchdog()
    assert sock.recv(4096) == b"WATCHDOG=1"
    assert notifier.reloading()
    fields = dict(x.split("=") for x in sock.recv(4096).decode().splitlines())
    assert fields["RELOADING"] == "1" and int(fields["MONOTONIC_USEC"]) > 0
    assert notifier.stopping()
    assert sock.recv(4096) == b"STOPPING=1"
    notifier.close()


def test_notify_to_the_abstract_namespace() -> None:
    name = f"lane-test-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)
        sock.settimeout(2)
        assert Notifier("@" + name).watchdog()
        assert sock.recv(4096) == b"WATCHDOG=1"


def test_without_systemd_nothing_is_sent_and_nothing_fails(tmp_path: Path) -> None:
    assert not Notifier("").enabled
    assert Notifier("").ready() is False
    assert Notifier("relative/path").enabled is False
    gone = Notifier(str(tmp_path / "no-such-socket"))
    assert gone.enabled
    assert gone.watchdog() is False and gone.watchdog() is False  # logged once, never raised
    assert gone.failures == 2


def test_watchdog_period_from_the_environment() -> None:
    assert watchdog_period_s({}) is None
    assert watchdog_period_s({"WATCHDOG_USEC": "30000000"}) == 30.0
    pid = str(os.getpid())
    assert watchdog_period_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": pid}) == 2.0
    assert watchdog_period_s({"WATCHDOG_USEC": "2000000", "WATCHDOG_PID": "1"}) is None
    assert watchdog_period_s({"WATCHDOG_USEC": "soon"}) is None
    assert watchdog_period_s({"WATCHDOG_USEC": "0"}) is None


def test_heartbeats_flag_silent_and_dead_stages() -> None:
    now = [100.0]
    beats = Heartbeats(clock=lambda: now[0])
    thread_beat = [100.0]
    alive = [True]
    beats.register("loop", max_silence_s=2)
    beats.register(
        "publisher", max_silence_s=2, alive=lambda: alive[0], read_beat=lambda: thread_beat[0]
    )
    assert beats.stalled() == {}
    now[0] = 101.5
    beats.beat("loop")
    now[0] = 102.5
    assert beats.stalled() == {"publisher": "publisher silent for 2.5 s"}
    thread_beat[0] = 102.4
    assert beats.stalled() == {}
    alive[0] = False
    assert beats.stalled() == {"publisher": "publisher has stopped"}
    beats.unregister("publisher")
    beats.beat("unknown")  # a stage not (or no longer) watched is ignored
    assert beats.stalled() == {}
    assert beats.silence_s() == {"loop": pytest.approx(1.0)}
