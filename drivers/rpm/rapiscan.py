"""Rapiscan/TSA RPM line protocol (sans-I/O), devices.md §2.1-2.3.

Lines are CSV terminated by CRLF (LF tolerated); field 0 is the type. Count fields are
6-digit zero padded; ``***``/``*****`` mean missing. Daily-file timestamps after the four
fields are accepted and ignored. :class:`OccupancyBuilder` turns the line stream into
occupancies the way OSH's MessageHandler does, plus sigma against the last background.
"""

from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass, field
from datetime import datetime

from drivers.codec import CodecFault, FeedResult, RawHistory

MAX_LINE = 60
COUNT_TYPES = {"GB", "GH", "GL", "NB", "NH", "GS", "GA", "NS", "NA"}
SETUP_TYPES = {"SG1", "SG2", "SG3", "SN1", "SN2"}
OTHER_TYPES = {"GX", "SP", "TT", "TC"}
IGNORED_TYPES = {"RW", "AB", "AR", "AM", "AA", "FP", "TE", "NNB", "IJ"}
FAULT_TYPES = {
    "GH": "gamma_high_background",
    "GL": "gamma_low_background",
    "NH": "neutron_high_background",
}
GAMMA_SAMPLES_PER_SECOND = 5  # GS/GA lines are counts per 200 ms


@dataclass(frozen=True, slots=True)
class RpmLine:
    type: str
    fields: tuple[str, ...]
    raw: bytes

    def counts(self) -> tuple[int | None, ...]:
        return tuple(int(f) if f.isdigit() else None for f in self.fields[:4])

    def total(self) -> int:
        return sum(c for c in self.counts() if c is not None)


def encode_line(line_type: str, values: list[int | float | str]) -> bytes:
    parts = [line_type]
    for v in values:
        parts.append(f"{v:06d}" if isinstance(v, int) else str(v))
    return (",".join(parts) + "\r\n").encode()


def encode_counts(line_type: str, counts: tuple[int, ...] | list[int]) -> bytes:
    return encode_line(line_type, [min(int(c), 999_999) for c in counts])


def decode_line(raw: bytes) -> RpmLine | CodecFault | None:
    """One line (terminator stripped). None for blank lines and ignored tags."""
    try:
        text = raw.decode("ascii").strip()
    except UnicodeDecodeError:
        return CodecFault("garbage", "non-ASCII line", raw)
    if not text:
        return None
    parts = [p.strip() for p in text.split(",")]
    kind = parts[0]
    if kind in IGNORED_TYPES:
        return None
    if kind not in COUNT_TYPES | SETUP_TYPES | OTHER_TYPES:
        return CodecFault("unknown", f"unknown line type {kind[:8]!r}", raw)
    fields = tuple(parts[1:])
    if kind in COUNT_TYPES or kind in {"GX", "TT", "TC"}:
        if len(fields) < 4:
            return CodecFault("framing", f"{kind} with {len(fields)} fields", raw)
        values = fields[:4]
        for value in values:
            if not (value.isdigit() or set(value) == {"*"}):
                return CodecFault("framing", f"bad count {value[:10]!r} in {kind}", raw)
    if kind == "SP" and len(fields) < 4:
        return CodecFault("framing", f"SP with {len(fields)} fields", raw)
    return RpmLine(kind, fields, raw)


class RapiscanParser:
    """Splits on LF; lines over 60 characters and non-ASCII lines are faults."""

    def __init__(self, *, history: int = 32) -> None:
        self.history = RawHistory(history)
        self._buf = bytearray()
        self._discarding = False
        # Lines that are neither data nor faults, counted so that a peer sending only
        # these can be told apart from a silent one (health says which).
        self.blank_lines = 0
        self.ignored_lines = 0

    def feed(self, data: bytes) -> list[RpmLine | CodecFault]:
        self._buf.extend(data)
        out: FeedResult[RpmLine] = FeedResult()
        buf = self._buf
        while True:
            if buf[:1] in (b"\n", b"\r"):
                # A run of blank lines (a flood of CR/LF) is skipped in one C-level step,
                # not one Python iteration per line.
                rest = len(buf.lstrip(b"\r\n"))
                run = len(buf) - rest
                if self._discarding and buf.find(b"\n", 0, run) >= 0:
                    self._discarding = False
                self.blank_lines += buf.count(b"\n", 0, run)
                del buf[:run]
                continue
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > MAX_LINE + 2:
                    raw = bytes(buf)
                    buf.clear()
                    self.history.add(raw)
                    if not self._discarding:
                        out.fault("framing", "line too long", raw[:MAX_LINE])
                    self._discarding = True
                break
            raw = bytes(buf[:nl])
            del buf[: nl + 1]
            self.history.add(raw)
            if self._discarding:
                self._discarding = False
                continue
            raw = raw.rstrip(b"\r")
            if len(raw) > MAX_LINE:
                out.fault("framing", "line too long", raw[:MAX_LINE])
                continue
            decoded = decode_line(raw)
            if decoded is None:
                self.ignored_lines += 1
            else:
                out.add(decoded)
        return out.result()


