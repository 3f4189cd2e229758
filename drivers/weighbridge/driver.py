"""Weighbridge indicator drivers over a serial link (any pyserial URL).

Toledo and XK3190 ``tF=0`` stream frames; XK3190 ``tF=1`` and MT-SICS are polled. Every
frame goes through :class:`StabilityFilter`; a weight is stable only when the indicator
reports no motion and the last ``stable_frames`` frames agree within one division.
A link that delivers no valid frame within the device timeout is DEGRADED, within twice
it DOWN (reconnect); garbage and bad checksums in between are counted faults (DEGRADED).
A weight outside ``min_plausible_kg``..``max_plausible_kg`` (or not finite) is a fault,
never a reading.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any, Literal

from pydantic import Field

from drivers.base import Driver
from drivers.codec import CodecFault
from drivers.errors import DriverProtocolError, DriverTimeoutError, UnsupportedCommandError
from drivers.options import SerialOptions, WeightBounds
from drivers.readings import WeightReading
from drivers.transport import SerialLink
from drivers.weighbridge import sics, toledo, xk3190
from drivers.weighbridge.stability import StabilityFilter


class ScaleOptions(SerialOptions, WeightBounds):
    stable_frames: int = Field(5, ge=1, le=100, description="N consecutive frames within 1 d")
    division_kg: float | None = Field(
        None, gt=0, description="Display division; Toledo frames carry it, others need it."
    )
    capacity_kg: float | None = Field(None, gt=0, description="Above this: overload.")


class ToledoOptions(ScaleOptions):
    # The line is 7E1, but 7E1 and 8N1 are both 10 bits a character and the codec masks
    # bit 7, so 8N1 reads it too, and also works on ptys and serial servers that force CS8.
    bytesize: Literal[7, 8] = 8
    parity: Literal["N", "E", "O"] = "N"
    checksum: bool = True
    commands: bool = Field(
        False, description="Indicator accepts Z/T single-character commands (CTPZ). [design]"
    )


class Xk3190Options(ScaleOptions):
    mode: Literal["continuous", "command"] = "continuous"
    address: str = Field("A", pattern="^[A-Z]$")
    poll_ms: int = Field(200, ge=20, le=10_000)
    unit: Literal["kg", "t"] = "kg"
    division_kg: float | None = Field(10.0, gt=0)


class SicsOptions(ScaleOptions):
    poll_ms: int = Field(200, ge=20, le=10_000)
    division_kg: float | None = Field(10.0, gt=0)


class _ScaleDriver(Driver):
    options: ScaleOptions

    def __init__(self, device_id: str, options: ScaleOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.link = SerialLink(
            options.url,
            baudrate=options.baudrate,
            bytesize=options.bytesize,
            parity=options.parity,
            stopbits=options.stopbits,
        )
        self.filter = StabilityFilter(options.stable_frames, options.division_kg or 1.0)

    @property
    def stale_after_s(self) -> float:
        poll_ms = getattr(self.options, "poll_ms", 0)
        return self.timeout_s + poll_ms / 1000

    def _stale_detail(self) -> str:
        return "no valid frame"

    async def _connect(self) -> None:
        await self.link.open()
        self.filter.reset()

    async def _disconnect(self) -> None:
        await self.link.close()

    def _count(self, fault: CodecFault) -> None:
        self._fault(fault.kind, fault.message, count=fault.count)

    def _publish(
        self,
        gross_kg: float,
        *,
        motion: bool,
        overload: bool = False,
        not_zeroed: bool = False,
        division_kg: float | None = None,
        net_kg: float | None = None,
        tare_kg: float | None = None,
    ) -> None:
        problem = self.options.weight_problem(gross_kg)
        if problem is not None:
            self._fault("implausible", problem)
            self.filter.reset()  # a stable run must not span an absurd frame
            return
        capacity = self.options.capacity_kg
        overload = overload or (capacity is not None and gross_kg > capacity)
        division = division_kg or self.options.division_kg or self.filter.division_kg
        stable = self.filter.feed(gross_kg, motion=motion or overload, division_kg=division)
        self._emit(
            WeightReading(
                device_id=self.device_id,
                gross_kg=gross_kg,
                net_kg=net_kg,
                tare_kg=tare_kg,
                stable=stable and not overload,
                motion=motion,
                overload=overload,
                not_zeroed=not_zeroed,
                division_kg=division,
            )
        )

    async def zero(self) -> None:
        raise UnsupportedCommandError(f"{self.kind} cannot zero")

    async def tare(self) -> None:
        raise UnsupportedCommandError(f"{self.kind} cannot tare")


class ToledoDriver(_ScaleDriver):
    kind = "weighbridge.toledo"
    options: ToledoOptions

    def __init__(self, device_id: str, options: ToledoOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.parser = toledo.ToledoParser(with_checksum=options.checksum)

    async def _connect(self) -> None:
        self.parser = toledo.ToledoParser(with_checksum=self.options.checksum)
        await super()._connect()

    async def _session(self) -> None:
        while True:
            data = await self.link.read(self.timeout_s)
            started = time.perf_counter()
            for item in self.parser.feed(data):
                if isinstance(item, CodecFault):
                    self._count(item)
                    continue
                self._publish(
                    item.gross_kg,
                    motion=item.motion,
                    overload=item.overload,
                    not_zeroed=item.not_zeroed,
                    division_kg=self.options.division_kg or item.division_kg,
                    net_kg=item.net_kg,
                    tare_kg=item.tare * (toledo.LB_TO_KG if item.unit == "lb" else 1.0)
                    if item.net
                    else None,
                )
            # Bytes that never form a valid frame (wrong baud, 7E1 vs 8N1): a dead link.
            self._check_useful()
            await self._paced(started, len(data))

    def _raw_frames(self) -> tuple[bytes, ...]:
        return self.parser.history.frames()

    async def zero(self) -> None:
        if not self.options.commands:
            raise UnsupportedCommandError("this Toledo port is configured without commands")
        await self.link.write(b"Z")

    async def tare(self) -> None:
        if not self.options.commands:
            raise UnsupportedCommandError("this Toledo port is configured without commands")
        await self.link.write(b"T")


class Xk3190Driver(_ScaleDriver):
    """XK3190 ``tF=0`` (continuous) or ``tF=1`` (polled gross weight)."""

    kind = "weighbridge.xk3190"
    options: Xk3190Options

    def __init__(self, device_id: str, options: Xk3190Options, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.parser = xk3190.XkParser()
        self._factor = 1000.0 if options.unit == "t" else 1.0

    async def _connect(self) -> None:
        self.parser = xk3190.XkParser()
        await super()._connect()

    def _handle(self, items: list[xk3190.XkFrame | CodecFault]) -> bool:
        """Publish frames; True when the exchange is over (a reply, good or bad)."""
        got = False
        for item in items:
            if isinstance(item, CodecFault):
                self._count(item)
                got = got or item.kind in ("checksum", "framing")
                continue
            if item.command not in (None, "B"):
                continue
            got = True
            self._publish(item.weight * self._factor, motion=False)
        return got

    async def _session(self) -> None:
        if self.options.mode == "continuous":
            while True:
                data = await self.link.read(self.timeout_s)
                started = time.perf_counter()
                self._handle(self.parser.feed(data))
                self._check_useful()
                await self._paced(started, len(data))
        request = xk3190.encode_command("gross", address=self.options.address)
        while True:
            self.link.drain_input()
            await self.link.write(request)
            deadline = time.monotonic() + self.timeout_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DriverTimeoutError(
                        f"no reply to gross-weight request in {self.timeout_s * 1000:.0f} ms"
                    )
                data = await self.link.read(remaining)
                started = time.perf_counter()
                done = self._handle(self.parser.feed(data))
                await self._paced(started, len(data))
                if done:
                    break
            self._check_useful()
            await asyncio.sleep(self.options.poll_ms / 1000)

    def _raw_frames(self) -> tuple[bytes, ...]:
        return self.parser.history.frames()


class SicsDriver(_ScaleDriver):
    """MT-SICS: polls ``SI``; ``S`` stable, ``D`` dynamic, ``+``/``-`` out of range."""

    kind = "weighbridge.sics"
    options: SicsOptions

    def __init__(self, device_id: str, options: SicsOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.parser = sics.SicsParser()
        self._lock = asyncio.Lock()
        self._identity_cache: dict[str, Any] = {}

    async def _connect(self) -> None:
        self.parser = sics.SicsParser()
        await super()._connect()

    async def request(self, command: str, *, timeout_s: float | None = None) -> sics.SicsReply:
        """Send one command and wait for its reply (``ES``/``ET``/``EL`` included).

        A garbled line in its place is counted and raises :class:`DriverProtocolError`
        (the exchange is over: waiting on would only turn bad data into a timeout).
        """
        timeout_s = timeout_s or self.timeout_s
        # SI is answered with an S line; other commands echo their own name.
        reply_to = "S" if command in {"S", "SI"} else command.split()[0]
        async with self._lock:
            self.link.drain_input()
            await self.link.write(sics.encode_command(command))
            deadline = time.monotonic() + timeout_s
            while True:
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise DriverTimeoutError(
                        f"no reply to {command!r} in {timeout_s * 1000:.0f} ms"
                    )
                data = await self.link.read(remaining)
                started = time.perf_counter()
                garbled: CodecFault | None = None
                for item in self.parser.feed(data):
                    if isinstance(item, CodecFault):
                        self._count(item)
                        garbled = item
                    elif item.command in sics.ERROR_REPLIES or item.command == reply_to:
                        return item
                    else:
                        self._fault("unexpected", f"reply {item.command!r} to {command!r}")
                await self._paced(started, len(data))
                if garbled is not None:
                    raise DriverProtocolError(
                        f"garbled reply to {command!r}: {garbled.kind}: {garbled.message}",
                        raw_frames=self._raw_frames(),
                    )

    async def _session(self) -> None:
        while True:
            try:
                reply = await self.request("SI")
            except DriverProtocolError:  # counted; a scale that only garbles goes stale
                self._check_useful()
                await asyncio.sleep(self.options.poll_ms / 1000)
                continue
            if reply.command in sics.ERROR_REPLIES:
                self._fault("device_error", sics.ERROR_REPLIES[reply.command])
            elif reply.status in "+-":
                # Out of range carries no weight: report the flag, never a stable value.
                self._publish(self.options.capacity_kg or 0.0, motion=True, overload=True)
            elif reply.status == "I" or reply.value_kg is None:
                self._fault("not_executable", "SI not executable")
            else:
                self._publish(reply.value_kg, motion=reply.status == "D")
            self._check_useful()
            await asyncio.sleep(self.options.poll_ms / 1000)

    async def _identity(self) -> dict[str, Any]:
        if not self.health().connected:
            return {}
        try:
            reply = await self.request("I2")
        except Exception as exc:  # diagnostics must not fail on a busy scale
            return {"I2": f"no answer: {exc}"}
        return {"I2": reply.raw.decode("ascii", "replace").strip()}

    async def zero(self) -> None:
        reply = await self.request("Z", timeout_s=max(self.timeout_s, 2.0))
        if reply.status != "A":
            raise UnsupportedCommandError(f"zero refused: {reply.command} {reply.status}")

    async def tare(self) -> None:
        reply = await self.request("T", timeout_s=max(self.timeout_s, 2.0))
        if reply.status != "S":
            raise UnsupportedCommandError(f"tare refused: {reply.command} {reply.status}")

    def _raw_frames(self) -> tuple[bytes, ...]:
        return self.parser.history.frames()
