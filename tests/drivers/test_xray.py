"""xray.uff_dir: scans attached only once completely written, hashed, bounded, never twice.

The partial-write tests run the scanner's writer (simulators.xray) as a separate process that
writes one step (a data chunk, half a sidecar) and then waits for the test, so the driver is
shown each half-written state for several of its polls: no timing is assumed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import Driver, SensorState
from drivers.readings import XrayScan
from drivers.registry import create_driver
from drivers.xray.sidecar import Sidecar, SidecarFault, parse_sidecar, safe_relative
from drivers.xray.watch import FileState, Settle, incomplete, wrong
from simulators.xray import ScanDrop, notify, write_scan
from tests.drivers.conftest import run, until

FAST = {"poll_ms": 20, "stable_polls": 2, "settle_ms": 0}


def _driver(path: Path, **options: Any) -> Driver:
    return create_driver(
        "xray1", "xray.uff_dir", {"path": str(path), **FAST, **options}, 1000,
        backoff_min_s=0.05, backoff_max_s=0.2,
    )  # fmt: skip


async def _polls(driver: Driver) -> int:
    return int((await driver.probe()).identity["polls"])


async def _let_it_look(driver: Driver, polls: int = 4) -> None:
    """Wait until the driver has looked at the directory ``polls`` more times."""
    start = await _polls(driver)

    async def looked() -> bool:
        return await _polls(driver) >= start + polls

    await until(looked, 20)


async def _writer(root: Path, *args: str) -> asyncio.subprocess.Process:
    return await asyncio.create_subprocess_exec(
        sys.executable, "-m", "simulators.xray", str(root), "--step", *args,
        stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
    )  # fmt: skip


async def _line(process: asyncio.subprocess.Process) -> str:
    assert process.stdout is not None
    async with asyncio.timeout(20):
        return (await process.stdout.readline()).decode().strip()


async def _next(process: asyncio.subprocess.Process) -> None:
    assert process.stdin is not None
    process.stdin.write(b"\n")
    await process.stdin.drain()


async def _stepwise(
    driver: Driver, process: asyncio.subprocess.Process, count: int
) -> tuple[list[str], Any]:
    """Show the driver each of the first ``count - 1`` half-written states (none may be
    attached), let the writer take its last step; return the steps and the writer's truth."""
    steps = []
    for i in range(count):
        line = await _line(process)
        assert line.startswith("step "), line
        steps.append(line[5:])
        if i < count - 1:
            await _let_it_look(driver)
            assert driver.health().readings == 0, f"attached after {steps[-1]!r}"
        await _next(process)
    done = await _line(process)
    assert done.startswith("done "), done
    assert await process.wait() == 0
    return steps, json.loads(done[5:])


def test_sidecar_last_scan_is_attached_only_once_complete(tmp_path: Path) -> None:
    async def main() -> None:
        driver = _driver(tmp_path)
        await driver.open()
        process = await _writer(
            tmp_path, "--scan-id", "GATE2-000123", "--size", "300000", "--chunks", "4",
            "--split-sidecar", "--plate", "01A123BC", "--container", "CSQU3054383",
        )  # fmt: skip
        try:
            steps, truth = await _stepwise(driver, process, 6)  # 4 chunks, 2 sidecar halves
            assert steps[3] == "scan.img 300000 of 300000 bytes" and steps[5] == "sidecar"
            reading = await driver.next_reading(20)
            assert isinstance(reading, XrayScan)
            assert reading.scan_id == "GATE2-000123" and reading.device_id == "xray1"
            assert [(f.name, f.size, f.sha256) for f in reading.files] == [
                ("scan.img", 300_000, truth["scan.img"])
            ]
            assert reading.scanner_plate == "01A123BC"
            assert reading.scanner_container == "CSQU3054383"
            assert reading.started.tzinfo is UTC and reading.finished >= reading.started
            assert reading.source == "GATE2-000123/scan.json"
            # The half sidecar was seen, stable, and refused; the whole one is not.
            assert driver.health().faults.get("bad_sidecar", 0) >= 1
            await _let_it_look(driver)
            assert driver.health().readings == 1  # never twice
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await driver.close()

    run(main(), 60)


