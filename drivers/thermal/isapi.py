"""Full radiometric matrix over HTTP: Hikvision ISAPI ``jpegPicWithAppendData`` (§3).

``GET /ISAPI/Thermal/channels/2/thermometry/jpegPicWithAppendData?format=json`` (digest auth)
answers multipart: a JSON part (``jpegPicWidth``/``jpegPicHeight``,
``temperatureDataLength``, ``scale``, ``offset``, ``p2pDataLen``, possibly nested under
``JpegPictureWithAppendData``), the thermal JPEG, the raw matrix, then the visible JPEG.
The matrix is float32 degC (data length 4) or int16 (2): degC = raw / scale + offset - 273.15.
Field names follow MaomaoMAo-17/hikvision-thermal-parser; there is no official schema
[unverified].
"""

from __future__ import annotations

import json
import time
from typing import Any

import numpy as np
from pydantic import Field, SecretStr

from drivers.base import Driver
from drivers.camera.http import CameraHttp, HttpOptions
from drivers.camera.mjpeg import boundary_from_content_type
from drivers.errors import DriverConnectionError
from drivers.readings import ThermalRegion, ThermalRegions

PATH = "/ISAPI/Thermal/channels/2/thermometry/jpegPicWithAppendData?format=json"


def split_multipart(body: bytes, boundary: bytes) -> list[tuple[dict[str, str], bytes]]:
    parts = []
    delimiter = b"--" + boundary
    for chunk in body.split(delimiter)[1:]:
        if chunk.startswith(b"--"):
            break
        head, sep, data = chunk.lstrip(b"\r\n").partition(b"\r\n\r\n")
        if not sep:
            continue
        headers = {}
        for line in head.decode("latin-1").splitlines():
            key, colon, value = line.partition(":")
            if colon:
                headers[key.strip().lower()] = value.strip()
        if "content-length" in headers and headers["content-length"].isdigit():
            data = data[: int(headers["content-length"])]
        elif data.endswith(b"\r\n"):
            data = data[:-2]
        parts.append((headers, data))
    return parts


def decode_matrix(parts: list[tuple[dict[str, str], bytes]]) -> np.ndarray:
    """The temperature matrix in degC (rows x columns), or ValueError for anything malformed."""
    try:
        return _decode_matrix(parts)
    except (KeyError, TypeError, AttributeError, UnicodeDecodeError, OverflowError) as exc:
        raise ValueError(f"malformed thermal response: {type(exc).__name__}: {exc}") from exc


def _decode_matrix(parts: list[tuple[dict[str, str], bytes]]) -> np.ndarray:
    meta_raw = next((d for h, d in parts if "json" in h.get("content-type", "")), None)
    if meta_raw is None:
        raise ValueError("no JSON part")
    meta: dict[str, Any] = json.loads(meta_raw)
    meta = meta.get("JpegPictureWithAppendData", meta)
    width, height = int(meta["jpegPicWidth"]), int(meta["jpegPicHeight"])
    length = int(meta.get("temperatureDataLength", 4))
    raw = next((d for h, d in parts if "octet-stream" in h.get("content-type", "")), None)
    if raw is None:
        raise ValueError("no matrix part")
    if len(raw) != width * height * length:
        raise ValueError(f"matrix of {len(raw)} bytes, expected {width}x{height}x{length}")
    if length == 4:
        matrix = np.frombuffer(raw, "<f4").astype(np.float32)
    elif length == 2:
        scale = float(meta.get("scale", 1.0)) or 1.0
        offset = float(meta.get("offset", 0.0))
        matrix = np.frombuffer(raw, "<i2").astype(np.float32) / scale + offset - 273.15
    else:
        raise ValueError(f"temperatureDataLength {length}")
    if not np.isfinite(matrix).all():
        raise ValueError("non-finite temperatures")
    return matrix.reshape(height, width)


