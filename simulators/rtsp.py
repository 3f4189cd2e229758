"""A minimal RTSP camera: RTSP 1.0 over TCP, RTP/JPEG (RFC 2435) interleaved on the socket.

Enough for FFmpeg/OpenCV (``rtsp_transport;tcp``): OPTIONS, DESCRIBE (SDP, payload 26),
SETUP (``RTP/AVP/TCP;interleaved=0-1``), PLAY, TEARDOWN, GET_PARAMETER. Frames come from a
JPEG source (the HTTP camera simulator's ``jpeg()``), sized to multiples of 16. Baseline
4:2:0 JPEG with the standard Huffman tables (what OpenCV writes) is sent as RFC 2435 type 1
with in-band quantisation tables (Q = 255). No authentication. Faults: ``stall`` (session
stays open, no packets), ``disconnect`` (drop sessions).
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import struct
import time
from collections.abc import Callable

from simulators.faults import FaultState

RTP_PAYLOAD = 1400


def parse_jpeg(data: bytes) -> tuple[int, int, list[bytes], bytes]:
    """(width, height, quant tables, entropy-coded scan) of a baseline JPEG."""
    i = 2
    tables: dict[int, bytes] = {}
    width = height = 0
    while i < len(data):
        if data[i] != 0xFF:
            raise ValueError("bad JPEG marker")
        marker = data[i + 1]
        length = struct.unpack(">H", data[i + 2 : i + 4])[0]
        segment = data[i + 4 : i + 2 + length]
        if marker == 0xDB:  # DQT: one or more tables
            j = 0
            while j < len(segment):
                pq_tq = segment[j]
                if pq_tq >> 4:
                    raise ValueError("16-bit quantisation tables are not supported")
                tables[pq_tq & 0x0F] = segment[j + 1 : j + 65]
                j += 65
        elif marker == 0xC0:  # SOF0
            height, width = struct.unpack(">HH", segment[1:5])
        elif marker == 0xDD:
            raise ValueError("restart intervals are not supported")
        elif marker == 0xDA:  # SOS: the scan runs to EOI
            start = i + 2 + length
            end = data.rfind(b"\xff\xd9")
            return width, height, [tables[k] for k in sorted(tables)], data[start:end]
        i += 2 + length
    raise ValueError("no scan in JPEG")


class RtspCameraSimulator:
    def __init__(
        self,
        jpeg_source: Callable[[], bytes],
        *,
        fps: float = 10.0,
        host: str = "127.0.0.1",
        port: int = 0,
        path: str = "/Streaming/Channels/101",
        faults: FaultState | None = None,
    ) -> None:
        self.jpeg_source = jpeg_source
        self.fps = fps
        self.host = host
        self.port = port
        self.path = path
        self.faults = faults or FaultState()  # shared with the HTTP side of the same camera
        self.frames_sent = 0
        self.sessions = 0
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"rtsp://{self.host}:{self.port}{self.path}"

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.url

    async def stop(self) -> None:
        await self.inject("disconnect")
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()

    async def inject(
        self, kind: str, *, count: int = 1, duration_s: float = 0.0, **params: float | str
    ) -> None:
        self.faults.inject(kind, count=count, duration_s=duration_s, **params)
        if kind == "disconnect":
            self.faults.take("disconnect")
            for writer in list(self._writers):
                writer.close()
            for task in list(self._tasks):
                task.cancel()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        session = f"{random.getrandbits(48):012X}"
        streaming: asyncio.Task[None] | None = None
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                if head.startswith(b"$"):  # an interleaved RTCP packet from the client
                    continue
                lines = head.decode("latin-1").split("\r\n")
                method, url, _ = ([*lines[0].split(" "), "", ""])[:3]
                headers = {}
                for line in lines[1:]:
                    key, _, value = line.partition(":")
                    headers[key.strip().lower()] = value.strip()
                if int(headers.get("content-length", "0")):
                    await reader.readexactly(int(headers["content-length"]))
                cseq = headers.get("cseq", "0")
                if method == "OPTIONS":
                    self._reply(writer, cseq, {"Public": "OPTIONS, DESCRIBE, SETUP, PLAY, "
                                               "TEARDOWN, GET_PARAMETER"})  # fmt: skip
                elif method == "DESCRIBE":
                    sdp = (
                        b"v=0\r\no=- 0 0 IN IP4 127.0.0.1\r\ns=lane-sim\r\nt=0 0\r\n"
                        b"m=video 0 RTP/AVP 26\r\nc=IN IP4 0.0.0.0\r\na=control:track1\r\n"
                    )
                    self._reply(writer, cseq, {"Content-Base": url.rstrip("/") + "/",
                                               "Content-Type": "application/sdp"}, sdp)  # fmt: skip
                elif method == "SETUP":
                    if "TCP" not in headers.get("transport", ""):
                        self._reply(writer, cseq, {}, status="461 Unsupported Transport")
                        continue
                    self._reply(writer, cseq, {
                        "Transport": "RTP/AVP/TCP;unicast;interleaved=0-1",
                        "Session": f"{session};timeout=60",
                    })  # fmt: skip
                elif method == "PLAY":
                    self._reply(writer, cseq, {"Session": session, "Range": "npt=0.000-"})
                    if streaming is None:
                        self.sessions += 1
                        streaming = asyncio.create_task(self._stream(writer))
                        self._tasks.add(streaming)
                elif method == "GET_PARAMETER":
                    self._reply(writer, cseq, {"Session": session})
                elif method == "TEARDOWN":
                    self._reply(writer, cseq, {"Session": session})
                    break
                else:
                    self._reply(writer, cseq, {}, status="405 Method Not Allowed")
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            pass
        finally:
            if streaming is not None:
                streaming.cancel()
                self._tasks.discard(streaming)
            self._writers.discard(writer)
            writer.close()

    def _reply(
        self, writer: asyncio.StreamWriter, cseq: str, headers: dict[str, str],
        body: bytes = b"", *, status: str = "200 OK",
    ) -> None:  # fmt: skip
        lines = [f"RTSP/1.0 {status}", f"CSeq: {cseq}", "Server: lane-sim"]
        lines += [f"{k}: {v}" for k, v in headers.items()]
        if body:
            lines.append(f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + body)

    async def _stream(self, writer: asyncio.StreamWriter) -> None:
        seq = random.getrandbits(16)
        ssrc = random.getrandbits(32)
        t0 = time.monotonic()
        period = 1.0 / self.fps
        while not writer.transport.is_closing():
            started = time.monotonic()
            if not self.faults.active("stall"):
                jpeg = await asyncio.to_thread(self.jpeg_source)
                width, height, tables, scan = parse_jpeg(jpeg)
                timestamp = int((started - t0) * 90_000) & 0xFFFFFFFF
                qheader = struct.pack(">BBH", 0, 0, 64 * len(tables)) + b"".join(tables)
                offset = 0
                while offset < len(scan):
                    if writer.transport.is_closing():
                        return
                    first = offset == 0
                    room = RTP_PAYLOAD - (len(qheader) if first else 0)
                    chunk = scan[offset : offset + room]
                    last = offset + len(chunk) >= len(scan)
                    rtp = struct.pack(">BBHII", 0x80, (0x80 if last else 0) | 26, seq, timestamp,
                                      ssrc)  # fmt: skip
                    jpeg_header = struct.pack(">I", offset & 0xFFFFFF) + bytes(
                        [1, 255, width // 8, height // 8]
                    )
                    payload = rtp + jpeg_header + (qheader if first else b"") + chunk
                    writer.write(b"$\x00" + struct.pack(">H", len(payload)) + payload)
                    seq = (seq + 1) & 0xFFFF
                    offset += len(chunk)
                self.frames_sent += 1
                try:
                    async with asyncio.timeout(2.0):
                        await writer.drain()
                except (TimeoutError, ConnectionError, OSError):
                    return
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))
