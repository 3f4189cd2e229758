"""Storage faults on a real lane: `lane run`, a Modbus lane-I/O simulator, real Mosquitto.

The state dir is a small tmpfs (mounted by the test; skipped where mounting is not allowed),
filled to the last byte with a file while vehicles pass, then freed. Also: a start on a full
disk exits 4 with one line, and a crossing left open by ``kill -9`` is ended on restart with
``end_reason: interrupted``.
"""

from __future__ import annotations

import errno
import os
import re
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.devtools.localbroker import LocalBroker
from edge.diag.control import request
from simulators.modbus import LaneIoSimulator
from tests.conftest import lane_yaml
from tests.integration.support import ROOT, Agent, Consumer, check_delivery, wait_until
from tests.integration.test_lane_devices import SimLoop

DISK = "16m"


@pytest.fixture
def small_disk() -> Iterator[Path]:
    """A fresh tmpfs of ``DISK`` bytes, unmounted afterwards."""
    where = Path(tempfile.mkdtemp(prefix="lane-disk-"))
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={DISK},mode=0700", "tmpfs", str(where)],
        capture_output=True,
        text=True,
    )
    if mounted.returncode != 0:
        where.rmdir()
        pytest.skip(
            "a full disk needs a tmpfs of its own: `mount -t tmpfs` is not permitted here "
            f"(run as root): {mounted.stderr.strip()}"
        )
    yield where
    subprocess.run(["umount", "-l", str(where)], check=False)
    where.rmdir()


def fill(disk: Path) -> Path:
    """Take every free byte of ``disk`` with one file; remove the file to give it back."""
    filler = disk / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        for size in (1 << 20, 1 << 12, 1):
            block = b"\0" * size
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    assert os.statvfs(disk).f_bavail == 0
    return filler


@pytest.fixture
def lane_io() -> Iterator[tuple[SimLoop, LaneIoSimulator, int]]:
    loop = SimLoop()
    io = LaneIoSimulator()
    port = loop.run(io.start())
    yield loop, io, port
    loop.run(io.stop())
    loop.close()


def lane_config(
    tmp_path: Path, state_dir: Path, broker: LocalBroker, io_port: int, *, held: int = 50
) -> Path:
    config = tmp_path / "lane.yaml"
    config.write_text(
        lane_yaml(
            state_dir,
            broker.port,
            extra=(
                f"  held_events: {held}\n"
                "fusion: {settle_s: 0.5}\n"
                "devices:\n"
                f"  - {{id: io, kind: laneio.modbus, host: 127.0.0.1, port: {io_port},"
                " poll_ms: 50, inputs: {entry_loop: 0, exit_loop: 1}}\n"
            ),
        )
    )
    return config


def drive(sims: tuple[SimLoop, LaneIoSimulator, int]) -> None:
    """One vehicle over the loops, at a vehicle's pace (the simulator is the device)."""
    loop, io, _port = sims
    loop.call(lambda: io.set_input("entry_loop", True))
    time.sleep(1.0)
    loop.call(lambda: io.set_input("exit_loop", True))
    loop.call(lambda: io.set_input("entry_loop", False))
    time.sleep(0.4)
    loop.call(lambda: io.set_input("exit_loop", False))


def ends(consumer: Consumer) -> list[dict[str, Any]]:
    return [e for e in consumer.crossings() if e["type"] == "end"]


def lane_alarms(consumer: Consumer) -> list[str]:
    statuses = consumer.bodies("/T1/status")
    return list(statuses[-1]["alarms"]) if statuses else []  # type: ignore[call-overload]


def retained_status(broker: LocalBroker) -> tuple[dict[str, Any], bool]:
    """What a consumer connecting now gets on the lane status topic."""
    late = Consumer(broker.port, topic="border/KZ-TEST/T1/status")
    try:
        late.wait_subscribed()
        wait_until(lambda: bool(late.messages), 10, "the retained lane status")
        (_topic, _payload, retain, _props) = late.messages[0]
        return late.bodies("/status")[0], retain
    finally:
        late.close()


def agent_storage(state_dir: Path) -> dict[str, Any]:
    return request(state_dir, {"op": "status"})  # type: ignore[no-any-return]