@dataclass(slots=True)
class OccupancyResult:
    occupancy_no: int | None
    start: datetime
    end: datetime
    gamma_max_cps: int
    neutron_max: int
    gamma_background_cps: float | None
    neutron_background: float | None
    sigma: float | None
    gamma_alarm: bool
    neutron_alarm: bool
    samples: int
    complete: bool
    speed_kmh: float | None


@dataclass(slots=True)
class _Open:
    start: datetime
    gamma: list[int] = field(default_factory=list)
    neutron_max: int = 0
    gamma_alarm: bool = False
    neutron_alarm: bool = False
    speed_kmh: float | None = None
    last_mono: float = 0.0


class OccupancyBuilder:
    """Builds occupancies from decoded lines (pure state machine; times are passed in).

    The first GS/GA/NS/NA line opens an occupancy, GX closes it. Without a GX for
    ``timeout_s`` after the last scan line, :meth:`tick` closes it as incomplete.
    A GX with no scan lines (seen in the field) yields nothing instead of crashing.
    """

    def __init__(self, *, timeout_s: float = 10.0) -> None:
        self.timeout_s = timeout_s
        self.gamma_background: float | None = None
        self.neutron_background: float | None = None
        self.nsigma: float = 6.0
        self._open: _Open | None = None

    @property
    def occupied(self) -> bool:
        return self._open is not None

    def feed(self, line: RpmLine, now: datetime, mono: float) -> OccupancyResult | None:
        kind = line.type
        if kind == "GB":
            counts = [c for c in line.counts() if c is not None]
            if counts:
                self.gamma_background = float(sum(counts))
            return None
        if kind == "NB":
            counts = [c for c in line.counts() if c is not None]
            if counts:
                self.neutron_background = float(sum(counts))
            return None
        if kind == "SG1" and len(line.fields) >= 5:
            with contextlib.suppress(ValueError):
                self.nsigma = float(line.fields[4])
            return None
        if kind in {"GS", "GA", "NS", "NA"}:
            occ = self._open or _Open(start=now)
            self._open = occ
            occ.last_mono = mono
            if kind in {"GS", "GA"}:
                occ.gamma.append(line.total())
                occ.gamma_alarm |= kind == "GA"
            else:
                occ.neutron_max = max(occ.neutron_max, line.total())
                occ.neutron_alarm |= kind == "NA"
            return None
        if kind == "SP" and self._open is not None:
            with contextlib.suppress(ValueError, IndexError):
                self._open.speed_kmh = float(line.fields[2])
            return None
        if kind == "GX":
            gx_counts = line.counts()  # a GX line always has four (decode_line)
            number = gx_counts[0]
            if gx_counts[1] is not None:
                self.neutron_background = gx_counts[1] / 1000.0
            return self._close(now, number, complete=True)
        return None

    def tick(self, now: datetime, mono: float) -> OccupancyResult | None:
        if self._open is not None and mono - self._open.last_mono > self.timeout_s:
            return self._close(now, None, complete=False)
        return None

    def _close(
        self, now: datetime, number: int | None, *, complete: bool
    ) -> OccupancyResult | None:
        occ, self._open = self._open, None
        if occ is None:
            return None
        window = GAMMA_SAMPLES_PER_SECOND
        gamma = occ.gamma
        if len(gamma) >= window:
            gamma_max = max(sum(gamma[i : i + window]) for i in range(len(gamma) - window + 1))
        else:
            # A short occupancy: scale the partial window up to counts per second.
            gamma_max = round(sum(gamma) * window / len(gamma)) if gamma else 0
        background = self.gamma_background
        sigma = None
        if background:
            sigma = (gamma_max - background) / math.sqrt(background)
        return OccupancyResult(
            occupancy_no=number,
            start=occ.start,
            end=now,
            gamma_max_cps=gamma_max,
            neutron_max=occ.neutron_max,
            gamma_background_cps=background,
            neutron_background=self.neutron_background,
            sigma=sigma,
            gamma_alarm=occ.gamma_alarm,
            neutron_alarm=occ.neutron_alarm,
            samples=len(gamma),
            complete=complete,
            speed_kmh=occ.speed_kmh,
        )


def gamma_alarm(window_sum: float, background: float, nsigma: float) -> bool:
    """The alarm rule: a 1 s gamma sum above B + n*sqrt(B)."""
    return window_sum > background + nsigma * math.sqrt(background)
