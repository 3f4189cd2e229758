"""Camera drivers against the HTTP camera simulator (digest auth, MJPEG, snapshots)."""

from __future__ import annotations

import random
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from drivers.base import SensorState
from drivers.camera.driver import MAX_PIXELS
from drivers.camera.image import PNG_SIGNATURE, ImageHeader, check_image, read_header
from drivers.codec import CodecFault
from drivers.readings import Frame
from drivers.registry import create_driver
from simulators.camera import CameraSimulator, bomb_jpeg
from simulators.render import SceneVehicle, make_plate, render_scene
from tests.drivers.conftest import collect, collect_until, run, until

FAST = {"backoff_min_s": 0.05, "backoff_max_s": 0.2, "degraded_hold_s": 0.8}


def frames(readings: list[object]) -> list[Frame]:
    return [r for r in readings if isinstance(r, Frame)]


def at_least(n: int) -> Callable[[list[Any]], bool]:
    return lambda readings: len(frames(readings)) >= n


@pytest.fixture
def camera():  # type: ignore[no-untyped-def]
    sim = CameraSimulator(fps=20, label="FRONT")
    sim.start()
    yield sim
    sim.stop()


def test_snapshot_polling_with_digest_auth(camera: CameraSimulator) -> None:
    async def main() -> None:
        options = {
            "url": camera.snapshot_url, "username": "admin", "password": "sim12345",
            "interval_ms": 50,
        }  # fmt: skip
        driver = create_driver("cam1", "anpr.http", options, 1000, **FAST)
        await driver.open()
        try:
            got = frames(await collect_until(driver, at_least(3)))
            assert got[0].image.shape == (540, 960, 3)
            assert [f.sequence for f in got] == sorted(f.sequence for f in got)
            assert abs(datetime.now(UTC) - got[-1].captured_at) < timedelta(seconds=2)
            assert camera.unauthorized >= 1  # the digest challenge really happened
            assert (await driver.probe()).identity["resolution"] == "960x540"
            camera.inject("content_type", count=1)
            await until(lambda: driver.health().faults.get("content_type", 0) >= 1, 2)
            camera.inject("truncated", count=1)
            await until(lambda: driver.health().faults.get("truncated", 0) >= 1, 2)
            assert driver.health().state is SensorState.DEGRADED
            camera.inject("unauthorized", duration_s=0.5)
            await until(lambda: driver.health().state is SensorState.DOWN, 2)
            assert "401" in (driver.health().last_error or "")
            await until(lambda: driver.health().state is not SensorState.DOWN, 3)
        finally:
            await driver.close()

    run(main())


def test_digest_sha256_rfc7616() -> None:
    sim = CameraSimulator(algorithm="SHA-256")
    sim.start()

    async def main() -> None:
        options = {"url": sim.snapshot_url, "username": "admin", "password": "sim12345"}
        driver = create_driver("cam1", "anpr.http", options, 1000, **FAST)
        await driver.open()
        try:
            assert isinstance(await driver.next_reading(5), Frame)
            assert sim.unauthorized >= 1  # the SHA-256 challenge really happened
        finally:
            await driver.close()

    try:
        run(main())
    finally:
        sim.stop()


def test_url_credentials_go_by_digest_and_bad_urls_need_a_human(camera: CameraSimulator) -> None:
    async def main() -> None:
        url = camera.snapshot_url.replace("http://", "http://admin:sim12345@")
        driver = create_driver("cam1", "anpr.http", {"url": url}, 1000, **FAST)
        await driver.open()
        try:
            assert isinstance(await driver.next_reading(5), Frame)  # the simulator wants digest
        finally:
            await driver.close()
        bad = create_driver("cam2", "anpr.http", {"url": "ftp://127.0.0.1/x"}, 500, **FAST)
        await bad.open()
        try:
            await until(lambda: bad.health().faults.get("config", 0) == 1, 3)
            assert "not http://" in (bad.health().last_error or "")
        finally:
            await bad.close()

    run(main())


