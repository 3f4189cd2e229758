"""``xray.http``: an X-ray / NII scanner that announces each finished scan over HTTP.

The scanner (or its export service) POSTs the sidecar document of
:mod:`drivers.xray.sidecar` to ``http://<lane PC>:<port><path>`` when a scan is finished,
with ``Content-Type: application/json``, a ``Content-Length`` and, when a token is
configured (the device's ``password``), ``Authorization: Bearer <token>``. The scan's
files stay on the scanner's side: the notification lists them with the scanner's own
``sha256`` where it has one (carried, not checked). ``POST <path>/heartbeat`` (empty body)
says the scanner is alive.

Answers: ``202`` accepted (body ``{"scan_id": ...}``), ``200`` a repeat of a scan already
accepted (a retry after a lost answer: not emitted twice), ``400`` with the reason (bad
JSON or sidecar), ``401`` bad or missing token, ``404``/``405`` wrong path or method,
``411`` no Content-Length, ``413`` body over ``max_body_kb``, ``204`` heartbeat. One request
per connection; the head is bounded to 8 KiB and read within the device timeout.

Health: with ``heartbeat_s`` set, DOWN after that long without any request (the scanner's
heartbeats or scans) and UP again at the next; without it, UP once listening (which proves
only this side). The listening socket stays open across those sessions.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections import OrderedDict
from dataclasses import dataclass
from datetime import UTC
from typing import Any

from pydantic import Field, SecretStr, field_validator

from drivers.base import Driver
from drivers.errors import DriverTimeoutError
from drivers.options import StrictOptions
from drivers.readings import ScanFile, XrayScan
from drivers.xray.sidecar import Sidecar, SidecarFault, parse_sidecar

MAX_HEAD = 8192
MAX_HEADERS = 64
REMEMBERED_SCANS = 1024
_REASONS = {
    200: "OK", 202: "Accepted", 204: "No Content", 400: "Bad Request", 401: "Unauthorized",
    404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
    411: "Length Required", 413: "Content Too Large",
}  # fmt: skip


class XrayHttpOptions(StrictOptions):
    host: str = Field("127.0.0.1", description="Address to listen on (0.0.0.0: every one).")
    port: int = Field(8086, ge=0, le=65535, description="0: any free port (tests).")
    path: str = Field("/scan", pattern=r"^/[A-Za-z0-9._~/-]{0,200}$")
    password: SecretStr | None = Field(
        None,
        description="Bearer token the scanner must send; in the lane config the device's "
        "`password` secret reference, never inline.",
    )
    max_body_kb: int = Field(64, ge=1, le=1024)
    heartbeat_s: float | None = Field(
        None, gt=0, description="No request for this long: DOWN (null: UP once listening)."
    )

    @field_validator("path")
    @classmethod
    def _no_trailing_slash(cls, value: str) -> str:
        return value.rstrip("/") or "/"


@dataclass(frozen=True, slots=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]


def parse_head(data: bytes) -> Request | str:
    """The request line and headers (without the blank line); a reason string if malformed."""
    try:
        text = data.decode("latin-1")
    except UnicodeDecodeError:  # pragma: no cover - latin-1 decodes every byte
        return "undecodable head"
    lines = text.split("\r\n")
    parts = lines[0].split(" ")
    if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
        return "malformed request line"
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if not line:
            continue
        name, sep, value = line.partition(":")
        if not sep or not name or name != name.strip() or len(headers) >= MAX_HEADERS:
            return "malformed header"
        headers[name.lower()] = value.strip()
    return Request(parts[0], parts[1].split("?", 1)[0], headers)


class XrayHttpDriver(Driver):
    kind = "xray.http"
    options: XrayHttpOptions

    def __init__(self, device_id: str, options: XrayHttpOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self._server: asyncio.Server | None = None
        self._request = asyncio.Event()
        self._accepted: OrderedDict[str, None] = OrderedDict()
        self._handlers: set[asyncio.Task[None]] = set()
        self.requests = 0
        self.emitted = 0
        self.port: int | None = None

    async def _connect(self) -> None:
        if self._server is None:
            options = self.options
            self._server = await asyncio.start_server(
                self._serve, options.host, options.port, limit=MAX_HEAD
            )
            self.port = self._server.sockets[0].getsockname()[1]

    async def _disconnect(self) -> None:
        return None  # the port stays open while the scanner is merely quiet

    async def close(self) -> None:
        await super().close()
        if self._server is not None:
            self._server.close()
            for task in list(self._handlers):
                task.cancel()
            with contextlib.suppress(Exception):
                await self._server.wait_closed()
            self._server = None

    async def _session(self) -> None:
        heartbeat = self.options.heartbeat_s
        if heartbeat is None:
            self._alive()
            await asyncio.Event().wait()  # until cancelled
        while True:
            self._request.clear()
            try:
                async with asyncio.timeout(heartbeat):
                    await self._request.wait()
            except TimeoutError:
                raise DriverTimeoutError(f"no request from the scanner for {heartbeat} s") from None

    async def _identity(self) -> dict[str, Any]:
        return {"port": self.port, "requests": self.requests, "emitted": self.emitted}

    # -- one connection ------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if task is not None:
            self._handlers.add(task)
        try:
            status, body = await self._answer(reader)
        except TimeoutError:
            status, body = self._bad(408, "request not received in time")
        except (asyncio.LimitOverrunError, ValueError):
            status, body = self._bad(400, "request head too large")
        except (asyncio.IncompleteReadError, ConnectionError, OSError):
            status, body = 0, {}  # the peer went away: nobody to answer
        try:
            if status:
                payload = json.dumps(body).encode() if body else b""
                head = (
                    f"HTTP/1.1 {status} {_REASONS[status]}\r\nConnection: close\r\n"
                    f"Content-Length: {len(payload)}\r\n"
                    + ("Content-Type: application/json\r\n" if payload else "")
                    + "\r\n"
                )
                writer.write(head.encode() + payload)
                async with asyncio.timeout(max(self.timeout_s, 1.0)):
                    await writer.drain()
        except (TimeoutError, ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()
            if task is not None:
                self._handlers.discard(task)

    async def _answer(self, reader: asyncio.StreamReader) -> tuple[int, dict[str, Any]]:
        timeout = max(self.timeout_s, 1.0)
        async with asyncio.timeout(timeout):
            head = await reader.readuntil(b"\r\n\r\n")  # at most MAX_HEAD: the stream's limit
        request = parse_head(head[:-4])
        if isinstance(request, str):
            return self._bad(400, request)
        options = self.options
        if options.password is not None:
            given = request.headers.get("authorization", "")
            expected = f"Bearer {options.password.get_secret_value()}"
            if not hmac.compare_digest(given.encode(), expected.encode()):
                return self._bad(401, "bad or missing token")
        heartbeat = request.target.rstrip("/") == f"{options.path.rstrip('/')}/heartbeat"
        if request.target.rstrip("/") != options.path.rstrip("/") and not heartbeat:
            return self._bad(404, "no such path")
        if request.method != "POST":
            return self._bad(405, "POST only")
        if "transfer-encoding" in request.headers or "content-length" not in request.headers:
            return self._bad(411, "a Content-Length is required")
        length_text = request.headers["content-length"]
        if not length_text.isdigit():
            return self._bad(400, "bad Content-Length")
        length = int(length_text)
        if length > options.max_body_kb * 1024:
            return self._bad(413, f"body over {options.max_body_kb} KiB")
        async with asyncio.timeout(timeout):
            body = await reader.readexactly(length)
        self.requests += 1
        self._request.set()
        self._alive()
        if heartbeat:
            return 204, {}
        parsed = parse_sidecar(body)
        if isinstance(parsed, SidecarFault):
            return self._bad(400, parsed.message, fault="bad_sidecar")
        if parsed.scan_id in self._accepted:
            return 200, {"scan_id": parsed.scan_id, "repeat": True}
        self._accept(parsed)
        return 202, {"scan_id": parsed.scan_id}

    def _bad(self, status: int, message: str, *, fault: str = "bad_request") -> tuple[int, Any]:
        self._fault(fault, f"{status} {message}")
        return status, {"error": message}

    def _accept(self, sidecar: Sidecar) -> None:
        self._accepted[sidecar.scan_id] = None
        while len(self._accepted) > REMEMBERED_SCANS:
            self._accepted.popitem(last=False)
        files = tuple(
            ScanFile(name=f.name, size=f.size, sha256=f.sha256.lower() if f.sha256 else None)
            for f in sidecar.files or []
        )
        self._emit(
            XrayScan(
                device_id=self.device_id,
                scan_id=sidecar.scan_id,
                started=sidecar.started.astimezone(UTC),
                finished=sidecar.finished.astimezone(UTC),
                files=files,
                scanner_plate=sidecar.plate,
                scanner_container=sidecar.container,
                scanner=sidecar.scanner,
                source="http",
            )
        )
        self.emitted += 1
