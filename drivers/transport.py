"""Byte links for drivers: pyserial URLs behind a reader thread, and asyncio TCP.

pyserial is blocking, so each :class:`SerialLink` owns one reader thread that hands
bytes to the event loop; the loop never blocks on the port. Both links hand over bounded
chunks (:data:`CHUNK`), and the serial thread stops reading while :data:`MAX_QUEUED`
chunks wait for the loop, so a flooding port fills its own buffers, not the agent's memory.
``serial_for_url`` makes ``/dev/ttyUSB0``, ``/dev/pts/N``, ``socket://host:port`` and
``rfc2217://`` all work.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from typing import Any

from drivers.errors import DriverConnectionError, DriverTimeoutError

_EOF = object()
CHUNK = 1024
MAX_QUEUED = 64


class SerialLink:
    def __init__(
        self,
        url: str,
        *,
        baudrate: int = 9600,
        bytesize: int = 8,
        parity: str = "N",
        stopbits: int = 1,
    ) -> None:
        self.url = url
        self.settings = {
            "baudrate": baudrate,
            "bytesize": bytesize,
            "parity": parity,
            "stopbits": stopbits,
        }
        self._port: Any = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._queue: asyncio.Queue[Any] = asyncio.Queue()
        self._loop: asyncio.AbstractEventLoop | None = None

    async def open(self) -> None:
        import serial

        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        self._stop.clear()
        missing = _missing_device(self.url)
        if missing:
            raise DriverConnectionError(missing)
        try:
            self._port = await asyncio.to_thread(
                serial.serial_for_url, self.url, timeout=0.05, write_timeout=2.0, **self.settings
            )
        except Exception as exc:  # SerialException, OSError, termios.error, ValueError
            raise DriverConnectionError(f"cannot open {self.url}: {exc}") from exc
        with contextlib.suppress(Exception):
            self._port.reset_input_buffer()
        self._thread = threading.Thread(target=self._reader, name=f"serial:{self.url}", daemon=True)
        self._thread.start()

    def _reader(self) -> None:
        port, loop = self._port, self._loop
        assert loop is not None
        while not self._stop.is_set():
            if self._queue.qsize() >= MAX_QUEUED:  # the loop is behind: push back on the port
                self._stop.wait(0.01)
                continue
            try:
                data = port.read(1)
                if data:
                    waiting = port.in_waiting
                    if waiting:
                        data += port.read(min(waiting, CHUNK - 1))
            except Exception as exc:  # the port died (unplugged, TCP closed): report it
                loop.call_soon_threadsafe(self._queue.put_nowait, exc)
                return
            if data:
                loop.call_soon_threadsafe(self._queue.put_nowait, data)

    async def read(self, timeout_s: float) -> bytes:
        """Some bytes; DriverTimeoutError if none within ``timeout_s``."""
        try:
            async with asyncio.timeout(timeout_s):
                item = await self._queue.get()
        except TimeoutError:
            raise DriverTimeoutError(
                f"no data from {self.url} in {timeout_s * 1000:.0f} ms"
            ) from None
        if isinstance(item, Exception):
            raise DriverConnectionError(f"{self.url}: {item}") from item
        return item

    async def write(self, data: bytes) -> None:
        if self._port is None:
            raise DriverConnectionError(f"{self.url} is not open")
        try:
            await asyncio.to_thread(self._port.write, data)
        except Exception as exc:
            raise DriverConnectionError(f"write to {self.url} failed: {exc}") from exc

    def drain_input(self) -> None:
        """Forget bytes already received (before a request/response exchange)."""
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, Exception):
                self._queue.put_nowait(item)
                return

    async def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            await asyncio.to_thread(self._thread.join, 2.0)
            self._thread = None
        if self._port is not None:
            with contextlib.suppress(Exception):
                await asyncio.to_thread(self._port.close)
            self._port = None


class TcpLink:
    """A TCP client with per-read timeouts (a connected but silent peer is a timeout)."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None

    async def open(self, timeout_s: float) -> None:
        try:
            async with asyncio.timeout(timeout_s):
                self._reader, self._writer = await asyncio.open_connection(self.host, self.port)
        except (OSError, TimeoutError) as exc:
            raise DriverConnectionError(
                f"cannot connect to {self.host}:{self.port}: {exc or 'timeout'}"
            ) from exc

    async def read(self, timeout_s: float, max_bytes: int = CHUNK) -> bytes:
        assert self._reader is not None
        try:
            async with asyncio.timeout(timeout_s):
                data = await self._reader.read(max_bytes)
        except TimeoutError:
            raise DriverTimeoutError(
                f"{self.host}:{self.port} silent for {timeout_s * 1000:.0f} ms"
            ) from None
        except OSError as exc:
            raise DriverConnectionError(f"{self.host}:{self.port}: {exc}") from exc
        if not data:
            raise DriverConnectionError(f"{self.host}:{self.port} closed the connection")
        return data

    async def write(self, data: bytes) -> None:
        assert self._writer is not None
        try:
            self._writer.write(data)
            async with asyncio.timeout(2.0):
                await self._writer.drain()
        except (OSError, TimeoutError) as exc:
            raise DriverConnectionError(f"write to {self.host}:{self.port} failed: {exc}") from exc

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._writer.wait_closed()
        self._reader = self._writer = None


def _missing_device(url: str) -> str | None:
    """Why a serial device path cannot be opened, said plainly; None for URLs and paths that exist.

    A link whose target is gone (a simulator's pty link after the simulator stopped, a
    udev link of an unplugged adapter) is said to be one, with its target.
    """
    if "://" in url or os.path.exists(url):
        return None
    if os.path.islink(url):
        target = os.readlink(url)
        return f"{url} is a link to {target}, which is gone (unplugged, or a simulator stopped)"
    return f"{url} does not exist (device unplugged, or a simulator that is not running)"
