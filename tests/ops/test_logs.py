"""Logging for journald: level prefixes on the stream, native fields on the journal socket."""

from __future__ import annotations

import logging
import os
import socket
import struct
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from edge import logs
from edge.devtools.localbroker import free_port
from tests.conftest import lane_yaml
from tests.ops.support import REPO


def parse_native(data: bytes) -> dict[str, str]:
    """Decode one journal native-protocol datagram (both field forms)."""
    fields: dict[str, str] = {}
    while data:
        line, _, rest = data.partition(b"\n")
        if b"=" in line:
            name, _, value = line.partition(b"=")
            fields[name.decode()] = value.decode()
            data = rest
        else:
            (size,) = struct.unpack("<Q", rest[:8])
            fields[line.decode()] = rest[8 : 8 + size].decode()
            assert rest[8 + size : 9 + size] == b"\n"
            data = rest[9 + size :]
    return fields


@pytest.fixture
def journal() -> Iterator[tuple[socket.socket, str]]:
    with tempfile.TemporaryDirectory(prefix="j-") as tmp:
        path = str(Path(tmp) / "socket")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(path)
        sock.settimeout(2)
        yield sock, path
        sock.close()


def test_journal_entries_carry_priority_and_lane_fields(
    journal: tuple[socket.socket, str],
) -> None:
    sock, path = journal
    fallback = logging.StreamHandler(sys.stderr)
    handler = logs.JournalHandler(fallback, path=path)
    logger = logging.getLogger("edge.test-journal")
    logger.propagate = False
    logger.addHandler(handler)
    logs.set_lane_context("KZ-01", "T3")
    try:
        logger.warning("device %s is DOWN", "scale", extra={"device": "scale"})
        fields = parse_native(sock.recv(65536))
        assert fields["MESSAGE"] == "edge.test-journal: device scale is DOWN"
        assert fields["PRIORITY"] == "4"
        assert fields["SYSLOG_IDENTIFIER"] == "lane-T3"
        assert (fields["CHECKPOINT"], fields["LANE"], fields["DEVICE"]) == ("KZ-01", "T3", "scale")
        assert "CROSSING_ID" not in fields

        try:
            raise ValueError("bad frame")
        except ValueError:
            logger.exception("crossing failed", extra={"crossing_id": "c-1"})
        fields = parse_native(sock.recv(65536))
        assert fields["PRIORITY"] == "3"
        assert fields["CROSSING_ID"] == "c-1"
        # One entry with the whole traceback, not one entry per line.
        assert "Traceback" in fields["MESSAGE"] and "ValueError: bad frame" in fields["MESSAGE"]
    finally:
        logger.removeHandler(handler)
        handler.close()


def test_journal_unreachable_falls_back_to_the_stream(tmp_path: Path) -> None:
    records: list[logging.LogRecord] = []

    class Keep(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            records.append(record)

    handler = logs.JournalHandler(Keep(), path=str(tmp_path / "gone"))
    record = logging.LogRecord("edge.x", logging.ERROR, __file__, 1, "still here", None, None)
    handler.handle(record)
    assert records == [record] and handler.failures == 1
    handler.close()


def test_agent_under_journald_stream_prefixes_priorities(tmp_path: Path) -> None:
    """The real agent with stderr as "journald's stream" (and no native socket here)."""
    config = tmp_path / "lane.yaml"
    # A port nobody listens on: the agent warns (priority 4) that the broker is unreachable.
    config.write_text(lane_yaml(tmp_path / "state", free_port()))
    log_path = tmp_path / "stderr"
    with log_path.open("wb") as stderr:
        stat = os.fstat(stderr.fileno())
        env = dict(os.environ, JOURNAL_STREAM=f"{stat.st_dev}:{stat.st_ino}")
        proc = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "--config", str(config)],
            cwd=REPO,
            env=env,
            stderr=stderr,
            stdout=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 15
            while "<4>" not in log_path.read_text() and time.monotonic() < deadline:
                time.sleep(0.1)
        finally:
            proc.terminate()
            assert proc.wait(20) == 0
    lines = log_path.read_text().splitlines()
    assert lines, "no log output"
    assert all(line[:3] in {"<3>", "<4>", "<6>", "<7>"} for line in lines), lines
    assert any(line.startswith("<6>edge.lane: lane KZ-TEST/T1 starting") for line in lines)
    assert any(line.startswith("<4>edge.publish: cannot reach broker") for line in lines)


def test_stream_is_journal_only_for_the_named_file(tmp_path: Path) -> None:
    with (tmp_path / "a").open("w") as a, (tmp_path / "b").open("w") as b:
        stat = os.fstat(a.fileno())
        env = {"JOURNAL_STREAM": f"{stat.st_dev}:{stat.st_ino}"}
        assert logs.stream_is_journal(a, env)
        assert not logs.stream_is_journal(b, env)  # inherited, but stderr was redirected
        assert not logs.stream_is_journal(a, {"JOURNAL_STREAM": "garbage"})
        assert not logs.stream_is_journal(a, {})


def test_text_lines_show_structured_fields() -> None:
    formatter = logs.TextFormatter("%(levelname)s %(message)s")
    record = logging.LogRecord("edge.x", logging.INFO, __file__, 1, "read", None, None)
    record.device = "cam-front"
    record.crossing_id = "c-9"
    assert formatter.format(record) == "INFO read  device=cam-front crossing_id=c-9"


def test_a_shell_run_agent_logs_to_its_file_and_the_bundle_takes_it(
    broker_for_logs: int, tmp_path: Path
) -> None:
    """`lane run --log-file` writes a rotated file; the support bundle says there is no journal
    and carries that file (issue 24, item 6)."""
    config = tmp_path / "lane.yaml"
    config.write_text(lane_yaml(tmp_path / "state", broker_for_logs))
    log_file = tmp_path / "logs" / "lane.log"
    env = {k: v for k, v in os.environ.items() if k != "JOURNAL_STREAM"}
    agent = subprocess.Popen(
        [sys.executable, "-m", "edge", "run", "--config", str(config), "--log-file", str(log_file)],
        cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while "MQTT connected" not in (log_file.read_text() if log_file.exists() else ""):
            assert agent.poll() is None and time.monotonic() < deadline, "agent did not connect"
            time.sleep(0.1)
    finally:
        agent.terminate()
        assert agent.wait(30) == 0
    text = log_file.read_text()
    assert "lane KZ-TEST/T1 starting" in text and "lane agent stopped" in text
    assert text.splitlines()[0][:4].isdigit()  # full dates in a file that outlives a day
    bundle = tmp_path / "support.tar.gz"
    made = subprocess.run(
        [sys.executable, "-m", "edge", "diag", "bundle", "-c", str(config), "--out", str(bundle)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert made.returncode == 0, made.stderr
    with tarfile.open(bundle) as tar:
        members = {
            m.name.split("/", 1)[1]: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }
    assert b"lane agent stopped" in members["logs/lane.log"]
    readme = members["logs/README.txt"].decode()
    assert "not run by systemd" in readme and str(log_file) in readme


@pytest.fixture
def broker_for_logs(tmp_path: Path) -> Iterator[int]:
    from edge.devtools.localbroker import LocalBroker

    broker = LocalBroker(workdir=tmp_path / "broker").start()
    yield broker.port
    broker.stop()