def test_disk_full_while_vehicles_pass_loses_no_crossing(
    broker: LocalBroker,
    lane_io: tuple[SimLoop, LaneIoSimulator, int],
    small_disk: Path,
    tmp_path: Path,
) -> None:
    state = small_disk / "state"
    config = lane_config(tmp_path, state, broker, lane_io[2])
    consumer = Consumer(broker.port)
    consumer.wait_subscribed()
    try:
        with Agent(config) as agent:
            wait_until(
                lambda: any(b["state"] == "UP" for b in consumer.bodies("/device/io/status")),
                30,
                "lane I/O UP",
            )
            drive(lane_io)
            wait_until(lambda: len(ends(consumer)) == 1, 30, "the first crossing's end")

            filler = fill(small_disk)
            while_full = 3
            for n in range(while_full):
                drive(lane_io)
                wait_until(
                    lambda n=n: agent_storage(state)["crossings_total"] == 2 + n,  # type: ignore[misc]
                    30,
                    f"vehicle {n + 2} ended by the agent",
                )
            status = agent_storage(state)
            assert status["storage"]["alarm"] == "storage.full"
            assert status["storage"]["held_events"] >= 2 * while_full
            assert status["storage"]["held_crossings"] == while_full
            assert len(ends(consumer)) == 1  # held, not published before they are stored
            wait_until(lambda: "storage.full" in lane_alarms(consumer), 30, "storage.full alarm")
            body, retain = retained_status(broker)
            assert retain and "storage.full" in body["alarms"] and body["state"] == "online"
            full_lines = [
                line for line in agent.output().splitlines() if "storage.full: cannot write" in line
            ]
            assert len(full_lines) == 1, agent.output()
            assert "disk" in full_lines[0] and "holding crossing events in memory" in full_lines[0]

            filler.unlink()  # space returns
            wait_until(
                lambda: len(ends(consumer)) == 1 + while_full, 60, "every held crossing sent"
            )
            wait_until(lambda: "storage.full" not in lane_alarms(consumer), 30, "alarm cleared")
            body, retain = retained_status(broker)
            assert retain and "storage.full" not in body["alarms"]
            (recovered,) = [
                line for line in agent.output().splitlines() if "storage.full cleared" in line
            ]
            committed = re.search(r"committed (\d+) held crossing events", recovered)
            assert committed is not None and int(committed.group(1)) >= 2 * while_full
            assert agent.stop() == 0

        events = consumer.crossings()
        check_delivery(events, max(int(e["lane_seq"]) for e in events))  # type: ignore[call-overload]
        per_crossing: dict[str, list[str]] = {}
        for e in sorted(events, key=lambda e: int(e["lane_seq"])):  # type: ignore[call-overload]
            per_crossing.setdefault(str(e["crossing_id"]), []).append(str(e["type"]))
        assert len(per_crossing) == 1 + while_full
        for types in per_crossing.values():
            assert types[0] == "new" and types.count("end") == 1 and types[-1] == "end"
    finally:
        consumer.close()


def test_past_the_held_bound_the_agent_exits_4_saying_how_many_it_held(
    broker: LocalBroker,
    lane_io: tuple[SimLoop, LaneIoSimulator, int],
    small_disk: Path,
    tmp_path: Path,
) -> None:
    state = small_disk / "state"
    config = lane_config(tmp_path, state, broker, lane_io[2], held=3)
    with Agent(config) as agent:
        wait_until(lambda: "device io (laneio.modbus) is UP" in agent.output(), 30, "io UP")
        fill(small_disk)
        drive(lane_io)  # new + end: held
        wait_until(lambda: agent_storage(state)["storage"]["held_events"] >= 2, 30, "2 held")
        drive(lane_io)  # the fourth event is one more than storage.held_events
        assert agent.process is not None
        assert agent.process.wait(60) == 4, agent.output()
        output = agent.output()
    assert "more than 3 crossing events held in memory" in output
    (lost,) = [line for line in output.splitlines() if "CRITICAL" in line]
    assert "stopping with 4 crossing events of 2 crossings still held in memory" in lost
    assert "database or disk is full" in lost
    assert output.strip().splitlines()[-1].startswith("error: stopping with 4 crossing events")
    assert "Traceback" not in output


@pytest.mark.parametrize("ran_before", [True, False], ids=["existing-state", "first-start"])
def test_start_on_a_full_disk_exits_4_with_one_line(
    broker: LocalBroker,
    lane_io: tuple[SimLoop, LaneIoSimulator, int],
    small_disk: Path,
    tmp_path: Path,
    ran_before: bool,
) -> None:
    state = small_disk / "state"
    config = lane_config(tmp_path, state, broker, lane_io[2])
    if ran_before:
        with Agent(config) as agent:
            wait_until(lambda: (state / "control.sock").exists(), 30, "the agent running")
            assert agent.stop() == 0
    fill(small_disk)
    run = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--config", str(config)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = (run.stdout + run.stderr).strip()
    assert run.returncode == 4, output
    assert "Traceback" not in output
    (line,) = output.splitlines()
    assert line.startswith("error: ") and "full" in line and str(small_disk) in line


def test_a_crossing_left_open_by_kill_9_is_ended_interrupted_on_restart(
    broker: LocalBroker, lane_io: tuple[SimLoop, LaneIoSimulator, int], tmp_path: Path
) -> None:
    loop, io, io_port = lane_io
    config = lane_config(tmp_path, tmp_path / "state", broker, io_port)
    consumer = Consumer(broker.port)
    consumer.wait_subscribed()
    try:
        with Agent(config) as agent:
            wait_until(
                lambda: any(b["state"] == "UP" for b in consumer.bodies("/device/io/status")),
                30,
                "lane I/O UP",
            )
            loop.call(lambda: io.set_input("entry_loop", True))  # a vehicle stops on the loop
            wait_until(lambda: bool(consumer.crossings()), 30, "the crossing's new")
            agent.kill()
        (new,) = consumer.crossings()
        assert new["type"] == "new"
        loop.call(lambda: io.set_input("entry_loop", False))  # it leaves while no agent runs

        with Agent(config) as agent:
            wait_until(lambda: bool(ends(consumer)), 60, "an end after the restart")
            (end,) = ends(consumer)
            assert end["crossing_id"] == new["crossing_id"]
            assert end["end_reason"] == "interrupted"
            assert end["lane_seq"] == new["lane_seq"] + 1  # type: ignore[operator]
            assert end["boot_seq"] == new["boot_seq"] + 1  # type: ignore[operator]
            assert end["event_id"] != new["event_id"] and end["end"] is not None
            assert any(n.startswith("interrupted:") for n in end["coverage"]["notes"])
            assert agent.stop() == 0
            assert "left open (end_reason interrupted)" in agent.output()

        with Agent(config) as agent:  # ended once: the next start ends nothing again
            wait_until(lambda: "starting: boot_seq 3" in agent.output(), 30, "third start")
            assert "left open" not in agent.output()
            assert agent.stop() == 0
        assert len(ends(consumer)) == 1
    finally:
        consumer.close()