def test_wrong_password_is_down_with_a_clear_error(camera: CameraSimulator) -> None:
    async def main() -> None:
        options = {"url": camera.snapshot_url, "username": "admin", "password": "wrong"}
        driver = create_driver("cam1", "anpr.http", options, 500, **FAST)
        await driver.open()
        try:
            await until(lambda: driver.health().last_error is not None, 2)
            health = driver.health()
            assert health.state is SensorState.DOWN
            assert "check username/password" in (health.last_error or "")
            probe = await driver.probe()
            assert probe.options["password"] == "***"
        finally:
            await driver.close()

    run(main())


@pytest.mark.parametrize("reader", ["http", "opencv"])
def test_mjpeg_stream_watchdog_and_frozen_detection(camera: CameraSimulator, reader: str) -> None:
    async def main() -> None:
        url = camera.mjpeg_url
        options: dict[str, object] = {"url": url, "reader": reader, "frozen_ms": 400}
        if reader == "http":
            options |= {"username": "admin", "password": "sim12345"}
        else:
            options["url"] = url.replace("http://", "http://admin:sim12345@")
        driver = create_driver("cam1", "anpr.stream", options, 1000, **FAST)
        await driver.open()
        try:
            await collect_until(driver, at_least(3))
            # Frozen: frames keep coming, the picture does not change.
            camera.inject("freeze", duration_s=1.0)
            await until(lambda: driver.health().state is SensorState.DOWN, 3)
            assert "frozen" in (driver.health().last_error or "")
            await until(lambda: driver.health().state is not SensorState.DOWN, 4)
            # Stalled: the connection stays open, nothing arrives (the capture watchdog).
            camera.inject("stall", duration_s=1.5 if reader == "http" else 3.0)
            await until(lambda: driver.health().faults.get("timeout", 0) >= 1, 3)
            await until(lambda: driver.health().state is not SensorState.DOWN, 6)
            if reader == "opencv":
                # read() was still blocked when the watchdog fired: that worker was left.
                assert driver.abandoned_workers >= 1  # type: ignore[attr-defined]
            if reader == "http":
                camera.inject("disconnect")
                await until(lambda: driver.health().faults.get("connection", 0) >= 1, 3)
                await until(lambda: driver.health().state is not SensorState.DOWN, 4)
            await collect_until(driver, at_least(1))
        finally:
            await driver.close()

    run(main(), timeout_s=40)


def test_file_replay_folder_and_video(tmp_path: Path) -> None:
    rng = random.Random(2)
    folder = tmp_path / "frames"
    folder.mkdir()
    video = tmp_path / "lane.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10, (960, 540))
    plate = make_plate("KZ", rng)
    for i in range(6):
        image = render_scene(
            SceneVehicle(plate, (40, 90, 160), i / 5), now=datetime.now(UTC), rng=rng
        )
        cv2.imwrite(str(folder / f"{i:03d}.jpg"), image)
        writer.write(image)
    writer.release()
    (folder / "notes.txt").write_text("not an image")

    async def main() -> None:
        for path in (folder, video):
            driver = create_driver("cam1", "anpr.file", {"path": str(path), "fps": 20}, 500, **FAST)
            await driver.open()
            try:
                assert len(frames(await collect_until(driver, at_least(6)))) == 6, path
                assert not frames(await collect(driver, 0.5)), path  # 6 images, played once
                assert driver.health().state is SensorState.UP
            finally:
                await driver.close()
        missing = create_driver("cam1", "anpr.file", {"path": str(tmp_path / "nope")}, 500)
        await missing.open()
        await until(lambda: missing.health().last_error is not None, 2)
        assert "no such file" in (missing.health().last_error or "")
        await missing.close()

    run(main())


def test_rtsp_stream_through_opencv(camera: CameraSimulator) -> None:
    from simulators.rtsp import RtspCameraSimulator

    async def main() -> None:
        rtsp = RtspCameraSimulator(
            lambda: camera.jpeg(multiple_of=16), fps=15, faults=camera.faults
        )
        url = await rtsp.start()
        driver = create_driver("cam1", "anpr.stream", {"url": url}, 1000, **FAST)
        await driver.open()
        try:
            got = frames(await collect_until(driver, at_least(3), 30))
            assert got[0].image.shape == (528, 960, 3)
            assert (await driver.probe()).identity["resolution"] == "960x528"
            # RTSP session open, no packets: the capture watchdog.
            camera.inject("stall", duration_s=2.5)
            await until(lambda: driver.health().faults.get("timeout", 0) >= 1, 3)
            await until(lambda: driver.health().state is not SensorState.DOWN, 6)
            await rtsp.inject("disconnect")
            await until(lambda: driver.health().faults.get("connection", 0) >= 1, 5)
            await until(lambda: driver.health().state is not SensorState.DOWN, 6)
            assert rtsp.sessions >= 3
        finally:
            await driver.close()
            await rtsp.stop()

    run(main(), timeout_s=40)


