"""Rapiscan-style RPM driver: a TCP client reading CSV lines and building occupancies.

Background lines arrive every 5 s when the lane is empty, so a socket that stays silent
longer than the device timeout (set it above 5 s in production) is a fault: reconnect.
Only count lines (and occupancies) are useful readings: a peer that sends blank lines,
ignored line types or garbage for the device timeout is DEGRADED, for twice that DOWN.
Counts outside the configured plausibility bounds are faults, never fed to an occupancy.
"""

from __future__ import annotations

import math
import time
from typing import Any

from pydantic import Field

from drivers.base import Driver
from drivers.codec import CodecFault
from drivers.options import RadiationBounds
from drivers.readings import RpmCounts, RpmOccupancy, RpmStatus, utc_now
from drivers.rpm import rapiscan
from drivers.transport import TcpLink


class RapiscanOptions(RadiationBounds):
    host: str
    port: int = Field(1601, ge=1, le=65535)
    occupancy_timeout_s: float = Field(
        10.0, gt=0, description="Close an occupancy with no GX after this long (LLNL: 10 s)."
    )
    emit_counts: bool = Field(True, description="Also emit every count line as RpmCounts.")


class RapiscanDriver(Driver):
    kind = "rpm.rapiscan"
    options: RapiscanOptions

    def __init__(self, device_id: str, options: RapiscanOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.link = TcpLink(options.host, options.port)
        self.parser = rapiscan.RapiscanParser()
        self.builder = rapiscan.OccupancyBuilder(timeout_s=options.occupancy_timeout_s)
        self.setup: dict[str, tuple[str, ...]] = {}
        self.tamper = False

    @property
    def stale_after_s(self) -> float:
        return self.timeout_s

    async def _connect(self) -> None:
        self.parser = rapiscan.RapiscanParser()
        await self.link.open(self.timeout_s)

    async def _disconnect(self) -> None:
        await self.link.close()

    async def _session(self) -> None:
        while True:
            try:
                data = await self.link.read(self.timeout_s)
            finally:
                self._tick()
            started = time.perf_counter()
            for item in self.parser.feed(data):
                if isinstance(item, CodecFault):
                    self._fault(item.kind, item.message, count=item.count)
                else:
                    self._line(item)
            self._check_useful()
            await self._paced(started, len(data))

    def _stale_detail(self) -> str:
        p = self.parser
        return f"{p.blank_lines} blank and {p.ignored_lines} ignored lines this session"

    def _implausible(self, line: rapiscan.RpmLine) -> str | None:
        kind, o = line.type, self.options
        if kind in {"GB", "GH", "GL", "GS", "GA"}:
            per_second = rapiscan.GAMMA_SAMPLES_PER_SECOND if kind in {"GS", "GA"} else 1
            return o.gamma_problem(line.total() * per_second, f"{kind} gamma")
        if kind in {"NB", "NH", "NS", "NA"}:
            return o.neutron_problem(line.total(), f"{kind} neutron")
        return None

    def _tick(self) -> None:
        result = self.builder.tick(utc_now(), time.monotonic())
        if result is not None:
            self._fault("missing_gx", "occupancy closed by timeout without GX")
            self._emit_occupancy(result)

    def _line(self, line: rapiscan.RpmLine) -> None:
        now, mono = utc_now(), time.monotonic()
        self._alive()
        kind = line.type
        if kind in rapiscan.COUNT_TYPES:
            problem = self._implausible(line)
            if problem is not None:
                self._fault("implausible", problem)
                return
            self._useful()
        if kind in rapiscan.SETUP_TYPES:
            self.setup[kind] = line.fields
        elif kind in {"TT", "TC"}:
            tamper = kind == "TT"
            if tamper:
                self._fault("tamper", "tamper switch set")
            if tamper != self.tamper:
                self.tamper = tamper
                self._emit(
                    RpmStatus(device_id=self.device_id, tamper=tamper, detail=kind), useful=False
                )
        elif kind in rapiscan.FAULT_TYPES:
            self._fault("detector", rapiscan.FAULT_TYPES[kind])
        if kind == "GX" and not self.builder.occupied:
            self._fault("empty_occupancy", "GX without scan lines")
        result = self.builder.feed(line, now, mono)
        if kind in rapiscan.COUNT_TYPES and self.options.emit_counts:
            self._emit(
                RpmCounts(
                    device_id=self.device_id,
                    captured_at=now,
                    monotonic=mono,
                    line_type=kind,
                    counts=line.counts(),
                    alarm=kind in {"GA", "NA"},
                    fault=rapiscan.FAULT_TYPES.get(kind),
                )
            )
        if result is not None:
            self._emit_occupancy(result)

    def _emit_occupancy(self, r: rapiscan.OccupancyResult) -> None:
        # Count lines are bounded above, so an occupancy's numbers are too; a sigma that is
        # still not finite (a background of 0 would be refused before) is dropped, loudly.
        sigma = r.sigma
        if sigma is not None and not math.isfinite(sigma):
            self._fault("implausible", f"occupancy sigma {sigma}")
            sigma = None
        self._emit(
            RpmOccupancy(
                device_id=self.device_id,
                captured_at=r.end,
                occupancy_no=r.occupancy_no,
                start=r.start,
                end=r.end,
                gamma_max_cps=r.gamma_max_cps,
                neutron_max=r.neutron_max,
                gamma_background_cps=r.gamma_background_cps,
                neutron_background=r.neutron_background,
                sigma=sigma,
                gamma_alarm=r.gamma_alarm,
                neutron_alarm=r.neutron_alarm,
                samples=r.samples,
                complete=r.complete,
                speed_kmh=r.speed_kmh,
            )
        )

    def _raw_frames(self) -> tuple[bytes, ...]:
        return self.parser.history.frames()

    async def _identity(self) -> dict[str, Any]:
        identity: dict[str, Any] = {k: ",".join(v) for k, v in self.setup.items()}
        identity["nsigma"] = self.builder.nsigma
        identity["gamma_background_cps"] = self.builder.gamma_background
        return identity
