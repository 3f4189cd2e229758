"""Camera drivers. Capture runs in a worker thread under a watchdog.

OpenCV's ``read()`` can block for ~90 s on a dead stream, so the session waits for each
frame with the device timeout; a worker that misses it is abandoned (its late frames are
dropped by generation number). Every capture attempt has its own deadline (HTTP: the
exchange deadline; FFmpeg: its read timeout), and a new worker starts only once the last
one has ended, so a camera has at most one capture thread at any time. A frozen stream
(frames keep arriving but do not change for ``frozen_ms``) is a fault too: a camera
sensor is never perfectly still, so identical frames mean a stuck encoder or a replay.

Sources: ``anpr.stream`` (``cv2.VideoCapture`` with FFmpeg: RTSP or MJPEG),
``anpr.http`` (snapshot polling over bounded HTTP, ``drivers/camera/http.py``: httpx, digest
auth, Basic only when configured), ``anpr.stream`` with ``reader: http`` (our own multipart
reader on the same bounded HTTP), ``anpr.file`` (a video file or a folder of images, for
replaying recorded footage).
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
from abc import abstractmethod
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import Field, SecretStr

from drivers.base import Driver
from drivers.camera.http import CameraHttp, HttpOptions
from drivers.camera.image import check_image
from drivers.camera.mjpeg import JpegPart, MjpegParser, boundary_from_content_type
from drivers.camera.scene import thumbnail
from drivers.codec import CodecFault
from drivers.errors import (
    DriverConfigError,
    DriverConnectionError,
    DriverProtocolError,
    DriverTimeoutError,
    MissingExtraError,
)
from drivers.options import StrictOptions
from drivers.readings import Frame, utc_now

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".bmp"}
MAX_PIXELS = 4096 * 3072
# Frames between the capture thread and the driver's session: the newest two. An older frame
# is dropped, never queued: a busy loop sees a fresh frame, not a backlog of stale ones.
FRAME_QUEUE = 2


def _cv2(kind: str) -> Any:
    try:
        import cv2
    except ModuleNotFoundError as exc:
        raise MissingExtraError(kind, "cv2", "camera") from exc
    return cv2


class CameraOptions(StrictOptions):
    frozen_ms: int = Field(3000, ge=100, description="Identical frames this long: frozen.")
    open_timeout_ms: int = Field(
        8000,
        ge=100,
        le=120_000,
        description="Budget for the first frame (RTSP handshake, probing).",
    )
    max_fps: float = Field(25.0, gt=0, le=120)
    max_pixels: int = Field(
        MAX_PIXELS,
        ge=1,
        le=100_000_000,
        description="Largest picture accepted, width x height (default 4096x3072). A JPEG or "
        "PNG declaring more is refused before it is decoded (decompression bombs).",
    )


class StreamOptions(CameraOptions, HttpOptions):
    url: str = Field(description="rtsp://user:pass@host:554/... or http://.../mjpg")
    reader: Literal["opencv", "http"] = Field(
        "opencv", description="http: built-in MJPEG reader (digest auth); opencv: FFmpeg."
    )
    username: str | None = None
    password: SecretStr | None = None
    transport: Literal["tcp", "udp"] = "tcp"


class SnapshotOptions(CameraOptions, HttpOptions):
    url: str = Field(description="e.g. http://host/ISAPI/Streaming/channels/101/picture")
    username: str | None = None
    password: SecretStr | None = None
    interval_ms: int = Field(200, ge=20, le=60_000)


class FileOptions(CameraOptions):
    path: str = Field(description="A video file or a folder of images.")
    fps: float = Field(10.0, gt=0, le=120)
    loop: bool = False


class _Frozen:
    """Tracks how long the picture has not changed (mean abs difference of its thumbnail)."""

    def __init__(self, limit_s: float) -> None:
        self.limit_s = limit_s
        self._thumb: np.ndarray | None = None
        self._since = time.monotonic()

    def check(self, thumb: np.ndarray, now: float) -> bool:
        if self._thumb is None or float(np.abs(thumb - self._thumb).mean()) > 0.05:
            self._since = now
        self._thumb = thumb
        return now - self._since > self.limit_s


class _CameraDriver(Driver):
    """Common worker-thread plumbing. Subclasses implement ``_capture_loop``."""

    options: CameraOptions

    def __init__(self, device_id: str, options: CameraOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.cv2 = _cv2(self.kind)
        self._generation = 0
        self._frames: asyncio.Queue[Any] = asyncio.Queue(maxsize=FRAME_QUEUE)
        self._stop = threading.Event()
        self._worker: threading.Thread | None = None
        self._abandoned: threading.Thread | None = None
        self.abandoned_workers = 0
        self.sequence = 0
        self.resolution = ""
        self._last_headers: list[bytes] = []

    async def _connect(self) -> None:
        await self._previous_worker_gone()
        self._generation += 1
        generation = self._generation
        loop = asyncio.get_running_loop()
        self._frames = asyncio.Queue(maxsize=FRAME_QUEUE)
        frames = self._frames
        stop = threading.Event()
        self._stop = stop

        def deliver(item: Any) -> None:
            item = self._checked(item)  # on the capture thread: the pixel work is done here

            def put() -> None:
                if generation != self._generation:
                    return  # a late frame from an abandoned worker
                if frames.full():
                    with contextlib.suppress(asyncio.QueueEmpty):
                        frames.get_nowait()
                frames.put_nowait(item)

            with contextlib.suppress(RuntimeError):  # loop closed
                loop.call_soon_threadsafe(put)

        def work() -> None:
            try:
                self._capture_loop(deliver, stop)
            except Exception as exc:  # reported to the session, which reconnects
                deliver(exc)

        self._worker = threading.Thread(target=work, name=f"capture:{self.device_id}", daemon=True)
        self._worker.start()

    def _checked(self, item: Any) -> Any:
        """A captured (image, captured_at, info): refused if too large, else with its
        thumbnail. Runs on the capture thread."""
        if not isinstance(item, tuple):
            return item
        image, captured_at, info = item
        if image.shape[0] * image.shape[1] > self.options.max_pixels:
            # FFmpeg and image files decode before anything can look: refuse the frame.
            return CodecFault(
                "image_too_large",
                f"{image.shape[1]}x{image.shape[0]} px frame over camera max_pixels "
                f"{self.options.max_pixels}",
            )
        return image, captured_at, info, thumbnail(self.cv2, image)

    async def _disconnect(self) -> None:
        self._stop.set()
        worker = self._worker
        if worker is None or worker is self._abandoned:
            return
        if not await _joined(worker, 1.0):
            # Stuck in a blocking read: leave it (its own deadline ends it); its frames are
            # ignored, and no second worker starts while it lives (_previous_worker_gone).
            self._abandoned = worker
            self.abandoned_workers += 1
            self._generation += 1

    async def _previous_worker_gone(self) -> None:
        """At most one capture worker per camera: wait for the last one, or refuse to start."""
        worker = self._worker
        if worker is None:
            return
        wait_s = max(self.timeout_s, 1.0)
        if not await _joined(worker, wait_s):
            raise DriverTimeoutError(
                f"the last capture worker is still blocked after {wait_s:.1f} s more: "
                "not starting a second one"
            )
        self._worker = None

    async def _session(self) -> None:
        frozen = _Frozen(self.options.frozen_ms / 1000)
        min_period = 1.0 / self.options.max_fps
        last = 0.0
        # The watchdog counts usable frames, not bytes or parts: a camera that sends only
        # bombs, half JPEGs or HTML is DEGRADED (each a counted fault), then DOWN at the
        # deadline with the last fault as the reason. Opening a stream (RTSP handshake,
        # FFmpeg probing) takes longer than a frame.
        wait_s = max(self._frame_timeout_s(), self.options.open_timeout_ms / 1000)
        usable_by = time.monotonic() + wait_s
        fault: str | None = None
        while True:
            try:
                async with asyncio.timeout(max(0.0, usable_by - time.monotonic())):
                    item = await self._frames.get()
            except TimeoutError:
                why = f": last fault {fault}" if fault else ""
                raise DriverTimeoutError(
                    f"no usable frame in {wait_s * 1000:.0f} ms (capture watchdog){why}"
                ) from None
            if isinstance(item, CodecFault):
                self._fault(item.kind, item.message)
                fault = f"{item.kind}: {item.message}"
                continue
            if isinstance(item, Exception):
                raise item
            image, captured_at, info, thumb = item
            now = time.monotonic()
            wait_s = self._frame_timeout_s()
            usable_by, fault = now + wait_s, None
            if frozen.check(thumb, now):
                raise DriverProtocolError(
                    f"frozen stream: no change for {self.options.frozen_ms} ms"
                )
            if now - last < min_period:
                continue
            last = now
            self.sequence += 1
            self.resolution = f"{image.shape[1]}x{image.shape[0]}"
            self._emit(
                Frame(
                    device_id=self.device_id,
                    captured_at=captured_at,
                    monotonic=now,
                    image=image,
                    thumbnail=thumb,
                    sequence=self.sequence,
                    source=self.kind,
                    extra=info,
                )
            )

    def _frame_timeout_s(self) -> float:
        return self.timeout_s

    async def _identity(self) -> dict[str, Any]:
        return {
            "resolution": self.resolution,
            "frames": self.sequence,
            "abandoned_workers": self.abandoned_workers,
        }

    @abstractmethod
    def _capture_loop(self, deliver: Any, stop: threading.Event) -> None:
        """Read frames until ``stop`` is set, handing each to ``deliver`` (worker thread)."""

    def _decode(self, data: bytes) -> np.ndarray | CodecFault:
        """A picture, once its declared size and completeness are checked; else a fault."""
        header = check_image(data, self.options.max_pixels)
        if isinstance(header, CodecFault):
            return header
        image = self.cv2.imdecode(np.frombuffer(data, np.uint8), self.cv2.IMREAD_COLOR)
        if image is None or not image.size:
            return CodecFault(
                "truncated", f"undecodable {header.format.upper()} ({len(data)} bytes)"
            )
        return image


class SnapshotDriver(_CameraDriver):
    kind = "anpr.http"
    options: SnapshotOptions

    def _capture_loop(self, deliver: Any, stop: threading.Event) -> None:
        o = self.options
        period = o.interval_ms / 1000
        with _http(o, o.url, self.timeout_s) as http:
            while not stop.is_set():
                started = time.monotonic()
                reply = http.get()  # bounded: raises a DriverError, which ends this worker
                captured = utc_now()
                if not reply.content_type.startswith("image/"):
                    deliver(CodecFault("content_type", f"snapshot of type {reply.content_type!r}"))
                else:
                    image = self._decode(reply.body)
                    info = {"bytes": len(reply.body)}
                    deliver(image if isinstance(image, CodecFault) else (image, captured, info))
                stop.wait(max(0.0, period - (time.monotonic() - started)))

    def _frame_timeout_s(self) -> float:
        # One exchange may take the device timeout (its own deadline says why), then a pause.
        return self.timeout_s + self.options.interval_ms / 1000


class StreamDriver(_CameraDriver):
    kind = "anpr.stream"
    options: StreamOptions

    def _capture_loop(self, deliver: Any, stop: threading.Event) -> None:
        if self.options.reader == "http":
            self._http_loop(deliver, stop)
        else:
            self._opencv_loop(deliver, stop)

    def _http_loop(self, deliver: Any, stop: threading.Event) -> None:
        o = self.options
        with (
            _http(o, o.url, self.timeout_s) as http,
            http.stream(budget_s=o.open_timeout_ms / 1000) as reply,
        ):
            content_type = reply.headers.get("content-type", "")
            boundary = boundary_from_content_type(content_type)
            if not content_type.startswith("multipart/") or boundary is None:
                raise DriverProtocolError(f"{http.where}: not an MJPEG stream ({content_type!r})")
            parser = MjpegParser(boundary)
            part_s = o.exchange_timeout_ms / 1000 if o.exchange_timeout_ms else self.timeout_s
            http.extend(part_s)  # from here on, each part within its own budget
            for chunk in reply.iter_raw():
                if stop.is_set():
                    return
                for part in parser.feed(chunk):
                    http.extend()
                    if isinstance(part, CodecFault):
                        deliver(part)
                        continue
                    self._deliver_part(part, deliver)
            raise DriverConnectionError(f"{http.where}: stream closed")

    def _deliver_part(self, part: JpegPart, deliver: Any) -> None:
        image = self._decode(part.data)
        if isinstance(image, CodecFault):
            deliver(image)
        else:
            deliver((image, utc_now(), {"bytes": len(part.data)}))

    def _opencv_loop(self, deliver: Any, stop: threading.Event) -> None:
        import os

        cv2 = self.cv2
        url = self.options.url
        if url.startswith("rtsp"):
            os.environ.setdefault(
                "OPENCV_FFMPEG_CAPTURE_OPTIONS", f"rtsp_transport;{self.options.transport}"
            )
        # The watchdog (the session's frame timeout) fires first; FFmpeg's own read timeout,
        # three times longer, is the backstop that lets an abandoned worker end by itself.
        params = [
            cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, max(1000, int(self.timeout_s * 1000)),
            cv2.CAP_PROP_READ_TIMEOUT_MSEC, max(3000, int(self.timeout_s * 3000)),
        ]  # fmt: skip
        cap = cv2.VideoCapture(url, cv2.CAP_FFMPEG, params)
        try:
            if not cap.isOpened():
                deliver(DriverConnectionError(f"cannot open stream {_redact(url)}"))
                return
            while not stop.is_set():
                ok, image = cap.read()
                if not ok or image is None:
                    deliver(DriverConnectionError(f"stream {_redact(url)} ended or failed"))
                    return
                deliver((image, utc_now(), {}))
        finally:
            cap.release()


class FileDriver(_CameraDriver):
    """A video file or an image folder, paced at ``fps`` (replays recorded footage)."""

    kind = "anpr.file"
    options: FileOptions

    def _capture_loop(self, deliver: Any, stop: threading.Event) -> None:
        path = Path(self.options.path)
        if not path.exists():
            deliver(DriverConfigError(f"no such file or folder: {path}"))
            return
        period = 1.0 / self.options.fps
        while not stop.is_set():
            frames = self._folder(path) if path.is_dir() else self._video(path)
            count = 0
            for image in frames:
                if stop.is_set():
                    return
                count += 1
                deliver((image, utc_now(), {"index": count}))
                stop.wait(period)
            if count == 0:
                deliver(DriverConfigError(f"no readable frames in {path}"))
                return
            if not self.options.loop:
                stop.wait()  # keep the worker alive, quietly: the end of a replay is no fault
                return

    def _folder(self, path: Path) -> Any:
        for file in sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES):
            image = self.cv2.imread(str(file), self.cv2.IMREAD_COLOR)
            if image is not None:
                yield image

    def _video(self, path: Path) -> Any:
        cap = self.cv2.VideoCapture(str(path))
        try:
            while True:
                ok, image = cap.read()
                if not ok:
                    return
                yield image
        finally:
            cap.release()

    def _frame_timeout_s(self) -> float:
        # A finished replay sends no frames; that is not a dead camera.
        return self.timeout_s if self.options.loop else max(self.timeout_s, 24 * 3600.0)


async def _joined(worker: threading.Thread, timeout_s: float) -> bool:
    """Whether the thread ended within ``timeout_s`` (polled: no executor thread blocks)."""
    deadline = time.monotonic() + timeout_s
    while worker.is_alive():
        if time.monotonic() >= deadline:
            return False
        await asyncio.sleep(0.02)
    return True


def _http(options: HttpOptions, url: str, timeout_s: float) -> CameraHttp:
    username = getattr(options, "username", None)
    password = getattr(options, "password", None)
    return CameraHttp(url, options, username=username, password=password, timeout_s=timeout_s)


def _redact(url: str) -> str:
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        return f"{scheme}://***@{rest.split('@', 1)[1]}"
    return url