def test_sidecar_first_scan_waits_for_the_listed_sizes(tmp_path: Path) -> None:
    async def main() -> None:
        driver = _driver(tmp_path)
        await driver.open()
        process = await _writer(
            tmp_path, "--scan-id", "S7", "--size", "250000", "--chunks", "5",
            "--sidecar", "first", "--layout", "files",
        )  # fmt: skip
        try:
            steps, truth = await _stepwise(driver, process, 6)  # sidecar, 5 chunks
            assert steps[0] == "sidecar" and steps[5] == "scan.img 250000 of 250000 bytes"
            reading = await driver.next_reading(20)
            assert isinstance(reading, XrayScan) and reading.source == "S7.scan.json"
            assert [(f.name, f.sha256) for f in reading.files] == [
                ("S7.scan.img", truth["scan.img"])
            ]
            assert driver.health().faults == {}
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            await driver.close()

    run(main(), 60)


def test_limits_on_files_and_sizes(tmp_path: Path) -> None:
    drop = ScanDrop("BIG", files={"a.img": 1000, "b.img": 80_000, "c.img": 10})
    truth = write_scan(drop, tmp_path)

    async def main() -> None:
        driver = _driver(tmp_path, max_files=2, max_file_mb=0.05)
        await driver.open()
        try:
            reading = await driver.next_reading(20)
            assert isinstance(reading, XrayScan)
            assert [(f.name, f.sha256) for f in reading.files] == [
                ("a.img", truth["a.img"]), ("b.img", None),
            ]  # fmt: skip
            assert reading.files[1].size == 80_000 and reading.files_omitted == 1
            assert driver.health().faults.get("file_too_large") == 1
        finally:
            await driver.close()

    run(main(), 30)


def _sidecar(folder: Path, document: dict[str, Any] | bytes) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    data = document if isinstance(document, bytes) else json.dumps(document).encode()
    (folder / "scan.json").write_bytes(data)


def _document(scan_id: str, **extra: Any) -> dict[str, Any]:
    now = datetime.now(UTC)
    return {
        "scan_id": scan_id,
        "started": (now - timedelta(seconds=20)).isoformat(),
        "finished": now.isoformat(),
        **extra,
    }


def test_a_bad_sidecar_is_refused_once_and_read_when_fixed(tmp_path: Path) -> None:
    scan = tmp_path / "S1"
    _sidecar(scan, b'{"scan_id": "S1", "started": ')
    (scan / "scan.img").write_bytes(b"x" * 100)

    async def main() -> None:
        driver = _driver(tmp_path)
        await driver.open()
        try:
            await until(lambda: driver.health().faults.get("bad_sidecar") == 1, 20)
            await _let_it_look(driver)
            health = driver.health()
            assert health.readings == 0 and health.faults.get("bad_sidecar") == 1  # once
            assert health.state is SensorState.DEGRADED
            problems = (await driver.probe()).identity["last_problems"]
            assert problems and problems[-1].startswith("bad_sidecar: S1/scan.json: not JSON")
            _sidecar(scan, _document("S1"))
            reading = await driver.next_reading(20)
            assert isinstance(reading, XrayScan) and reading.scan_id == "S1"
            assert reading.files[0].sha256 == hashlib.sha256(b"x" * 100).hexdigest()
        finally:
            await driver.close()

    run(main(), 30)


@pytest.mark.parametrize(
    ("files", "fault"),
    [
        ([{"name": "scan.img", "size": 50}], "scan_mismatch"),  # on disk: 100 bytes
        (["../../etc/passwd"], "bad_sidecar"),
        (["/etc/passwd"], "bad_sidecar"),
    ],
)
def test_sidecars_that_cannot_match_are_refused(
    tmp_path: Path, files: list[Any], fault: str
) -> None:
    scan = tmp_path / "S1"
    _sidecar(scan, _document("S1", files=files))
    (scan / "scan.img").write_bytes(b"x" * 100)

    async def main() -> None:
        driver = _driver(tmp_path)
        await driver.open()
        try:
            await until(lambda: driver.health().faults.get(fault) == 1, 20)
            await _let_it_look(driver)
            assert driver.health().readings == 0
        finally:
            await driver.close()

    run(main(), 30)


