"""A failure injected into each part of the lane: logged once with its traceback, then either
restarted (device session, recogniser) or the agent stops and exits non-zero (fusion, the
outbox writer, the publisher thread), so that systemd restarts it.

Failures come in through what production uses: the agent's public ``driver_factory`` and
``recognizer_factory`` (a driver whose session has a bug, a recogniser that raises once), a
device that emits a reading fusion cannot take, and a hostile store (a trigger that refuses
crossing rows, a row the publisher cannot read). Nothing here patches the agent's insides.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from drivers.base import Driver
from drivers.readings import LaneIoState, WeightReading
from drivers.registry import create_driver
from edge.config import LaneConfig, RecognitionConfig, parse_config
from edge.devtools.localbroker import LocalBroker, free_port
from edge.errors import StageError
from edge.lane import LaneAgent, load_recognizer
from edge.outbox import Outbox
from tests.conftest import lane_yaml
from tests.ops.support import REPO, AgentProcess, scrape

DATA = REPO / "tests" / "recognition" / "data"
DEADLINE_S = 60.0  # generous: the machine may be loaded; conditions are waited on, not timed


def config_for(tmp_path: Path, port: int, extra: str = "") -> LaneConfig:
    return parse_config(lane_yaml(tmp_path / "state", port, extra=extra))


async def run_until(
    agent: LaneAgent, until: Callable[[], bool], *, stop_after: bool = True
) -> BaseException | None:
    """Run the agent until ``until()`` holds (then stop it) or it ends by itself."""
    stop = asyncio.Event()
    task = asyncio.create_task(agent.run(stop))
    deadline = time.monotonic() + DEADLINE_S
    while not task.done() and not until():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.05)
    if stop_after:
        stop.set()
    try:
        async with asyncio.timeout(DEADLINE_S):
            await task
    except Exception as exc:
        return exc
    return None


def failures(caplog: pytest.LogCaptureFixture, text: str) -> list[logging.LogRecord]:
    """ERROR records about ``text`` that carry a traceback: as ``exc_info``, or folded into the
    message by the log redaction that `lane run` installs (edge.redact), once any test in this
    process has installed it."""
    return [
        r
        for r in caplog.records
        if r.levelno >= logging.ERROR
        and text in r.getMessage()
        and (r.exc_info is not None or "Traceback (most recent call last)" in r.getMessage())
    ]


def counter(agent: LaneAgent, name: str, part: str) -> float:
    value = agent.metrics.registry.get_sample_value(name, {"part": part})
    return value or 0.0


# --- restarted ----------------------------------------------------------------------------


class BuggyOnce(Driver):
    """A lane I/O driver whose first session hits a bug, then works (reports the inputs)."""

    kind = "laneio.test"

    def __init__(self, device_id: str, options: Any, *, timeout_ms: int) -> None:
        super().__init__(device_id, options, timeout_ms=timeout_ms, backoff_min_s=0.05)
        self.sessions = 0

    async def _connect(self) -> None:
        pass

    async def _session(self) -> None:
        self.sessions += 1
        if self.sessions == 1:
            raise KeyError("injected: a driver bug in the first session")
        while True:
            inputs = {"entry_loop": False}
            self._emit(LaneIoState(device_id=self.device_id, inputs=inputs, outputs={}))
            await asyncio.sleep(0.1)

    async def _disconnect(self) -> None:
        pass


def test_a_device_session_that_raises_is_logged_once_and_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    devices = "devices:\n  - {id: io, kind: laneio.modbus, host: 127.0.0.1, port: 1}\n"
    made: list[BuggyOnce] = []

    def factory(device_id: str, kind: str, options: dict[str, Any], timeout_ms: int) -> Driver:
        real = create_driver(device_id, kind, options, timeout_ms)  # validates the options
        made.append(BuggyOnce(device_id, real.options, timeout_ms=timeout_ms))
        return made[-1]

    agent = LaneAgent(config_for(tmp_path, free_port(), devices), driver_factory=factory)
    caplog.set_level(logging.INFO)

    def recovered() -> bool:
        up = agent.metrics.device_states().get("io")
        return bool(made) and made[0].sessions >= 2 and up is not None and up.value == "UP"

    error = asyncio.run(run_until(agent, recovered))
    assert error is None, error
    assert len(failures(caplog, "device io: unexpected driver error")) == 1
    assert counter(agent, "lane_supervisor_restarts_total", "device:io") == 1
    assert counter(agent, "lane_stage_failures_total", "device:io") == 1
    fault = agent.metrics.registry.get_sample_value(
        "lane_device_faults_total", {"device": "io", "fault": "driver_bug"}
    )
    assert fault == 1
    assert agent.metrics.device_states()["io"].value == "UP"


class FailsOnce:
    """The real recogniser, except that its first read raises (an ONNX session error)."""

    def __init__(self, config: RecognitionConfig) -> None:
        self.real = load_recognizer(config)
        self.reads = 0

    def read(self, image: Any) -> Any:
        self.reads += 1
        if self.reads == 1:
            raise RuntimeError("injected: the inference session failed")
        return self.real.read(image)


def test_a_recogniser_that_raises_is_logged_once_and_restarted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    camera = f"devices:\n  - {{id: cam, kind: anpr.file, path: '{DATA}', fps: 10, loop: true}}\n"
    made: list[FailsOnce] = []

    def factory(config: RecognitionConfig) -> FailsOnce:
        made.append(FailsOnce(config))
        return made[-1]

    agent = LaneAgent(config_for(tmp_path, free_port(), camera), recognizer_factory=factory)
    caplog.set_level(logging.INFO)

    def read_after_restart() -> bool:
        count = agent.metrics.registry.get_sample_value(
            "lane_recognition_latency_seconds_count", {"camera": "cam"}
        )
        return bool(count and count >= 2)

    error = asyncio.run(run_until(agent, read_after_restart))
    assert error is None, error
    assert len(made) == 1 and made[0].reads >= 3
    assert len(failures(caplog, "recognize failed, it is restarted")) == 1
    assert counter(agent, "lane_supervisor_restarts_total", "recognize") == 1
    assert counter(agent, "lane_stage_failures_total", "recognize") == 1


# --- fatal: the agent stops and exits 1 ----------------------------------------------------


class BadScale(Driver):
    """A weighbridge driver with a bug: it emits a weight that is not a number."""

    kind = "weighbridge.test"

    async def _connect(self) -> None:
        pass

    async def _session(self) -> None:
        while True:
            bad: Any = None
            self._emit(
                WeightReading(
                    device_id=self.device_id,
                    gross_kg=bad,
                    stable=True,
                    motion=False,
                    division_kg=10,
                )
            )
            await asyncio.sleep(0.1)

    async def _disconnect(self) -> None:
        pass


def test_fusion_that_raises_stops_the_agent_with_exit_1(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    devices = "devices:\n  - {id: scale, kind: weighbridge.toledo, url: /dev/null}\n"

    def factory(device_id: str, kind: str, options: dict[str, Any], timeout_ms: int) -> Driver:
        real = create_driver(device_id, kind, options, timeout_ms)
        return BadScale(device_id, real.options, timeout_ms=timeout_ms)

    agent = LaneAgent(config_for(tmp_path, free_port(), devices), driver_factory=factory)
    caplog.set_level(logging.INFO)
    error = asyncio.run(run_until(agent, lambda: False, stop_after=False))
    assert isinstance(error, StageError) and error.exit_code == 1, error
    assert "fusion failed (TypeError" in str(error)
    assert len(failures(caplog, "fusion failed, the agent stops")) == 1
    assert counter(agent, "lane_stage_failures_total", "fusion") == 1
    assert counter(agent, "lane_supervisor_restarts_total", "fusion") == 0


def test_an_outbox_writer_that_raises_stops_the_agent_with_exit_1(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    Outbox(state / "outbox.db").close()
    # A hostile store: every crossing row is refused with a constraint error, which is no
    # storage fault the writer can wait out (those are held and retried).
    db = sqlite3.connect(state / "outbox.db")
    db.execute(
        "CREATE TRIGGER refuse BEFORE INSERT ON crossings "
        "BEGIN SELECT RAISE(ABORT, 'injected: crossing refused'); END"
    )
    db.commit()
    db.close()
    scripted = "scripted:\n  vehicles: 3\n  interval_ms: 50\n"
    agent = LaneAgent(config_for(tmp_path, free_port(), scripted))
    caplog.set_level(logging.INFO)
    error = asyncio.run(run_until(agent, lambda: False, stop_after=False))
    assert isinstance(error, StageError) and error.exit_code == 1, error
    assert "IntegrityError" in str(error)
    logged = failures(caplog, "failed, the agent stops")
    assert len(logged) == 1
    assert "add_crossings" in caplog.text  # the traceback: the writer's commit raised
    assert counter(agent, "lane_stage_failures_total", "scripted") == 1


def test_a_publisher_thread_that_raises_ends_the_process_with_exit_1(
    broker: LocalBroker, tmp_path: Path
) -> None:
    state = tmp_path / "state"
    state.mkdir()
    Outbox(state / "outbox.db").close()
    # A hostile store: a row whose properties the publisher thread cannot read.
    db = sqlite3.connect(state / "outbox.db")
    db.execute(
        "INSERT INTO outbox (kind, priority, topic, payload, properties, created_ns)"
        " VALUES ('telemetry', 3, 'border/KZ-TEST/T1/telemetry', x'7b7d', '{broken', ?)",
        (time.time_ns(),),
    )
    db.commit()
    db.close()
    config = tmp_path / "lane.yaml"
    config.write_text(lane_yaml(state, broker.port))
    out = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--config", str(config)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=DEADLINE_S,
    )
    assert out.returncode == 1, out.stderr
    log = out.stderr
    assert log.count("publisher failed, the agent stops") == 1, log
    assert log.count("Traceback (most recent call last)") == 1, log
    assert "JSONDecodeError" in log
    assert "error: publisher failed (JSONDecodeError" in log


# --- observability ----------------------------------------------------------------------


def test_supervisor_and_device_figures_on_a_running_agents_endpoint(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Restarts, device faults and recognition latency, read from /metrics while it runs."""
    port = free_port()
    extra = (
        f"metrics:\n  listen: 127.0.0.1:{port}\n"
        "devices:\n"
        f"  - {{id: cam, kind: anpr.file, path: '{DATA}', fps: 10, loop: true}}\n"
        "  - {id: io, kind: laneio.modbus, host: 127.0.0.1, port: 1}\n"
    )
    made: list[BuggyOnce] = []

    def drivers(device_id: str, kind: str, options: dict[str, Any], timeout_ms: int) -> Driver:
        real = create_driver(device_id, kind, options, timeout_ms)
        if kind != "laneio.modbus":
            return real
        made.append(BuggyOnce(device_id, real.options, timeout_ms=timeout_ms))
        return made[-1]

    agent = LaneAgent(
        config_for(tmp_path, free_port(), extra),
        driver_factory=drivers,
        recognizer_factory=FailsOnce,
    )
    scraped: dict[str, float] = {}

    def seen() -> bool:
        try:
            scraped.update(scrape(port))
        except OSError:
            return False
        return (
            scraped.get('lane_supervisor_restarts_total{part="recognize"}') == 1
            and scraped.get('lane_supervisor_restarts_total{part="device:io"}') == 1
            # One sure read per episode (edge/recognize/schedule.py): the looped images are
            # one long episode with no crossing, so the restarted part reads at least once.
            and scraped.get('lane_recognition_latency_seconds_count{camera="cam"}', 0) >= 1
        )

    try:
        error = asyncio.run(run_until(agent, seen))
    except AssertionError as exc:
        wanted = {k: v for k, v in scraped.items() if "recogni" in k or "restarts" in k}
        raise AssertionError(f"{exc}: {wanted}") from None
    assert error is None, error
    assert scraped['lane_stage_failures_total{part="recognize"}'] == 1
    assert scraped['lane_device_faults_total{device="io",fault="driver_bug"}'] == 1
    assert scraped["lane_mqtt_resent_after_timeout_total"] == 0
    assert scraped["lane_commands_dropped_total"] == 0
    assert scraped["lane_commands_refused_total"] == 0


