"""Hostile device peers in a child process, and a probe of the agent's event-loop lag.

A peer runs in its own process so that its CPU is not counted as the agent's and its
writes do not share the agent's event loop: the numbers the tests report are the agent's.
It serves a TCP line device (``tcp``) or a pseudo-terminal (``pty``) and switches between
the named modes of :data:`MODES` on a line written to its stdin. The first line on its
stdout is the port number or the tty path.

    python -m tests.hostile.peers tcp rpm_good
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import statistics
import subprocess
import sys
import threading
import time
import tty
from pathlib import Path
from typing import Literal

from drivers.rpm import rapiscan
from drivers.weighbridge import toledo

# mode -> (bytes to send, pause between sends; 0 = as fast as the reader takes them)
_RNG = random.Random(7)
MODES: dict[str, tuple[bytes, float]] = {
    "rpm_good": (
        rapiscan.encode_counts("GB", (212, 208, 215, 210))
        + rapiscan.encode_counts("NB", (1, 0, 2, 1)),
        0.1,
    ),
    "blank": (b"\r\n" * 4096, 0.0),
    "ignored_lines": (b"RW,000001,000002\r\n", 0.05),  # a normal rate, but nothing useful
    "unknown_lines": (b"XX,000001,000002\r\n" * 512, 0.0),
    "binary": (bytes(_RNG.randrange(256) for _ in range(8192)), 0.0),
    "rpm_absurd": (
        b"GB,5000000000000,000000,000000,000000\r\n"
        + b"GS,999999999999,999999999999,000000,000000\r\n"
        + rapiscan.encode_counts("NB", (1, 0, 2, 1)),
        0.05,
    ),
    "stx": (b"\x02" * 8192, 0.0),
    "toledo_good": (toledo.encode(12_340), 0.05),
}


def _child(transport: str, mode: str) -> None:
    state = {"mode": mode}

    def control() -> None:
        for line in sys.stdin:
            if line.strip() in MODES:
                state["mode"] = line.strip()
        os._exit(0)  # the test went away: so does its peer

    threading.Thread(target=control, daemon=True).start()
    if transport == "pty":
        master, slave = os.openpty()
        tty.setraw(slave)
        print(os.ttyname(slave), flush=True)
        while True:
            data, pause = MODES[state["mode"]]
            with contextlib.suppress(OSError):  # nobody has the tty open (a reconnect)
                os.write(master, data)  # blocks when the reader falls behind: backpressure
            time.sleep(pause or 0.0005)
    else:
        asyncio.run(_tcp(state))


async def _tcp(state: dict[str, str]) -> None:
    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                data, pause = MODES[state["mode"]]
                writer.write(data)
                await writer.drain()
                await asyncio.sleep(pause)
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    print(server.sockets[0].getsockname()[1], flush=True)
    async with server:
        await server.serve_forever()


class PeerProcess:
    """The child process from the test's side: ``address``, ``switch(mode)``, ``stop()``."""

    def __init__(self, transport: Literal["tcp", "pty"], mode: str) -> None:
        self.transport = transport
        self._proc = subprocess.Popen(
            [sys.executable, "-m", "tests.hostile.peers", transport, mode],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=Path(__file__).resolve().parents[2],
        )
        assert self._proc.stdout is not None
        self.address = self._proc.stdout.readline().strip()
        if not self.address:
            raise RuntimeError("the peer process did not start")

    def switch(self, mode: str) -> None:
        assert mode in MODES and self._proc.stdin is not None
        self._proc.stdin.write(mode + "\n")
        self._proc.stdin.flush()

    def stop(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait(5)


class LoopLag:
    """How late a task that sleeps ``interval_s`` wakes up: the loop's responsiveness."""

    def __init__(self, interval_s: float = 0.01) -> None:
        self.interval_s = interval_s
        self.samples: list[float] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        while True:
            before = time.perf_counter()
            await asyncio.sleep(self.interval_s)
            self.samples.append(max(0.0, time.perf_counter() - before - self.interval_s))

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    def reset(self) -> None:
        self.samples = []

    def p99(self) -> float:
        if len(self.samples) < 2:
            return max(self.samples, default=0.0)
        return statistics.quantiles(self.samples, n=100)[98]

    def max(self) -> float:
        return max(self.samples, default=0.0)


if __name__ == "__main__":
    _child(sys.argv[1], sys.argv[2])