def test_old_scans_are_skipped_and_temporary_names_ignored(tmp_path: Path) -> None:
    old = ScanDrop("OLD", finished=datetime.now(UTC) - timedelta(days=2))
    old.started = old.finished - timedelta(seconds=30)
    write_scan(old, tmp_path)
    new = tmp_path / "NEW"
    _sidecar(new, _document("NEW"))
    (new / "scan.img").write_bytes(b"image")
    (new / "more.img.part").write_bytes(b"still being copied")
    (new / ".hidden").write_bytes(b"editor swap")

    async def main() -> None:
        driver = _driver(tmp_path)
        await driver.open()
        try:
            reading = await driver.next_reading(20)
            assert isinstance(reading, XrayScan) and reading.scan_id == "NEW"
            assert [f.name for f in reading.files] == ["scan.img"]
            await _let_it_look(driver)
            identity = (await driver.probe()).identity
            assert identity["skipped_old"] == 1 and identity["emitted"] == 1
            assert driver.health().readings == 1
        finally:
            await driver.close()

    run(main(), 30)


def test_missing_directory_is_down_until_it_appears_and_no_scan_is_sent_twice(
    tmp_path: Path,
) -> None:
    drop = tmp_path / "share"

    async def main() -> None:
        driver = _driver(drop)
        await driver.open()
        try:
            await until(lambda: driver.health().reconnects >= 2, 20)
            health = driver.health()
            assert health.state is SensorState.DOWN and "missing" in (health.last_error or "")
            write_scan(ScanDrop("S1"), drop)
            reading = await driver.next_reading(20)
            assert isinstance(reading, XrayScan) and reading.scan_id == "S1"
            assert driver.health().connected  # DEGRADED for a while: it was down just now
            # The share drops and returns: the scan is still there, and not sent again.
            drop.rename(tmp_path / "away")
            await until(lambda: driver.health().state is SensorState.DOWN, 20)
            (tmp_path / "away").rename(drop)
            await until(lambda: driver.health().connected, 20)
            await _let_it_look(driver)
            assert driver.health().readings == 1
        finally:
            await driver.close()

    run(main(), 40)


# -- sans-I/O parts -----------------------------------------------------------------------


def test_sidecar_contract() -> None:
    good = parse_sidecar(
        json.dumps(
            _document("A-1", plate=" 01A123BC ", container="", vendor_field={"x": 1},
                      files=["scan.img", {"name": "sub/thumb.jpg", "size": 10}])
        ).encode()
    )  # fmt: skip
    assert isinstance(good, Sidecar)
    assert good.plate == "01A123BC" and good.container is None
    assert good.files is not None and [f.name for f in good.files] == ["scan.img", "sub/thumb.jpg"]
    now = datetime.now(UTC).isoformat()
    bad = {
        b"": "not JSON",
        b"[]": "not a JSON object",
        b"\xff\xfe": "not UTF-8",
        b"{" * 100_000: "over",
        json.dumps({"scan_id": "a", "started": now}).encode(): "finished",
        json.dumps({"scan_id": "a", "started": "2026-12-02T03:10:00", "finished": now}).encode():
            "timezone",
        json.dumps(_document("a\x00b")).encode(): "scan_id",
        json.dumps({"scan_id": "a", "started": now, "finished": "2026-01-01T00:00:00Z"}).encode():
            "before started",
    }  # fmt: skip
    for data, message in bad.items():
        result = parse_sidecar(data)
        assert isinstance(result, SidecarFault) and message in result.message, (data[:40], result)


def test_safe_relative_names() -> None:
    assert safe_relative("scan.img") and safe_relative("a/b.img")
    for name in ["../x", "a/../../x", "/etc/passwd", "C:x", "a\\b", ".", ""]:
        assert not safe_relative(name), name


@settings(deadline=None)  # a loaded machine is no failure
@given(st.binary(max_size=2000))
def test_parse_sidecar_never_raises(data: bytes) -> None:
    assert isinstance(parse_sidecar(data), Sidecar | SidecarFault)


def test_settle_needs_unchanged_looks_and_quiet_time() -> None:
    a = (FileState("scan.img", 10, 1),)
    b = (FileState("scan.img", 20, 2),)
    settle = Settle(polls=3, quiet_s=5.0)
    assert not settle.observe("k", a, 0.0)
    assert not settle.observe("k", a, 1.0)
    assert not settle.observe("k", a, 2.0)  # three looks, but only 2 s quiet
    assert settle.observe("k", a, 5.0)
    assert not settle.observe("k", b, 6.0)  # it changed: start again
    assert settle.quiet_for("k", 8.0) == 2.0
    settle.keep_only(set())
    assert len(settle) == 0


