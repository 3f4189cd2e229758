"""A Rapiscan-style RPM on a TCP port (1601 by default on real units; 0 = any free port).

Unoccupied it sends GB and NB every ``background_interval_s``; a vehicle sends GS/GA every
200 ms, NS/NA every second, SP, then GX. Alarms follow the device maths: a 1 s gamma sum
above B + n*sqrt(B). What was sent per occupancy is kept in :attr:`truth`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from drivers.rpm import rapiscan
from simulators.faults import FaultState


def _poisson(rng: random.Random, mean: float) -> int:
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, k, p = math.exp(-mean), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


@dataclass
class OccupancyTruth:
    occupancy_no: int
    gamma_alarm: bool
    neutron_alarm: bool
    gamma_max_cps: int
    neutron_max: int
    gx_sent: bool
    vehicle: str = ""


@dataclass
class RpmVehicle:
    duration_s: float = 3.0
    gamma_cps: float = 0.0
    """Extra gamma counts per second over all panels at the peak (0: no source)."""
    neutron_cps: float = 0.0
    speed_kmh: float = 8.0
    vehicle: str = ""
    done: asyncio.Event = field(default_factory=asyncio.Event)


class RapiscanSimulator:
    def __init__(
        self,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        background_cps: tuple[int, int, int, int] = (212, 208, 215, 210),
        neutron_background: tuple[int, int, int, int] = (1, 0, 2, 1),
        background_interval_s: float = 5.0,
        speedup: float = 1.0,
        nsigma: float = 6.0,
        neutron_alarm_level: int = 12,
        seed: int = 0,
        firmware: str = "1.20.1A",
    ) -> None:
        self.host = host
        self.port = port
        self.background_cps = background_cps
        self.neutron_background = neutron_background
        self.background_interval_s = background_interval_s
        # Lines always mean 200 ms (gamma) and 1 s (neutron) of counts; speedup only sends
        # them faster, so tests can run a 3 s occupancy in 0.3 s without changing the maths.
        self.speedup = speedup
        self.nsigma = nsigma
        self.neutron_alarm_level = neutron_alarm_level
        self.firmware = firmware
        self.rng = random.Random(seed)
        self.faults = FaultState()
        self.truth: list[OccupancyTruth] = []
        self.occupancy_count = 0
        self.clock_offset_s = 0.0
        self.lines_sent = 0
        self._server: asyncio.Server | None = None
        self._clients: set[asyncio.StreamWriter] = set()
        self._vehicles: asyncio.Queue[RpmVehicle] = asyncio.Queue()
        self._task: asyncio.Task[None] | None = None
        self.url = ""

    async def start(self) -> str:
        self._server = await asyncio.start_server(self._serve, self.host, self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        self._task = asyncio.create_task(self._run())
        self.url = f"tcp://{self.host}:{self.port}"
        return self.url

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for writer in list(self._clients):
            writer.close()
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(1.0):
                    await self._server.wait_closed()

    @property
    def clients(self) -> int:
        return len(self._clients)

    def pass_vehicle(self, vehicle: RpmVehicle) -> RpmVehicle:
        """Queue a vehicle; ``vehicle.done`` is set after its GX."""
        self._vehicles.put_nowait(vehicle)
        return vehicle

    async def inject(
        self, kind: str, *, count: int = 1, duration_s: float = 0.0, **params: float | str
    ) -> None:
        self.faults.inject(kind, count=count, duration_s=duration_s, **params)
        if kind == "disconnect":
            self.faults.take("disconnect")
            for writer in list(self._clients):
                writer.close()
            self._clients.clear()
        elif kind == "garbage":
            self.faults.take("garbage")
            self._write(bytes(self.rng.randrange(256) for _ in range(int(params.get("size", 40)))))
        elif kind == "clock_skew":
            self.clock_offset_s = float(params.get("offset_s", 3600))

    # -- wire --------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._clients.add(writer)
        if not self.faults.active("stall"):
            for line in self._setup_lines():
                writer.write(line)
        try:
            while await reader.read(1024):
                pass  # the host never talks in this protocol
        except (ConnectionError, OSError):
            pass
        finally:
            self._clients.discard(writer)
            writer.close()

    def _setup_lines(self) -> list[bytes]:
        return [
            rapiscan.encode_line("SG1", [460, 100, 5, 10, f"{self.nsigma:.0f}"]),
            rapiscan.encode_line("SG2", ["1111", 70, 2000, 0, 1, "A"]),
            rapiscan.encode_line("SG3", [70, 2000, 20, 6, self.firmware]),
        ]

    def _write(self, data: bytes) -> None:
        if self.faults.active("stall"):
            return
        for writer in list(self._clients):
            if writer.transport.is_closing() or writer.transport.get_write_buffer_size() > 65536:
                continue
            writer.write(data)

    def _send(self, line: bytes) -> None:
        if self.clock_offset_s and self.faults.params.get("clock_skew", {}).get("stamp", 1):
            # Daily-file style time stamp from the device clock (skewed if injected).
            stamp = datetime.now(UTC) + timedelta(seconds=self.clock_offset_s)
            line = line[:-2] + f",{stamp:%H-%M-%S}.{stamp.microsecond // 1000:03d}\r\n".encode()
        if self.faults.take("truncated"):
            line = line[: len(line) // 2]
        self.lines_sent += 1
        self._write(line)

    # -- behaviour ---------------------------------------------------------------------

    async def _run(self) -> None:
        while True:
            try:
                async with asyncio.timeout(self.background_interval_s):
                    vehicle = await self._vehicles.get()
            except TimeoutError:
                self._background()
                continue
            await self._occupancy(vehicle)

    def _background(self) -> None:
        gamma_type = "GH" if self.faults.active("detector") else "GB"
        gamma = [_poisson(self.rng, c) for c in self.background_cps]
        self._send(rapiscan.encode_counts(gamma_type, gamma))
        neutron = [_poisson(self.rng, c * 5) // 5 for c in self.neutron_background]
        self._send(rapiscan.encode_counts("NB", neutron))

    async def _occupancy(self, v: RpmVehicle) -> None:
        background = float(sum(self.background_cps))
        threshold = background + self.nsigma * math.sqrt(background)
        step = 0.2
        samples = max(1, round(v.duration_s / step))
        per_second = rapiscan.GAMMA_SAMPLES_PER_SECOND
        window: list[int] = []
        gamma_alarm = neutron_alarm = False
        gamma_max = neutron_max = 0
        neutron_acc = [0, 0, 0, 0]
        for i in range(samples):
            # A source peaks mid-vehicle (a smooth bump), like a container passing panels.
            shape = math.sin(math.pi * (i + 0.5) / samples) ** 2
            extra = v.gamma_cps * shape * step / 4
            counts = [_poisson(self.rng, c * step + extra) for c in self.background_cps]
            window = [*window[-(per_second - 1) :], sum(counts)]
            if len(window) == per_second:
                gamma_max = max(gamma_max, sum(window))
                gamma_alarm |= sum(window) > threshold
            elif i == samples - 1:
                gamma_max = max(gamma_max, round(sum(window) * per_second / len(window)))
            self._send(rapiscan.encode_counts("GA" if gamma_alarm else "GS", counts))
            for p in range(4):
                neutron_acc[p] += _poisson(
                    self.rng, (self.neutron_background[p] + v.neutron_cps * shape / 4) * step
                )
            if (i + 1) % per_second == 0 or i == samples - 1:
                total = sum(neutron_acc)
                neutron_max = max(neutron_max, total)
                neutron_alarm |= total >= self.neutron_alarm_level
                self._send(rapiscan.encode_counts("NA" if neutron_alarm else "NS", neutron_acc))
                neutron_acc = [0, 0, 0, 0]
            await asyncio.sleep(step / self.speedup)
        mph = v.speed_kmh / 1.609344
        sec_per_ft = 0.3048 / (v.speed_kmh / 3.6) if v.speed_kmh > 0 else 0.0
        self._send(
            rapiscan.encode_line(
                "SP", [f"{sec_per_ft:.4f}", f"{mph:06.3f}", f"{v.speed_kmh:06.2f}", 0]
            )
        )
        self.occupancy_count += 1
        gx = not self.faults.take("missing_gx")
        if gx:
            nbg = round(sum(self.neutron_background) * 1000)
            self._send(rapiscan.encode_counts("GX", [self.occupancy_count, nbg, 0, 0]))
        self.truth.append(
            OccupancyTruth(
                self.occupancy_count,
                gamma_alarm,
                neutron_alarm,
                gamma_max,
                neutron_max,
                gx,
                v.vehicle,
            )
        )
        v.done.set()
        self._background()
