"""A hostile HTTP camera on a real socket: it plays one behaviour per request, byte by byte.

Behaviours (``peer.mode``): ``good`` (a small JPEG that changes every request, with
Content-Length, keep-alive), ``thermal`` (a valid ISAPI radiometric multipart), ``bomb`` (a
631-byte JPEG declaring 16000x16000 px), ``huge`` (Content-Length 600 MB, then zeros),
``huge_close`` (600 MB, no length, ends at close), ``chunked`` (an endless chunked body),
``trickle_headers`` (one header byte every 20 ms, for ever), ``many_headers`` (500 headers),
``huge_headers`` (a 200 KiB header line), ``bad_digest`` (a digest challenge with an unknown
algorithm),
``stall_body`` (half the declared body, then silence), ``trickle_body`` (one body byte every
20 ms), ``basic`` (``401 WWW-Authenticate: Basic``). ``require_basic`` makes ``good`` ask for
Basic credentials first. Every request head is kept in ``heads``.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import select
import socket
import threading
import time

import cv2
import numpy as np

from drivers.thermal.isapi import encode_response
from simulators.camera import bomb_jpeg

BIG = 600 * 1000 * 1000
ZEROS = bytes(64 * 1024)


class HostilePeer:
    def __init__(self, *, mode: str = "good", require_basic: tuple[str, str] | None = None) -> None:
        self.mode = mode
        self.require_basic = require_basic
        self.heads: list[bytes] = []
        self.connections = 0
        self._counter = itertools.count()
        self._closed = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._conns: set[socket.socket] = set()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/ISAPI/Streaming/channels/101/picture"

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> HostilePeer:
        thread = threading.Thread(target=self._accept, name="hostile-peer", daemon=True)
        thread.start()
        self._threads.append(thread)
        return self

    def stop(self) -> None:
        self._closed.set()
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            for conn in self._conns:
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        for thread in self._threads:
            thread.join(5)

    def authorizations(self) -> list[str]:
        """Every Authorization header any request carried."""
        out = []
        for head in self.heads:
            for line in head.decode("latin-1").split("\r\n")[1:]:
                key, _, value = line.partition(":")
                if key.strip().lower() == "authorization":
                    out.append(value.strip())
        return out

    # -- the server --------------------------------------------------------------------

    def _accept(self) -> None:
        self._listener.settimeout(0.1)
        while not self._closed.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with self._lock:
                self._conns.add(conn)
                self.connections += 1
            thread = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            thread.start()
            self._threads.append(thread)

    def _serve(self, conn: socket.socket) -> None:
        try:
            while not self._closed.is_set():
                head = self._read_head(conn)
                if head is None:
                    return
                self.heads.append(head)
                if not self._answer(conn, head):
                    return
        except OSError:
            return
        finally:
            with self._lock:
                self._conns.discard(conn)
            with contextlib.suppress(OSError):
                conn.close()

    def _read_head(self, conn: socket.socket) -> bytes | None:
        buf = b""
        while b"\r\n\r\n" not in buf:
            if not self._readable(conn, 0.1):
                if self._closed.is_set():
                    return None
                continue
            chunk = conn.recv(4096)
            if not chunk or len(buf) > 65536:
                return None
            buf += chunk
        return buf.split(b"\r\n\r\n", 1)[0]

    def _readable(self, conn: socket.socket, timeout: float) -> bool:
        readable, _, _ = select.select([conn], [], [], timeout)
        return bool(readable)

    def _hold(self, conn: socket.socket) -> None:
        """Say nothing until the client hangs up or the peer stops."""
        while not self._closed.is_set():
            if self._readable(conn, 0.1) and not conn.recv(4096):
                return

    def _answer(self, conn: socket.socket, head: bytes) -> bool:
        """Play the current mode; True to keep the connection for another request."""
        mode = self.mode
        if mode == "basic" or (mode == "good" and not self._basic_ok(head)):
            body = b"401 Unauthorized"
            conn.sendall(
                b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm="IP Camera"\r\n'
                b"Content-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
            )
            return True
        if mode == "good":
            self._send(conn, "image/jpeg", self._jpeg())
            return True
        if mode == "thermal":
            content_type, body = encode_response(np.full((12, 16), 21.5, np.float32))
            self._send(conn, content_type, body)
            return True
        if mode == "bomb":
            self._send(conn, "image/jpeg", bomb_jpeg())
            return True
        if mode == "huge_headers":  # one 200 KiB header line, over h11's 100 KiB
            self._send(
                conn, "image/jpeg", self._jpeg(), extra=b"X-Pad: " + b"a" * 200_000 + b"\r\n"
            )
            return True
        if mode == "bad_digest":  # a challenge httpx's DigestAuth cannot answer
            conn.sendall(
                b'HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Digest realm="x", nonce="n", '
                b"algorithm=ROT13\r\nContent-Length: 0\r\n\r\n"
            )
            return True
        if mode == "many_headers":
            extra = b"".join(b"X-Filler-%d: %d\r\n" % (i, i) for i in range(500))
            self._send(conn, "image/jpeg", self._jpeg(), extra=extra)
            return True
        if mode in ("huge", "huge_close"):
            length = b"Content-Length: %d\r\n" % BIG if mode == "huge" else b"Connection: close\r\n"
            conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\n" + length + b"\r\n")
            conn.sendall(b"\xff\xd8")
            for _ in range(BIG // len(ZEROS)):
                conn.sendall(ZEROS)
            return False
        if mode == "chunked":
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n"
            )
            chunk = b"%x\r\n%s\r\n" % (len(ZEROS), ZEROS)
            while not self._closed.is_set():
                conn.sendall(chunk)
            return False
        if mode == "trickle_headers":
            conn.sendall(b"HTTP/1.1 200 OK\r\nX-Slow: ")
            while not self._closed.is_set():
                conn.sendall(b"a")
                time.sleep(0.02)
            return False
        if mode in ("stall_body", "trickle_body"):
            data = self._jpeg()
            conn.sendall(
                b"HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nContent-Length: %d\r\n\r\n"
                % (len(data) * 1000)
            )
            conn.sendall(data[: len(data) // 2])
            if mode == "stall_body":
                self._hold(conn)
                return False
            while not self._closed.is_set():
                conn.sendall(b"\x00")
                time.sleep(0.02)
            return False
        raise AssertionError(f"unknown mode {mode!r}")

    def _basic_ok(self, head: bytes) -> bool:
        if self.require_basic is None:
            return True
        token = base64.b64encode(":".join(self.require_basic).encode()).decode()
        return f"Basic {token}" in self.authorizations_of(head)

    @staticmethod
    def authorizations_of(head: bytes) -> list[str]:
        return [
            line.partition(":")[2].strip()
            for line in head.decode("latin-1").split("\r\n")[1:]
            if line.partition(":")[0].strip().lower() == "authorization"
        ]

    def _send(
        self, conn: socket.socket, content_type: str, body: bytes, extra: bytes = b""
    ) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: %s\r\nContent-Length: %d\r\n%s\r\n"
            % (content_type.encode(), len(body), extra)
            + body
        )

    def _jpeg(self) -> bytes:
        """A 64x48 picture that differs every time (a real sensor is never still)."""
        n = next(self._counter)
        image = np.full((48, 64, 3), n % 200, np.uint8)
        cv2.putText(image, str(n), (2, 40), cv2.FONT_HERSHEY_SIMPLEX, 1.0, (255, 255, 255), 2)
        ok, data = cv2.imencode(".jpg", image)
        assert ok
        return data.tobytes()