def test_listed_sizes_decide_completeness() -> None:
    sidecar = parse_sidecar(json.dumps(_document("a", files=[{"name": "x", "size": 10}])).encode())
    assert isinstance(sidecar, Sidecar)
    assert incomplete(sidecar, ()) == "no data files yet"
    assert incomplete(sidecar, (FileState("x", 4, 1),)) == "x has 4 of 10 bytes"
    assert incomplete(sidecar, (FileState("x", 10, 1),)) is None
    assert wrong(sidecar, (FileState("x", 11, 1),)) == "x has 11 bytes, the sidecar lists 10"


def test_the_documented_lane_config_validates(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The YAML example of docs/cargo.md, added to the truck lane example, is a valid config."""
    creds = tmp_path / "creds"  # the example's secrets, as systemd would hand them over
    creds.mkdir()
    for name in ("mqtt-password", "cam-password"):
        (creds / name).write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    import re

    import yaml

    from edge.config import parse_config

    doc = Path("docs/cargo.md").read_text(encoding="utf-8")
    block = next(b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S) if "xray.uff_dir" in b)
    lane = yaml.safe_load(Path("config/truck-lane.yaml").read_text(encoding="utf-8"))
    lane["devices"] = [*lane["devices"], *yaml.safe_load(block)["devices"]]
    config = parse_config(yaml.safe_dump(lane), source="lane.yaml")
    device = next(d for d in config.devices if d.kind == "xray.uff_dir")
    options = create_driver(device.id, device.kind, device.driver_options()).options
    assert options.path == "/mnt/scanner/export" and options.settle_ms == 2000  # type: ignore[attr-defined]


# -- xray.http ----------------------------------------------------------------------------


def _http_driver(**options: Any) -> Driver:
    return create_driver(
        "xray2", "xray.http", {"port": 0, **options}, 1000, backoff_min_s=0.05, backoff_max_s=0.2
    )


async def _port(driver: Driver) -> int:
    async def listening() -> bool:
        return (await driver.probe()).identity["port"] is not None

    await until(listening, 20)
    return int((await driver.probe()).identity["port"])


async def _raw(port: int, data: bytes, *, half_close: bool = True) -> bytes:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        await writer.drain()
        if half_close:
            writer.write_eof()
        async with asyncio.timeout(20):
            return await reader.read()
    finally:
        writer.close()


def test_http_notification_is_emitted_once(tmp_path: Path) -> None:
    drop = ScanDrop("H-1", files={"scan.img": 1234, "thumb.jpg": 99}, plate="01A123BC")

    async def main() -> None:
        driver = _http_driver(password="s3cret-token")
        await driver.open()
        try:
            port = await _port(driver)
            assert driver.health().state is SensorState.UP  # no heartbeat_s: UP once listening
            assert (await notify("127.0.0.1", port, drop))[0] == 401
            assert (await notify("127.0.0.1", port, drop, token="wrong"))[0] == 401
            status, body = await notify("127.0.0.1", port, drop, token="s3cret-token")
            assert status == 202 and json.loads(body) == {"scan_id": "H-1"}
            reading = await driver.next_reading(20)
            assert isinstance(reading, XrayScan) and reading.scan_id == "H-1"
            truth = drop.truth()
            assert [(f.name, f.size, f.sha256) for f in reading.files] == [
                ("scan.img", 1234, truth["scan.img"]), ("thumb.jpg", 99, truth["thumb.jpg"]),
            ]  # fmt: skip
            assert reading.scanner_plate == "01A123BC" and reading.source == "http"
            # A retry after a lost answer: acknowledged, not emitted again.
            status, body = await notify("127.0.0.1", port, drop, token="s3cret-token")
            assert status == 200 and json.loads(body)["repeat"] is True
            assert driver.health().readings == 1
            assert driver.health().faults == {"bad_request": 2}
        finally:
            await driver.close()

    run(main(), 30)


def test_http_bad_requests_are_answered_and_the_receiver_survives() -> None:
    async def main() -> None:
        driver = _http_driver(max_body_kb=1)
        await driver.open()
        try:
            port = await _port(driver)

            def head(method: str, path: str, extra: str = "") -> bytes:
                return f"{method} {path} HTTP/1.1\r\nHost: x\r\n{extra}\r\n".encode()

            cases = [
                (head("GET", "/scan"), 405),
                (head("POST", "/other", "Content-Length: 0\r\n"), 404),
                (head("POST", "/scan"), 411),
                (head("POST", "/scan", "Transfer-Encoding: chunked\r\n"), 411),
                (head("POST", "/scan", "Content-Length: x\r\n"), 400),
                (head("POST", "/scan", "Content-Length: 5000\r\n"), 413),
                (head("POST", "/scan", "Content-Length: 5\r\n") + b"nope!", 400),
                (b"GARBAGE\r\n\r\n", 400),
                (b"POST /scan HTTP/1.1\r\n" + b"X-Long: " + b"a" * 20_000 + b"\r\n\r\n", 400),
            ]
            for data, expected in cases:
                answer = await _raw(port, data)
                assert answer.startswith(f"HTTP/1.1 {expected} ".encode()), (data[:40], answer)
            # Half a head, then silence: answered 408 after the device timeout, not held.
            answer = await _raw(port, b"POST /scan HTTP/1.1\r\nHost:", half_close=False)
            assert answer.startswith(b"HTTP/1.1 408 ")
            status, _ = await notify("127.0.0.1", port, None)
            assert status == 204  # heartbeat
            status, _ = await notify("127.0.0.1", port, ScanDrop("OK-1"))
            assert status == 202
            reading = await driver.next_reading(20)
            assert isinstance(reading, XrayScan) and reading.scan_id == "OK-1"
            faults = driver.health().faults
            assert faults.get("bad_request", 0) >= 9 and faults.get("bad_sidecar") == 1
        finally:
            await driver.close()

    run(main(), 60)


def test_http_heartbeats_decide_health() -> None:
    async def main() -> None:
        driver = _http_driver(heartbeat_s=2.0)
        await driver.open()
        try:
            port = await _port(driver)
            assert driver.health().state is SensorState.DOWN  # nothing heard yet
            assert (await notify("127.0.0.1", port, None))[0] == 204
            assert driver.health().connected
            await until(lambda: driver.health().state is SensorState.DOWN, 20)
            assert "no request from the scanner" in (driver.health().last_error or "")
            assert (await notify("127.0.0.1", port, None))[0] == 204  # the port stayed open
            assert driver.health().connected
        finally:
            await driver.close()

    run(main(), 30)


@settings(deadline=None)  # a loaded machine is no failure
@given(st.binary(max_size=500))
def test_parse_head_never_raises(data: bytes) -> None:
    from drivers.xray.http import Request, parse_head

    assert isinstance(parse_head(data), Request | str)


def test_a_stalled_write_is_reported_once_and_still_attached_when_it_completes(
    tmp_path: Path,
) -> None:
    scan = tmp_path / "S1"
    _sidecar(scan, _document("S1", files=[{"name": "scan.img", "size": 100}]))
    (scan / "scan.img").write_bytes(b"x" * 50)

    async def main() -> None:
        driver = _driver(tmp_path, stalled_s=0.01)
        await driver.open()
        try:
            await until(lambda: driver.health().faults.get("scan_stalled") == 1, 20)
            await _let_it_look(driver)
            assert driver.health().faults.get("scan_stalled") == 1 and driver.health().readings == 0
            with open(scan / "scan.img", "ab") as stream:
                stream.write(b"y" * 50)
            reading = await driver.next_reading(20)
            assert isinstance(reading, XrayScan)
            assert reading.files[0].sha256 == hashlib.sha256(b"x" * 50 + b"y" * 50).hexdigest()
        finally:
            await driver.close()

    run(main(), 30)


def test_a_file_that_hashes_otherwise_than_listed_is_refused(tmp_path: Path) -> None:
    good, bad = tmp_path / "GOOD", tmp_path / "BAD"
    data = b"scan data"
    for folder, digest in ((good, hashlib.sha256(data).hexdigest()), (bad, "0" * 64)):
        _sidecar(folder, _document(folder.name, files=[{"name": "scan.img", "sha256": digest}]))
        (folder / "scan.img").write_bytes(data)

    async def main() -> None:
        driver = _driver(tmp_path)
        await driver.open()
        try:
            reading = await driver.next_reading(20)
            assert isinstance(reading, XrayScan) and reading.scan_id == "GOOD"
            await until(lambda: driver.health().faults.get("hash_mismatch") == 1, 20)
            await _let_it_look(driver)
            assert driver.health().readings == 1
        finally:
            await driver.close()

    run(main(), 30)
