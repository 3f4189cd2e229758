"""Byte ports for simulated serial devices: a pseudo-terminal pair or a TCP serial server.

A :class:`PtyPort` gives the driver a real tty path (``/dev/pts/N``) to open with pyserial;
a :class:`TcpPort` behaves like a serial device server (Moxa NPort style) reached with
``socket://host:port``, and can drop its clients to simulate the server closing TCP.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tty
from abc import ABC, abstractmethod
from collections.abc import Callable


class SimPort(ABC):
    url: str = ""
    on_data: Callable[[bytes], None] | None = None
    dropped_bytes = 0

    @abstractmethod
    async def start(self) -> str: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @abstractmethod
    def write(self, data: bytes) -> None:
        """Best effort, like a real line: bytes nobody reads are lost."""

    async def disconnect(self) -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot simulate a disconnect")


class PtyPort(SimPort):
    def __init__(self) -> None:
        self._master = -1
        self._slave = -1

    async def start(self) -> str:
        self._master, self._slave = os.openpty()
        # Raw before anyone opens it: no echo, no line buffering of binary frames.
        tty.setraw(self._slave)
        os.set_blocking(self._master, False)
        asyncio.get_running_loop().add_reader(self._master, self._readable)
        self.url = os.ttyname(self._slave)
        return self.url

    def _readable(self) -> None:
        try:
            data = os.read(self._master, 4096)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            return
        if data and self.on_data is not None:
            self.on_data(data)

    def write(self, data: bytes) -> None:
        if self._master < 0:
            return
        try:
            written = os.write(self._master, data)
            self.dropped_bytes += len(data) - written
        except (BlockingIOError, OSError):
            self.dropped_bytes += len(data)

    async def stop(self) -> None:
        if self._master >= 0:
            asyncio.get_running_loop().remove_reader(self._master)
            os.close(self._master)
            os.close(self._slave)
            self._master = self._slave = -1


class TcpPort(SimPort):
    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self.url = f"socket://{self.host}:{self.port}"
        return self.url

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        try:
            while data := await reader.read(4096):
                if self.on_data is not None:
                    self.on_data(data)
        except (ConnectionError, OSError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def write(self, data: bytes) -> None:
        for writer in list(self._clients):
            transport = writer.transport
            if transport.is_closing() or transport.get_write_buffer_size() > 65536:
                self.dropped_bytes += len(data)
                continue
            writer.write(data)

    async def disconnect(self) -> None:
        for writer in list(self._clients):
            writer.close()
        self._clients.clear()

    async def stop(self) -> None:
        await self.disconnect()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()
            self._server = None


class PtyBridge:
    """Two pseudo-terminals wired back to back (what ``socat pty pty`` does): a null-modem
    cable between two programs that each open a tty path, e.g. a Modbus RTU server and its
    client."""

    def __init__(self) -> None:
        self.a = PtyPort()
        self.b = PtyPort()

    async def start(self) -> tuple[str, str]:
        self.a.on_data = self.b.write
        self.b.on_data = self.a.write
        return await self.a.start(), await self.b.start()

    async def stop(self) -> None:
        await self.a.stop()
        await self.b.stop()