# -- the image header check (drivers/camera/image.py), sans-I/O ----------------------------


def _jpeg(width: int, height: int) -> bytes:
    ok, data = cv2.imencode(".jpg", np.zeros((height, width, 3), np.uint8))
    assert ok
    return bytes(data.tobytes())


def test_image_header_reads_the_declared_size() -> None:
    assert read_header(_jpeg(960, 540)) == ImageHeader("jpeg", 960, 540)
    _ok, png = cv2.imencode(".png", np.zeros((7, 300, 3), np.uint8))
    assert read_header(png.tobytes()) == ImageHeader("png", 300, 7)
    # An EXIF APP1 segment whose thumbnail holds its own SOF0 (16000x16000) is skipped whole.
    thumb = b"Exif\x00\x00" + b"\xff\xc0\x00\x11\x08\x3e\x80\x3e\x80\x03" + bytes(12)
    app1 = b"\xff\xe1" + (len(thumb) + 2).to_bytes(2, "big") + thumb
    plain = _jpeg(64, 48)
    assert read_header(plain[:2] + app1 + plain[2:]) == ImageHeader("jpeg", 64, 48)
    # Fill bytes (FF FF) before a marker are allowed (T.81 B.1.1.2).
    assert read_header(plain[:2] + b"\xff" + plain[2:]) == ImageHeader("jpeg", 64, 48)


def test_image_check_refuses_bombs_truncation_and_unknown_formats() -> None:
    bomb = bomb_jpeg()
    fault = check_image(bomb, MAX_PIXELS)
    assert isinstance(fault, CodecFault) and fault.kind == "image_too_large"
    assert "16000x16000" in fault.message and "12582912" in fault.message
    assert check_image(_jpeg(4096, 3072), MAX_PIXELS) == ImageHeader("jpeg", 4096, 3072)
    over = check_image(_jpeg(4097, 3072), MAX_PIXELS)
    assert isinstance(over, CodecFault) and over.kind == "image_too_large"
    cut = check_image(_jpeg(64, 48)[:-40], MAX_PIXELS)
    assert isinstance(cut, CodecFault) and cut.kind == "truncated"
    for junk, kind in [
        (b"GIF89a" + bytes(20), "image_format"),
        (b"", "image_format"),
        (b"\xff\xd8", "truncated"),
        (b"\xff\xd8\xff\xda\x00\x02", "truncated"),  # a scan before any frame header
        (b"\xff\xd8\xff\xc0\x00\x11\x08\x00\x00\x01\x00\x03", "image_format"),  # height 0 (DNL)
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\x0dIDAT", "truncated"),
    ]:
        result = check_image(junk, MAX_PIXELS)
        assert isinstance(result, CodecFault) and result.kind == kind, (junk, result)


@settings(max_examples=3000, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 64))
def test_image_header_never_raises(data: bytes, cut: int) -> None:
    for candidate in (data, b"\xff\xd8" + data, PNG_SIGNATURE + data, bomb_jpeg()[:cut] + data):
        result = check_image(candidate, MAX_PIXELS)
        assert isinstance(result, ImageHeader | CodecFault)


def test_a_bomb_in_an_mjpeg_stream_is_a_fault_not_a_frame(camera: CameraSimulator) -> None:
    async def main() -> None:
        options = {"url": camera.mjpeg_url, "reader": "http", "username": "admin",
                   "password": "sim12345", "frozen_ms": 60_000}  # fmt: skip
        driver = create_driver("cam1", "anpr.stream", options, 1000, **FAST)
        await driver.open()
        try:
            await collect_until(driver, at_least(1))
            camera.inject("bomb", duration_s=60)
            await until(lambda: driver.health().faults.get("image_too_large", 0) >= 2, 5)
            assert "16000x16000" in (driver.health().last_error or "")
        finally:
            await driver.close()

    run(main())
