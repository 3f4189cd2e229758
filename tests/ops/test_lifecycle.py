"""Graceful stop and reload of the agent as a real process: SIGTERM mid-crossing, SIGHUP."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.cli import EXIT_STOP_STUCK
from edge.devtools.localbroker import LocalBroker
from edge.devtools.subscriber import Received, Subscriber
from tests.conftest import lane_yaml
from tests.ops.support import REPO, AgentProcess, NotifyListener, collect, payloads

BASE = "border/KZ-TEST/T1"


@pytest.fixture
def notify() -> Iterator[NotifyListener]:
    listener = NotifyListener()
    yield listener
    listener.close()


@pytest.fixture
def subscriber(broker: LocalBroker) -> Iterator[Subscriber]:
    sub = Subscriber("127.0.0.1", broker.port, [f"{BASE}/#"])
    assert sub.wait_ready()
    yield sub
    sub.close()


def outbox_stats(config: Path) -> dict[str, object]:
    out = subprocess.run(
        [sys.executable, "-m", "edge", "outbox", "stats", "--json", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    return json.loads(out.stdout)


def test_sigterm_mid_crossing_ends_it_and_loses_nothing(
    broker: LocalBroker, subscriber: Subscriber, notify: NotifyListener, tmp_path: Path
) -> None:
    config = tmp_path / "lane.yaml"
    # A vehicle takes 4 s in the lane: SIGTERM arrives while it is there.
    scripted = "scripted:\n  vehicles: 5\n  interval_ms: 8000\n"
    config.write_text(lane_yaml(tmp_path / "state", broker.port, extra=scripted))
    agent = AgentProcess(config, notify=notify, watchdog_s=2.0, log_path=tmp_path / "log")
    received: list[Received] = []
    try:
        collect(subscriber, lambda got: bool(payloads(got, "/crossing")), 20, received)
    finally:
        stop_at = time.monotonic()
        code = agent.stop(timeout_s=30)
        stopped_in = time.monotonic() - stop_at
    assert code == 0, agent.log()
    assert stopped_in < 10, f"stop took {stopped_in:.1f} s, TimeoutStopSec is 30"
    notify.wait_for(lambda m: m.has("STOPPING", "1"), 0)

    def stopped_and_ended(got: list[Received]) -> bool:
        # Control messages go first: `stopped` may overtake the final crossing event.
        return any(p.get("state") == "stopped" for p in payloads(got, "/status")) and any(
            c["type"] == "end" for c in payloads(got, "/crossing")
        )

    collect(subscriber, stopped_and_ended, 10, received)
    crossings = payloads(received, "/crossing")
    assert [c["type"] for c in crossings] == ["new", "end"]
    new, end = crossings
    assert end["crossing_id"] == new["crossing_id"]
    assert end["end_reason"] == "shutdown"
    assert end["lane_seq"] == new["lane_seq"] + 1
    # Every message made it out before exit: nothing pending, nothing rejected.
    stats = outbox_stats(config)
    assert stats["pending"] == 0 and stats["rejected"] == 0, stats
    assert stats["last_lane_seq"] == end["lane_seq"]


def test_sighup_reloads_what_it_can_and_survives_a_bad_file(
    broker: LocalBroker, subscriber: Subscriber, notify: NotifyListener, tmp_path: Path
) -> None:
    config = tmp_path / "lane.yaml"
    base = lane_yaml(tmp_path / "state", broker.port)
    config.write_text(base + "telemetry:\n  interval_s: 3600\n")
    agent = AgentProcess(config, notify=notify, watchdog_s=2.0, log_path=tmp_path / "log")
    received: list[Received] = []
    try:
        notify.wait_for(lambda m: m.has("READY", "1"), 20)
        collect(subscriber, lambda got: bool(payloads(got, "/status")), 10, received)
        time.sleep(1.5)
        assert not payloads(received + _drain(subscriber), "/telemetry")

        # 1. A reloadable change: telemetry every second, applied without a restart.
        config.write_text(base + "telemetry:\n  interval_s: 1\n")
        hup_at = time.monotonic()
        agent.signal(signal.SIGHUP)
        reloading = notify.wait_for(lambda m: m.has("RELOADING", "1"), 5, after=hup_at)
        assert int(reloading.fields["MONOTONIC_USEC"]) > 0
        notify.wait_for(lambda m: m.has("READY", "1"), 5, after=reloading.at)
        collect(subscriber, lambda got: len(payloads(got, "/telemetry")) >= 2, 10, received)
        agent.wait_log("applied telemetry.interval_s 3600.0 -> 1.0\n", 5)  # exactly that

        # 2. A broken file changes nothing and does not stop the lane.
        config.write_text(base + "telemetry:\n  interval_s: [oops\n")
        agent.signal(signal.SIGHUP)
        agent.wait_log("keeping the running config", 5)
        assert agent.proc.poll() is None

        # 3. A change that needs a restart is named, not applied.
        config.write_text(base.replace("lane: T1", "lane: T9") + "telemetry:\n  interval_s: 1\n")
        agent.signal(signal.SIGHUP)
        agent.wait_log(
            "applied nothing; config changes that need a restart (systemctl restart lane@T1):"
            " lane\n",
            5,
        )
        after_reloads = time.monotonic()
        notify.wait_for(lambda m: m.has("WATCHDOG", "1"), 3, after=after_reloads)
    finally:
        assert agent.stop() == 0, agent.log()
    # Still lane T1: its retained status says stopped.
    collect(
        subscriber,
        lambda got: any(p.get("state") == "stopped" for p in payloads(got, "/status")),
        10,
        received,
    )


def _drain(subscriber: Subscriber) -> list[Received]:
    got = []
    while not subscriber.messages.empty():
        got.append(subscriber.messages.get_nowait())
    return got


def test_a_stop_that_hangs_logs_every_stack_and_exits_before_systemd_kills() -> None:
    hung = (
        "import time\n"
        "from edge.cli import arm_stop_deadline\n"
        "from edge.logs import setup_logging\n"
        "setup_logging('INFO')\n"
        "arm_stop_deadline(0.5)\n"
        "time.sleep(30)  # a stop stuck in a call that never returns\n"
    )
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", hung], cwd=REPO, capture_output=True, text=True, timeout=20
    )
    assert done.returncode == EXIT_STOP_STUCK, done.stderr
    assert time.monotonic() - started < 10
    assert "did not stop within 0.5 s of the stop request" in done.stderr
    assert 'File "<string>", line 6 in <module>' in done.stderr  # where it hung