def encode_response(matrix_c: np.ndarray, *, boundary: str = "thermalsim") -> tuple[str, bytes]:
    """(Content-Type, body) as the camera sends it, float32 variant (simulators)."""
    import cv2

    h, w = matrix_c.shape
    meta = {"JpegPictureWithAppendData": {
        "channel": 2, "jpegPicWidth": w, "jpegPicHeight": h, "temperatureDataLength": 4,
        "scale": 1, "offset": 0, "p2pDataLen": h * w * 4, "isFreezedata": False,
    }}  # fmt: skip
    span = max(float(matrix_c.max() - matrix_c.min()), 1e-6)
    grey = ((matrix_c - matrix_c.min()) / span * 255).astype(np.uint8)
    jpeg = cv2.imencode(".jpg", cv2.applyColorMap(grey, cv2.COLORMAP_INFERNO))[1].tobytes()
    parts = [
        ("application/json", json.dumps(meta).encode()),
        ("image/pjpeg", jpeg),
        ("application/octet-stream", matrix_c.astype("<f4").tobytes()),
    ]
    body = b""
    for content_type, data in parts:
        head = f"--{boundary}\r\nContent-Type: {content_type}\r\n"
        head += f"Content-Length: {len(data)}\r\n\r\n"
        body += head.encode() + data + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    return f"multipart/form-data; boundary={boundary}", body


class IsapiThermalOptions(HttpOptions):
    base_url: str = Field(description="http://camera (the ISAPI path is added)")
    username: str | None = None
    password: SecretStr | None = None
    interval_ms: int = Field(500, ge=100, le=60_000)
    regions: list[tuple[int, int, int, int]] = Field(
        default_factory=list, description="[x, y, w, h] boxes in matrix pixels; none: whole frame"
    )
    alarm_c: float | None = None


class IsapiThermalDriver(Driver):
    kind = "thermal.isapi"
    options: IsapiThermalOptions

    def __init__(self, device_id: str, options: IsapiThermalOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.matrix: np.ndarray | None = None
        self._http: CameraHttp | None = None

    @property
    def stale_after_s(self) -> float:
        # A fetch may take the whole timeout, then the interval passes: past both, stale
        # (DEGRADED even while a fetch hangs; DOWN on the next malformed answer).
        return self.timeout_s + self.options.interval_ms / 1000

    async def _connect(self) -> None:
        o = self.options
        url = o.base_url.rstrip("/") + PATH
        self._http = CameraHttp(
            url, o, username=o.username, password=o.password, timeout_s=self.timeout_s
        )

    async def _disconnect(self) -> None:
        http, self._http = self._http, None
        if http is not None:
            http.close()

    def _fetch(self, http: CameraHttp) -> tuple[str, bytes]:
        reply = http.get()  # bounded by the exchange deadline and max_body_bytes
        return reply.content_type, reply.body

    async def _session(self) -> None:
        import asyncio

        # Usable matrices, not answers, keep the device UP (drivers/base.py: stale_after_s).
        while True:
            started = time.monotonic()
            if self._http is None:
                raise DriverConnectionError("not connected")
            content_type, body = await asyncio.to_thread(self._fetch, self._http)
            boundary = boundary_from_content_type(content_type)
            if boundary is None:
                self._fault("content_type", f"not multipart: {content_type!r}")
            else:
                try:
                    matrix = decode_matrix(split_multipart(body, boundary))
                except ValueError as exc:  # JSONDecodeError is a ValueError
                    self._fault("framing", str(exc))
                else:
                    self.matrix = matrix
                    self._emit(self._regions(matrix))
            self._check_useful()  # no usable matrix: DEGRADED, then DOWN (stale_after_s)
            await asyncio.sleep(
                max(0.0, self.options.interval_ms / 1000 - (time.monotonic() - started))
            )

    def _regions(self, matrix: np.ndarray) -> ThermalRegions:
        h, w = matrix.shape
        boxes = self.options.regions or [(0, 0, w, h)]
        regions = []
        for i, (x, y, bw, bh) in enumerate(boxes):
            patch = matrix[max(0, y) : min(h, y + bh), max(0, x) : min(w, x + bw)]
            if patch.size == 0:
                regions.append(ThermalRegion(index=i, max_c=None, min_c=None, avg_c=None,
                                             valid=False))  # fmt: skip
                continue
            mx = round(float(patch.max()), 2)
            alarm = self.options.alarm_c is not None and mx >= self.options.alarm_c
            regions.append(ThermalRegion(
                index=i, max_c=mx, min_c=round(float(patch.min()), 2),
                avg_c=round(float(patch.mean()), 2), valid=True, alarm=alarm,
            ))  # fmt: skip
        return ThermalRegions(device_id=self.device_id, regions=tuple(regions))
