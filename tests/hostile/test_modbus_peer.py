"""A hostile Modbus TCP server (issue 22 #8, #11): exception, short, mismatched, garbage and
absurd replies, each a fault that ends DOWN with a reason, never a reading; UP again within
10 s of the server turning good.

The server is written here byte by byte (MBAP header + PDU, Modbus Application Protocol
v1.1b3 and Messaging on TCP/IP v1.0b), because a conforming server library will not send
these replies.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import struct

import pytest

from drivers.base import Driver, SensorState
from drivers.modbus import f32_to_regs
from drivers.readings import RpmCounts, RpmOccupancy, WeightReading
from drivers.registry import create_driver
from drivers.rpm.aspect import AspectMonitor, encode_monitor
from tests.drivers.conftest import run, until

FAST = {"backoff_min_s": 0.05, "backoff_max_s": 0.5, "degraded_hold_s": 1.0}


class HostileModbusServer:
    def __init__(self) -> None:
        self.mode = "good"
        self.registers = [0] * 256
        self.requests = 0
        self.port = 0
        self._server: asyncio.Server | None = None

    async def start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self.port

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2):
                    await self._server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                tid, _, length, unit = struct.unpack(">HHHB", await reader.readexactly(7))
                pdu = await reader.readexactly(max(0, length - 1))
                self.requests += 1
                reply = self._reply(tid, unit, pdu)
                if reply:
                    writer.write(reply)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError, struct.error):
            pass
        finally:
            writer.close()

    def _reply(self, tid: int, unit: int, pdu: bytes) -> bytes | None:
        mode, fc = self.mode, pdu[0]
        if mode == "silent":
            return None
        if mode == "garbage":
            return b"\xde\xad\xbe\xef" * 8
        if mode == "exception":
            body = bytes([fc | 0x80, 0x04])  # 04: server device failure
        else:
            address, count = struct.unpack(">HH", pdu[1:5])
            regs = self.registers[address : address + count]
            if mode == "short":
                regs = regs[: max(0, count - 1)]
            body = bytes([fc, 2 * len(regs)]) + b"".join(struct.pack(">H", r) for r in regs)
            if mode == "wrong_function":
                body = bytes([0x01 if fc != 0x01 else 0x02]) + body[1:]
            if mode == "wrong_transaction":
                tid ^= 0x5A5A
        return struct.pack(">HHHB", tid, 0, len(body) + 1, unit) + body


def _weights(driver: Driver) -> list[WeightReading]:
    out = []
    while True:
        try:
            item = driver._queue.get_nowait()
        except asyncio.QueueEmpty:
            return out
        if isinstance(item, WeightReading):
            out.append(item)


HOSTILE = ["exception", "short", "wrong_function", "wrong_transaction", "garbage", "silent"]


@pytest.mark.parametrize("mode", HOSTILE)
def test_hostile_replies_go_down_with_a_reason_and_recover(mode: str) -> None:
    async def main() -> None:
        server = HostileModbusServer()
        server.registers[0:2] = f32_to_regs(12_340.0)
        port = await server.start()
        options = {"host": "127.0.0.1", "port": port, "weight_address": 0,
                   "weight_type": "float32", "poll_ms": 50}  # fmt: skip
        driver = create_driver("wb1", "weighbridge.modbus", options, 300, **FAST)
        await driver.open()
        try:
            await until(lambda: driver.health().state is SensorState.UP, 10)
            server.mode = mode
            await until(lambda: driver.health().state is not SensorState.UP, 10)
            _weights(driver)  # what came before the peer turned hostile
            await until(lambda: driver.health().state is SensorState.DOWN, 10)
            health = driver.health()
            assert health.last_error, health
            assert not [w for w in _weights(driver) if w.gross_kg != 12_340.0]
            assert driver._task is not None and not driver._task.done()  # alive, reconnecting
            server.mode = "good"
            await until(lambda: driver.health().state is SensorState.UP, 10)
            await driver.next_reading(5)  # readings flow again
            assert driver.health().readings > health.readings
        finally:
            await driver.close()
            await server.stop()
        print(f"\n[hostile] modbus {mode}: faults {health.faults}; reason {health.last_error}")

    run(main(), timeout_s=60)


@pytest.mark.parametrize("value", [math.inf, -math.inf, math.nan, 3.0e38, -5_000.0])
def test_absurd_weights_are_faults_not_readings(value: float) -> None:
    async def main() -> None:
        server = HostileModbusServer()
        server.registers[0:2] = f32_to_regs(value)
        port = await server.start()
        options = {"host": "127.0.0.1", "port": port, "weight_address": 0,
                   "weight_type": "float32", "poll_ms": 50}  # fmt: skip
        driver = create_driver("wb1", "weighbridge.modbus", options, 300, **FAST)
        await driver.open()
        try:
            await until(lambda: server.requests >= 5, 10)
            kinds = driver.health().faults
            assert kinds.get("implausible", 0) + kinds.get("invalid_value", 0) >= 3, kinds
            assert _weights(driver) == []
            # Connected but measuring nothing: DEGRADED, then DOWN with the reason.
            await until(lambda: driver.health().state is SensorState.DOWN, 10)
            reason = driver.health().last_error or ""
            assert "stale" in reason and ("implausible" in reason or "invalid" in reason)
        finally:
            await driver.close()
            await server.stop()

    run(main(), timeout_s=60)


def test_absurd_rpm_monitor_values_are_faults() -> None:
    def monitor(gamma: int, background: float, occupied: bool) -> list[int]:
        return encode_monitor(AspectMonitor(
            elapsed=1, inputs=0x1 if occupied else 0, gamma_status=0x80, gamma_count=gamma,
            gamma_background=background, gamma_variance=1.0, neutron_status=0x80,
            neutron_count=1, neutron_background=1.0, neutron_variance=1.0, object_counter=7,
            object_mark=0, speed_mm_s=2000, outputs=0,
        ))  # fmt: skip

    async def main() -> None:
        server = HostileModbusServer()
        server.registers[100:121] = monitor(900, 850.0, occupied=False)
        port = await server.start()
        options = {"host": "127.0.0.1", "port": port, "poll_ms": 50}
        driver = create_driver("rpm2", "rpm.aspect", options, 300, **FAST)
        await driver.open()
        try:
            await until(lambda: driver.health().state is SensorState.UP, 10)
            server.registers[100:121] = monitor(900, 850.0, occupied=True)
            await until(lambda: server.requests >= 8, 5)
            for gamma, background in [(2_000_000_000, 850.0), (900, 5e12), (900, math.inf),
                                      (-5, 850.0), (900, -math.inf)]:  # fmt: skip
                server.registers[100:121] = monitor(gamma, background, occupied=True)
                before = driver.health().faults.get("implausible", 0)
                await until(lambda b=before: driver.health().faults.get("implausible", 0) > b, 5)
            server.registers[100:121] = monitor(900, 850.0, occupied=False)
            occupancy = None
            async with asyncio.timeout(10):
                while occupancy is None:
                    reading = await driver.next_reading(10)
                    if isinstance(reading, RpmCounts):
                        assert 0 <= (reading.counts[0] or 0) <= 1e7, reading
                    elif isinstance(reading, RpmOccupancy):
                        occupancy = reading
            # The occupancy holds only the plausible samples.
            assert occupancy.gamma_max_cps == 900
            assert occupancy.sigma is not None and math.isfinite(occupancy.sigma)
        finally:
            await driver.close()
            await server.stop()

    run(main(), timeout_s=60)