class BriefOutage(Driver):
    """Lane I/O that drops its link once for a tenth of a second, then runs on."""

    kind = "laneio.test"

    def __init__(self, device_id: str, options: Any, *, timeout_ms: int) -> None:
        super().__init__(
            device_id, options, timeout_ms=timeout_ms, backoff_min_s=0.1, backoff_max_s=0.1
        )
        self.sessions = 0

    async def _connect(self) -> None:
        pass

    async def _session(self) -> None:
        self.sessions += 1
        for _ in range(5 if self.sessions == 1 else 10**9):
            inputs = {"entry_loop": False}
            self._emit(LaneIoState(device_id=self.device_id, inputs=inputs, outputs={}))
            await asyncio.sleep(0.05)
        raise ConnectionResetError("injected: the link dropped")

    async def _disconnect(self) -> None:
        pass


def test_a_sub_second_outage_is_one_down_and_one_up_line(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Drivers push transitions: an outage shorter than any polling period is still seen,
    and each transition is one log line (not one each from drivers, agent and metrics)."""
    devices = "devices:\n  - {id: io, kind: laneio.modbus, host: 127.0.0.1, port: 1}\n"
    made: list[BriefOutage] = []

    def factory(device_id: str, kind: str, options: dict[str, Any], timeout_ms: int) -> Driver:
        real = create_driver(device_id, kind, options, timeout_ms)
        made.append(BriefOutage(device_id, real.options, timeout_ms=timeout_ms))
        return made[-1]

    agent = LaneAgent(config_for(tmp_path, free_port(), devices), driver_factory=factory)
    caplog.set_level(logging.DEBUG)

    def up_again() -> bool:
        return sum(r.getMessage().endswith(" is UP") for r in caplog.records) == 2

    assert asyncio.run(run_until(agent, up_again)) is None
    assert made[0].sessions == 2
    lines = [
        r.getMessage()
        for r in caplog.records
        if r.levelno >= logging.INFO and "device io" in r.getMessage()
    ]
    assert lines == [
        "device io (laneio.modbus) is UP",
        "device io (laneio.modbus) is DOWN: connection: injected: the link dropped",
        # Back, with a fault within degraded_hold_s; UP once that has passed.
        "device io (laneio.modbus) is back DEGRADED: connection: injected: the link dropped",
        "device io (laneio.modbus) is UP",
    ], lines
    transitions = agent.metrics.registry.get_sample_value(
        "lane_device_down_transitions_total", {"device": "io"}
    )
    assert transitions == 1


def test_a_dead_modbus_device_leaves_no_pymodbus_warnings_in_the_agent_log(
    tmp_path: Path,
) -> None:
    dead, metrics = free_port(), free_port()
    extra = (
        f"metrics:\n  listen: 127.0.0.1:{metrics}\n"
        "devices:\n"
        f"  - {{id: io, kind: laneio.modbus, host: 127.0.0.1, port: {dead}, timeout_ms: 300}}\n"
    )
    config = tmp_path / "lane.yaml"
    config.write_text(lane_yaml(tmp_path / "state", free_port(), extra=extra))
    agent = AgentProcess(config, log_path=tmp_path / "log")
    try:
        agent.wait_log("device io (laneio.modbus) is DOWN", DEADLINE_S)
        # Several failed connects, each of which pymodbus itself reports at WARNING.
        deadline = time.monotonic() + DEADLINE_S
        while True:
            try:
                scraped = scrape(metrics)
            except OSError:
                scraped = {}
            faults = sum(
                v
                for k, v in scraped.items()
                if k.startswith('lane_device_faults_total{device="io"')
            )
            if faults >= 4:
                break
            assert time.monotonic() < deadline, (scraped, agent.log())
            time.sleep(0.2)
    finally:
        assert agent.stop() == 0, agent.log()
    log = agent.log_path.read_text()
    assert "pymodbus" not in log, log
    assert log.count("device io (laneio.modbus) is DOWN") == 1, log
