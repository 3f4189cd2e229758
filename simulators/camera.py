"""An IP camera on a real HTTP server: digest auth, JPEG snapshots and an MJPEG stream.

Paths follow the vendors: ``/ISAPI/Streaming/channels/101/picture`` (Hikvision),
``/cgi-bin/snapshot.cgi`` (Dahua) and ``/mjpg/video.cgi`` (MJPEG). Frames come from
``frame_source`` (the scenario's renderer). Runs in its own thread (stdlib HTTP server),
so it keeps serving whatever the event loop of the code under test does.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import random
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import cv2
import numpy as np

from drivers.thermal.isapi import encode_response
from simulators.faults import FaultState
from simulators.render import render_scene

BOUNDARY = "lanesimframe"
SNAPSHOT_PATHS = ("/ISAPI/Streaming/channels/101/picture", "/cgi-bin/snapshot.cgi")
MJPEG_PATH = "/mjpg/video.cgi"
THERMAL_PATH = "/ISAPI/Thermal/channels/2/thermometry/jpegPicWithAppendData"


def bomb_jpeg(width: int = 16000, height: int = 16000) -> bytes:
    """A valid 16x16 baseline JPEG whose frame header (SOF0) claims ``width`` x ``height``.

    631 bytes that a decoder turns into a width x height x 3 frame (768 MB at 16000x16000).
    """
    ok, encoded = cv2.imencode(".jpg", np.zeros((16, 16, 3), np.uint8))
    if not ok:
        raise RuntimeError("JPEG encoding failed")
    data = bytearray(encoded.tobytes())
    sof = data.find(b"\xff\xc0")
    data[sof + 5 : sof + 7] = height.to_bytes(2, "big")
    data[sof + 7 : sof + 9] = width.to_bytes(2, "big")
    return bytes(data)


def _digest(algorithm: str, text: str) -> str:
    # RFC 7616 §3.4.2: MD5 (RFC 2617's only one) or SHA-256.
    if algorithm == "SHA-256":
        return hashlib.sha256(text.encode()).hexdigest()
    return hashlib.md5(text.encode(), usedforsecurity=False).hexdigest()


class CameraSimulator:
    def __init__(
        self,
        *,
        username: str = "admin",
        password: str = "sim12345",
        fps: float = 10.0,
        frame_source: Callable[[], np.ndarray] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        label: str = "CAM",
        jpeg_quality: int = 85,
        seed: int = 0,
        thermal_source: Callable[[], np.ndarray] | None = None,
        algorithm: str = "MD5",
    ) -> None:
        if algorithm not in ("MD5", "SHA-256"):
            raise ValueError(f"digest algorithm {algorithm!r}: MD5 or SHA-256")
        self.algorithm = algorithm
        self.thermal_source = thermal_source
        self.username = username
        self.password = password
        self.realm = f"IP Camera({label})"
        self.fps = fps
        self.label = label
        self.jpeg_quality = jpeg_quality
        self.rng = random.Random(seed)
        self.frame_source = frame_source or self._idle_frame
        self.faults = FaultState()
        self.host = host
        self.port = port
        self.requests = 0
        self.unauthorized = 0
        self.frames_served = 0
        self._nonces: set[str] = set()
        self._lock = threading.Lock()
        self._frozen: bytes | None = None
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._streams: set[Any] = set()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    @property
    def snapshot_url(self) -> str:
        return self.base_url + SNAPSHOT_PATHS[0]

    @property
    def mjpeg_url(self) -> str:
        return self.base_url + MJPEG_PATH

    def _idle_frame(self) -> np.ndarray:
        return render_scene(None, now=datetime.now(UTC), rng=self.rng, label=self.label)

    def jpeg(self, *, multiple_of: int = 1) -> bytes:
        """The current frame as JPEG (the frozen one while ``freeze`` is active).

        ``multiple_of=16`` crops the frame so RTP/JPEG (8-pixel units, 4:2:0) can carry it.
        """
        with self._lock:
            if self.faults.active("bomb"):
                return bomb_jpeg()
            if self.faults.active("freeze") and self._frozen is not None:
                return self._frozen
            frame = self.frame_source()
            if multiple_of > 1:
                h, w = frame.shape[:2]
                frame = frame[: h - h % multiple_of, : w - w % multiple_of]
            ok, data = cv2.imencode(".jpg", frame, [cv2.IMWRITE_JPEG_QUALITY, self.jpeg_quality])
            if not ok:
                raise RuntimeError("JPEG encoding failed")
            self._frozen = data.tobytes()
            return self._frozen

    def start(self) -> str:
        sim = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_GET(self) -> None:
                sim._handle(self)

        self._server = ThreadingHTTPServer((self.host, self.port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, name=f"camera-sim:{self.label}", daemon=True
        )
        self._thread.start()
        return self.base_url

    def stop(self) -> None:
        self.disconnect()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
        if self._thread is not None:
            self._thread.join(2.0)

    def inject(
        self, kind: str, *, count: int = 1, duration_s: float = 0.0, **params: float | str
    ) -> None:
        self.faults.inject(kind, count=count, duration_s=duration_s, **params)
        if kind == "disconnect":
            self.faults.take("disconnect")
            self.disconnect()

    def disconnect(self) -> None:
        for conn in list(self._streams):
            with contextlib.suppress(OSError):
                conn.shutdown(2)
        self._streams.clear()

    # -- HTTP --------------------------------------------------------------------------

    def _challenge(self, h: BaseHTTPRequestHandler) -> None:
        nonce = os.urandom(12).hex()
        self._nonces.add(nonce)
        self.unauthorized += 1
        body = b"401 Unauthorized"
        h.send_response(401)
        h.send_header(
            "WWW-Authenticate",
            f'Digest realm="{self.realm}", qop="auth", nonce="{nonce}", '
            f'opaque="{os.urandom(8).hex()}", algorithm={self.algorithm}',
        )
        h.send_header("Content-Type", "text/plain")
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def _authorized(self, h: BaseHTTPRequestHandler) -> bool:
        header = h.headers.get("Authorization", "")
        if not header.startswith("Digest "):
            return False
        fields: dict[str, str] = {}
        for item in header[7:].split(","):
            key, _, value = item.strip().partition("=")
            fields[key] = value.strip('"')
        if fields.get("username") != self.username or fields.get("nonce") not in self._nonces:
            return False
        if fields.get("algorithm", "MD5") != self.algorithm:
            return False
        algorithm = self.algorithm
        ha1 = _digest(algorithm, f"{self.username}:{self.realm}:{self.password}")
        ha2 = _digest(algorithm, f"GET:{fields.get('uri', '')}")
        expected = _digest(
            algorithm,
            f"{ha1}:{fields['nonce']}:{fields.get('nc', '')}:{fields.get('cnonce', '')}:"
            f"{fields.get('qop', '')}:{ha2}",
        )
        return fields.get("response") == expected

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        self.requests += 1
        if self.faults.active("unauthorized") or not self._authorized(h):
            self._challenge(h)
            return
        path = h.path.split("?", 1)[0]
        if path in SNAPSHOT_PATHS:
            self._snapshot(h)
        elif path == MJPEG_PATH:
            self._mjpeg(h)
        elif path == THERMAL_PATH and self.thermal_source is not None:
            self._wait_faults()
            content_type, body = encode_response(self.thermal_source())
            h.send_response(200)
            h.send_header("Content-Type", content_type)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            self.frames_served += 1
        else:
            body = b"not found"
            h.send_response(404)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)

    def _wait_faults(self) -> None:
        if self.faults.active("stall"):
            time.sleep(max(0.0, self.faults.until["stall"] - time.monotonic()))
        if self.faults.active("slow"):
            time.sleep(self.faults.param("slow", "delay_s", 1.0))

    def _snapshot(self, h: BaseHTTPRequestHandler) -> None:
        self._wait_faults()
        data = self.jpeg()
        content_type = "text/html" if self.faults.take("content_type") else "image/jpeg"
        if self.faults.take("truncated"):
            data = data[: len(data) // 2]
        h.send_response(200)
        h.send_header("Content-Type", content_type)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)
        self.frames_served += 1

    def _mjpeg(self, h: BaseHTTPRequestHandler) -> None:
        h.send_response(200)
        h.send_header("Content-Type", f"multipart/x-mixed-replace; boundary={BOUNDARY}")
        h.send_header("Cache-Control", "no-cache")
        h.send_header("Connection", "close")
        h.end_headers()
        self._streams.add(h.connection)
        period = 1.0 / self.fps
        try:
            while True:
                started = time.monotonic()
                if self.faults.active("stall"):
                    time.sleep(0.05)
                    continue
                data = self.jpeg()
                if self.faults.take("truncated"):
                    data = data[: len(data) // 2]
                part = (
                    f"--{BOUNDARY}\r\nContent-Type: image/jpeg\r\n"
                    f"Content-Length: {len(data)}\r\n\r\n"
                ).encode()
                h.wfile.write(part + data + b"\r\n")
                h.wfile.flush()
                self.frames_served += 1
                time.sleep(max(0.0, period - (time.monotonic() - started)))
        except OSError:
            pass
        finally:
            self._streams.discard(h.connection)
            h.close_connection = True
