"""A weighbridge indicator on a pty or a TCP serial server: Toledo, XK3190, MT-SICS.

The weight comes from :attr:`WeighbridgeSimulator.profile` (a function of time: the
scenario's truck) or :meth:`set_weight`. The motion flag is raised while the weight moves
by more than one division between frames, as a real indicator does.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import Callable
from typing import Literal

from drivers.weighbridge import sics, toledo, xk3190
from simulators.faults import FaultState
from simulators.ports import PtyPort, SimPort, TcpPort

Protocol = Literal["toledo", "xk3190", "xk3190-command", "sics"]
# profile(t) -> (gross kg, motion) where t is seconds since start.
WeightProfile = Callable[[float], tuple[float, bool]]


class WeighbridgeSimulator:
    def __init__(
        self,
        protocol: Protocol = "toledo",
        *,
        transport: Literal["pty", "tcp"] = "pty",
        rate_hz: float = 10.0,
        division_kg: float = 10.0,
        capacity_kg: float = 80_000.0,
        address: str = "A",
        seed: int = 0,
        port: int = 0,
    ) -> None:
        self.protocol = protocol
        self.port: SimPort = PtyPort() if transport == "pty" else TcpPort(port=port)
        self.rate_hz = rate_hz
        self.division_kg = division_kg
        self.capacity_kg = capacity_kg
        self.address = address
        self.rng = random.Random(seed)
        self.faults = FaultState()
        self.weight_kg = 0.0
        self.motion = False
        self.not_zeroed = False
        self.zero_offset_kg = 0.0
        self.tare_kg = 0.0
        self.clock_offset_s = 0.0
        self.profile: WeightProfile | None = None
        self.frames_sent = 0
        self._t0 = time.monotonic()
        self._task: asyncio.Task[None] | None = None
        self._last_frame = b""
        self._last_shown: float | None = None
        self._cmd_buf = bytearray()
        self.url = ""

    # -- control -----------------------------------------------------------------------

    async def start(self) -> str:
        self.port.on_data = self._on_data
        self.url = await self.port.start()
        self._t0 = time.monotonic()
        if self.protocol in ("toledo", "xk3190"):
            self._task = asyncio.create_task(self._stream())
        return self.url

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        await self.port.stop()

    def set_weight(self, kg: float, *, motion: bool = False) -> None:
        self.profile = None
        self.weight_kg = kg
        self.motion = motion

    async def inject(
        self, kind: str, *, count: int = 1, duration_s: float = 0.0, **params: float | str
    ) -> None:
        self.faults.inject(kind, count=count, duration_s=duration_s, **params)
        if kind == "disconnect":
            self.faults.take("disconnect")
            await self.port.disconnect()
        elif kind == "garbage":
            self.faults.take("garbage")
            n = int(params.get("size", 32))
            self.port.write(bytes(self.rng.randrange(256) for _ in range(n)))

    # -- what the indicator shows ------------------------------------------------------

    def _current(self) -> tuple[float, bool, bool]:
        """(displayed gross kg rounded to the division, motion, overload)."""
        if self.profile is not None:
            weight, motion = self.profile(time.monotonic() - self._t0)
        else:
            weight, motion = self.weight_kg, self.motion
        if self.faults.active("unstable"):
            amplitude = self.faults.param("unstable", "amplitude_d", 5) * self.division_kg
            weight += self.rng.uniform(-amplitude, amplitude)
            motion_flag = False  # the fault: an indicator that does not flag its own motion
        else:
            motion_flag = motion
        weight -= self.zero_offset_kg
        shown = round(weight / self.division_kg) * self.division_kg
        if (
            not self.faults.active("unstable")
            and self._last_shown is not None
            and abs(shown - self._last_shown) > self.division_kg
        ):
            motion_flag = True
        self._last_shown = shown
        return shown, motion_flag, shown > self.capacity_kg

    def frame(self) -> bytes:
        shown, motion, overload = self._current()
        if self.protocol == "toledo":
            net = self.tare_kg > 0
            decimals, increment = toledo.format_for_division(self.division_kg)
            data = toledo.encode(
                min(shown - self.tare_kg if net else shown, 999_999),
                tare=self.tare_kg,
                net=net,
                motion=motion,
                overload=overload,
                not_zeroed=self.not_zeroed,
                decimals=decimals,
                increment=increment,
            )
        else:
            data = xk3190.encode_continuous(min(shown, 999_999))
        return data

    # -- streaming protocols -----------------------------------------------------------

    async def _stream(self) -> None:
        period = 1.0 / self.rate_hz
        next_at = time.monotonic()
        while True:
            next_at += period
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            if self.faults.active("stall"):
                continue
            if self.faults.active("freeze") and self._last_frame:
                data = self._last_frame
            else:
                data = self.frame()
                self._last_frame = data
            self.port.write(self._damage(data))
            self.frames_sent += 1

    def _damage(self, data: bytes) -> bytes:
        if self.faults.take("bad_checksum"):
            if self.protocol == "toledo":
                return data[:-1] + bytes([(data[-1] + 1) & 0x7F])
            return data[:-3] + b"00" + data[-1:]
        if self.faults.take("truncated"):
            return data[: len(data) // 2]
        return data

    # -- command protocols -------------------------------------------------------------

    def _on_data(self, data: bytes) -> None:
        if self.protocol == "sics":
            self._cmd_buf.extend(data)
            while (nl := self._cmd_buf.find(b"\n")) >= 0:
                line = bytes(self._cmd_buf[:nl]).strip().decode("ascii", "replace")
                del self._cmd_buf[: nl + 1]
                self._reply(self._sics(line))
        elif self.protocol == "xk3190-command":
            self._cmd_buf.extend(data)
            while (start := self._cmd_buf.find(xk3190.STX)) >= 0:
                end = self._cmd_buf.find(xk3190.ETX, start)
                if end < 0:
                    break
                request = bytes(self._cmd_buf[start : end + 1])
                del self._cmd_buf[: end + 1]
                self._reply(self._xk_command(request))
            if len(self._cmd_buf) > 256:
                self._cmd_buf.clear()
        else:
            self._cmd_buf.extend(data)
            for byte in bytes(self._cmd_buf):
                if byte == ord("Z"):
                    self._zero()
                elif byte == ord("T"):
                    self.tare_kg = max(0.0, self._current()[0])
            self._cmd_buf.clear()

    def _reply(self, data: bytes | None) -> None:
        if data is None or self.faults.active("stall") or self.faults.take("no_reply"):
            return
        self.port.write(self._damage(data))
        self.frames_sent += 1

    def _zero(self) -> bool:
        shown, motion, _ = self._current()
        if motion or abs(shown) > 0.04 * self.capacity_kg:
            return False
        self.zero_offset_kg += shown
        self.not_zeroed = False
        return True

    def _sics(self, line: str) -> bytes | None:
        if not line:
            return None
        command = line.split()[0]
        if command in ("SI", "S"):
            shown, motion, overload = self._current()
            if overload:
                return sics.encode_reply("S", "+")
            if shown < -20 * self.division_kg:
                return sics.encode_reply("S", "-")
            return sics.encode_reply("S", "D" if motion else "S", shown, unit="kg")
        if command in ("Z", "ZI"):
            return sics.encode_reply(command, "A" if self._zero() else "I")
        if command in ("T", "TI"):
            shown, motion, _ = self._current()
            if motion:
                return sics.encode_reply(command, "I")
            self.tare_kg = shown
            return sics.encode_reply(command, "S", shown, unit="kg")
        if command == "TAC":
            self.tare_kg = 0.0
            return sics.encode_reply(command, "A")
        if command == "I2":
            return b'I2 A "LANE-SIM WB" "80000 kg"\r\n'
        if command == "@":
            return b'I4 A "SIM0001"\r\n'
        return b"ES\r\n"

    def _xk_command(self, request: bytes) -> bytes | None:
        if len(request) != 6 or request[3:5] != xk3190.xor_bytes(request[1:3]):
            return None
        address, command = chr(request[1]), chr(request[2])
        if address != self.address:
            return None
        shown, _, _ = self._current()
        value = {"B": shown, "C": self.tare_kg, "D": shown - self.tare_kg}.get(command, 0.0)
        return xk3190.encode_reply(command, min(value, 999_999), address=address)
