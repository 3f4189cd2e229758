"""X-ray scans on crossings: which crossing a scan belongs to, and the alarm rules. Pure.

Building blocks of the fusion (:mod:`edge.fusion`, with :mod:`edge.cargo.xray_link`):
a scan carries the scanner's own start and finish times, so it is matched to the crossing
whose time in the lane overlaps it most, the scan's window widened by a clock tolerance
(both clocks NTP-synchronised). The alarm rule compares the scanner's own plate and
container fields with what the lane read.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from drivers.readings import XrayScan
from edge.cargo.iso6346 import normalise as normalise_container
from edge.events import Alarm
from edge.recognize.grammar import fold, look_alike

_CODE_SEPARATORS = re.compile(r"[,;/|]+|\s{2,}")


@dataclass(frozen=True, slots=True)
class CrossingWindow:
    """A crossing's time in the lane (``end`` None: still there) and the plate texts a
    scanner's plate is checked against (:func:`scanner_comparable`)."""

    crossing_id: str
    start: datetime
    end: datetime | None
    plates: tuple[str, ...] = ()


def overlap_s(
    scan: XrayScan,
    window: CrossingWindow,
    *,
    now: datetime,
    clock_tolerance_s: float,
    after_s: float | None = None,
) -> float:
    """Seconds the scan's widened window shares with the crossing's (0: none). ``after_s``
    widens the end by another amount than the start."""
    tolerance = timedelta(seconds=clock_tolerance_s)
    after = tolerance if after_s is None else timedelta(seconds=after_s)
    first = max(scan.started - tolerance, window.start)
    last = min(scan.finished + after, window.end or now)
    return max(0.0, (last - first).total_seconds())


def match_scan(
    scan: XrayScan,
    windows: Sequence[CrossingWindow],
    *,
    now: datetime,
    clock_tolerance_s: float = 5.0,
    lead_s: float = 0.0,
) -> str | None:
    """The id of the crossing the scan belongs to, or None when none or several fit.

    The largest overlap of the scan's own window wins, that window reaching ``lead_s``
    earlier (a clock offset estimated from delayed samples puts a scan late, never early:
    :mod:`edge.cargo.xray_link`); the window widened by the tolerance both ways only decides
    among crossings that one does not overlap (widened, it may span a whole neighbouring
    crossing: a vehicle is in the lane for seconds). An equal overlap is settled by the
    scanner's plate matching one crossing's plates; anything still tied is not guessed.
    """
    scored = [
        (
            (
                overlap_s(scan, w, now=now, clock_tolerance_s=lead_s, after_s=0.0),
                overlap_s(scan, w, now=now, clock_tolerance_s=clock_tolerance_s),
            ),
            w,
        )
        for w in windows
    ]
    scored = [(s, w) for s, w in scored if s[1] > 0]
    if not scored:
        return None
    best = max(s for s, _ in scored)
    tied = [w for s, w in scored if s == best]
    if len(tied) > 1 and scan.scanner_plate:
        plate = fold(scan.scanner_plate)
        tied = [w for w in tied if plate in {fold(p) for p in w.plates}]
    return tied[0].crossing_id if len(tied) == 1 else None


def container_codes(text: str | None) -> list[str]:
    """The container codes in a scanner's field (one, or several separated by , ; / |)."""
    if not text:
        return []
    parts = _CODE_SEPARATORS.split(text.strip())
    codes = [normalise_container(p) for p in parts if p.strip()]
    if len(codes) == 1 and len(codes[0]) == 22:  # two codes run together
        codes = [codes[0][:11], codes[0][11:]]
    return [c for c in codes if c]


# The classes whose rear plate is the same registration as the front one.
_RIGID = frozenset({"light_vehicle", "heavy_vehicle"})


def scanner_comparable(
    by_position: Mapping[str, Iterable[str]], vehicle_class: str | None
) -> tuple[str, ...]:
    """The lane's plate texts a portal's plate field is checked against: the front plate's,
    and the rear plate's of a rigid vehicle.

    A portal's plate camera reads the tractor (it faces the oncoming vehicle). The rear plate
    of an articulated vehicle, or of one whose class is not known, may be its trailer's:
    another registration, so no evidence of a wrong scanner plate. A trailer plate always is.
    """
    texts = set(by_position.get("front", ()))
    if vehicle_class in _RIGID:
        texts.update(by_position.get("rear", ()))
    return tuple(sorted(texts))


def xray_mismatch_alarm(
    scan: XrayScan, *, plates: Sequence[str], containers: Sequence[str]
) -> Alarm | None:
    """``cargo.xray_mismatch`` (warning) when the scanner's plate or containers disagree.

    ``plates`` are the lane's reads the scanner's plate can be checked against
    (:func:`scanner_comparable`). The plate disagrees when there are some and none agrees
    with the scanner's (:func:`plates_agree`). The containers disagree when both sides have
    codes and they share none: reading one of two boxes is no mismatch. A field the scanner
    left empty is no evidence.
    """
    problems = []
    if scan.scanner_plate and plates:
        theirs = fold(scan.scanner_plate)
        if theirs and not any(plates_agree(theirs, fold(p)) for p in plates):
            problems.append(f"plate {theirs} (lane read {', '.join(plates)})")
    theirs_codes = container_codes(scan.scanner_container)
    ours_codes = {normalise_container(c) for c in containers}
    if theirs_codes and ours_codes and not ours_codes.intersection(theirs_codes):
        problems.append(
            f"container {', '.join(theirs_codes)} (lane read {', '.join(sorted(ours_codes))})"
        )
    if not problems:
        return None
    return Alarm(
        code="cargo.xray_mismatch",
        severity="warning",
        message=f"X-ray scan {scan.scan_id} has " + "; ".join(problems),
        device=scan.device_id,
    )


# The shortest text a plate without its region or province prefix can be (CN 沪A78258 read as
# 78258, KZ 925MTB17 as 925MTB).
_MIN_PARTIAL = 5


def plates_agree(theirs: str, ours: str) -> bool:
    """Whether two folded plate texts may be the same plate read by two readers.

    Equal, but for at most one glyph read as its look-alike by one of the readers (``B``/``8``,
    ``O``/``0``); or so, once one less a prefix or suffix, at least five glyphs long (a region
    code or province character one reader did not read: no evidence either way; ``01K5790``
    for ``01K579OO``). Any other difference is a different plate (``222BBB02`` and
    ``222BBB09`` are two regions' registrations). An alarm for every reader's look-alike slip
    would teach operators to ignore the alarm.
    """
    if len(theirs) == len(ours):
        return _one_slip_at_most(theirs, ours)
    short, long = sorted((theirs, ours), key=len)
    return len(short) >= _MIN_PARTIAL and (
        _one_slip_at_most(short, long[: len(short)])
        or _one_slip_at_most(short, long[len(long) - len(short) :])
    )


def _one_slip_at_most(a: str, b: str) -> bool:
    differ = [(x, y) for x, y in zip(a, b, strict=True) if x != y]
    return not differ or (len(differ) == 1 and look_alike(*differ[0]))


def unchecked_note(scan: XrayScan, plates: Sequence[str]) -> str | None:
    """The coverage note of a scan whose plate field could not be checked: the lane read
    none of the plates it is checked against (:func:`scanner_comparable`)."""
    if not scan.scanner_plate or plates:
        return None
    return f"X-ray plate {fold(scan.scanner_plate)} not checked: no tractor plate read"


def unscanned_note(
    *, lane_type: str, xray_devices: Sequence[str], scanned: bool, vehicle_class: str | None
) -> str | None:
    """The coverage note of a truck that left a lane with an X-ray scanner without a scan."""
    if scanned or not xray_devices or lane_type != "truck" or vehicle_class == "light_vehicle":
        return None
    return f"unscanned: no X-ray scan from {', '.join(xray_devices)}"


def xray_field(scan: XrayScan) -> dict[str, Any]:
    """The crossing's ``xray`` object: ``{scan_id, started, finished, files, scanner_*}``."""
    out: dict[str, Any] = {
        "device": scan.device_id,
        "scan_id": scan.scan_id,
        "started": scan.started,
        "finished": scan.finished,
        "files": [
            {
                k: v
                for k, v in (("name", f.name), ("size", f.size), ("sha256", f.sha256))
                if v is not None
            }
            for f in scan.files
        ],
    }
    if scan.scanner_plate:
        out["scanner_plate"] = scan.scanner_plate
    if scan.scanner_container:
        out["scanner_container"] = scan.scanner_container
    return out
