"""X-ray scans joined to crossings: the scanner's clock, ended crossings, scans sent alone. Pure.

The correlator (:mod:`edge.fusion.correlator`) owns one :class:`ScanLink`; it does no I/O and reads
no clock: every call carries the agent's receive time as UTC (``wall(now)``).

**Whose clock.** A scan is matched by the scanner's own start and finish times, the only
ones that say when the truck was in the portal (the receive time says when the export
finished). The scanner's clock is put on the agent's by an offset estimated from each scan:

    sample = finished (scanner clock) - received (agent clock) = offset - delay

where ``delay >= 0`` is the time from the scan's end to the agent seeing it (the export, the
share, the driver's settle time; about zero for ``xray.http``). Every sample is a lower bound
of the offset; the best is the largest of the last ``samples`` ones, the least delayed
(NTP's minimum-delay filter, RFC 5905 section 10), short of the truth by the smallest delay
seen. It is applied only when it says more than the match's tolerance covers, and only where
it cannot be delay:

- a positive best sample proves the scanner ahead by at least that much: applied at once;
- a negative one may be a scanner behind or one slow export (a late scan is slow by
  definition): applied once ``min_samples`` scans all came that late, which a pipeline
  whose delay varies does not do;
- within ``tolerance_s`` of zero it is not applied (the clocks agree as far as matching can
  tell, and applying it would only move scans by the export's delay).

A sample further than ``max_offset_s`` from zero (a scan re-reported from the archive after a
restart, a scanner clock set to another day) is refused and counted. Scanner time minus the
applied offset is agent time; the match then widens the scan by ``clock_tolerance_s``
(:func:`edge.cargo.xray.match_scan`). An export pipeline that is *always* later than the
tolerance (a share synchronised every minute) looks like a scanner behind by that much: there
``xray_clock_offset: false`` turns the estimate off and the clocks are trusted as
NTP-synchronised.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Literal

from drivers.readings import XrayScan
from edge.cargo.xray import CrossingWindow, xray_field, xray_mismatch_alarm
from edge.events import Alarm, Xray, XrayScanEvent, agent_version, utc_now, uuid7

ENDED_LIMIT = 32  # ended crossings a late scan may still be linked to
PUBLISHED_LIMIT = 256  # scans waiting to go out on their own (the host drains them at once)

ScanReason = Literal["late", "unmatched", "second_scan"]


class ClockOffset:
    """The scanner's clock minus the agent's, in seconds, from (finished, received) pairs."""

    def __init__(
        self,
        *,
        samples: int = 16,
        max_offset_s: float = 600.0,
        min_samples: int = 3,
        tolerance_s: float = 5.0,
    ) -> None:
        self._samples: deque[float] = deque(maxlen=max(1, samples))
        self.max_offset_s = max_offset_s
        self.min_samples = max(1, min(min_samples, samples))
        self.tolerance_s = tolerance_s
        self.refused = 0

    def add(self, finished: datetime, received: datetime) -> bool:
        """Take one sample; False when it is refused (further than ``max_offset_s``)."""
        sample = (finished - received).total_seconds()
        if abs(sample) > self.max_offset_s:
            self.refused += 1
            return False
        self._samples.append(sample)
        return True

    @property
    def best_s(self) -> float | None:
        """The least delayed recent sample (None: none kept)."""
        return round(max(self._samples), 3) if self._samples else None

    @property
    def offset_s(self) -> float:
        """The offset applied to the scanner's times (0: taken as agreeing)."""
        best = self.best_s
        if best is None or abs(best) <= self.tolerance_s:
            return 0.0
        if best > 0 or len(self._samples) >= self.min_samples:
            return best
        return 0.0


@dataclass(frozen=True, slots=True)
class LinkedScan:
    """A scan that goes out on its own topic (``lane.xray-scan/1``), not on a crossing."""

    scan: XrayScan
    reason: ScanReason
    crossing_id: str | None
    alarms: tuple[Alarm, ...] = ()
    clock_offset_s: float | None = None


@dataclass(frozen=True, slots=True)
class EndedCrossing:
    window: CrossingWindow
    containers: tuple[str, ...] = ()


class ScanLink:
    """Per scanner clock offsets, the recently ended crossings, and the scans sent alone."""

    def __init__(
        self,
        *,
        tolerance_s: float = 5.0,
        max_offset_s: float = 600.0,
        estimate: bool = True,
        samples: int = 16,
        ended_limit: int = ENDED_LIMIT,
    ) -> None:
        self._samples = samples
        self._max_offset_s = max_offset_s
        self._tolerance_s = tolerance_s
        self._estimate = estimate
        self.offsets: dict[str, ClockOffset] = {}
        self.ended: deque[EndedCrossing] = deque(maxlen=ended_limit)
        self._out: deque[LinkedScan] = deque(maxlen=PUBLISHED_LIMIT)
        self.linked = 0  # scans attached to a crossing before its end
        self.sent_alone: dict[str, int] = {"late": 0, "unmatched": 0, "second_scan": 0}
        self.dropped = 0  # sent-alone scans pushed out of a full queue (host not draining)
        # Scans received long after they finished that fit no crossing: the drop folder's
        # archive re-read after a restart (handled by the previous run), not sent again.
        self.stale = 0
        self._fresh = True

    def observe(self, scan: XrayScan, received: datetime) -> float:
        """Learn from one scan's times; the offset now applied to that scanner's times."""
        clock = self.offsets.get(scan.device_id)
        if clock is None:
            clock = ClockOffset(
                samples=self._samples,
                max_offset_s=self._max_offset_s,
                tolerance_s=self._tolerance_s,
            )
            self.offsets[scan.device_id] = clock
        self._fresh = clock.add(scan.finished, received)
        return clock.offset_s if self._estimate else 0.0

    @property
    def last_was_stale(self) -> bool:
        """Whether the last observed scan was received over ``max_offset_s`` after its end."""
        return not self._fresh

    @staticmethod
    def in_agent_time(scan: XrayScan, offset_s: float | None) -> XrayScan:
        """The scan with its start and finish moved onto the agent's clock."""
        if not offset_s:
            return scan
        shift = timedelta(seconds=offset_s)
        return replace(scan, started=scan.started - shift, finished=scan.finished - shift)

    def crossing_ended(self, window: CrossingWindow, containers: Iterable[str] = ()) -> None:
        self.ended.append(EndedCrossing(window, tuple(containers)))

    def ended_windows(self) -> list[CrossingWindow]:
        return [e.window for e in self.ended]

    def send_alone(
        self,
        scan: XrayScan,
        reason: ScanReason,
        crossing_id: str | None,
        *,
        offset_s: float | None,
        plates: Sequence[str] = (),
        containers: Sequence[str] = (),
    ) -> LinkedScan:
        """Queue a scan for its own topic, with the mismatch alarm against its crossing."""
        if crossing_id is not None and not plates and not containers:
            for ended in self.ended:
                if ended.window.crossing_id == crossing_id:
                    plates, containers = ended.window.plates, ended.containers
        alarm = (
            xray_mismatch_alarm(scan, plates=plates, containers=containers)
            if crossing_id is not None
            else None
        )
        linked = LinkedScan(scan, reason, crossing_id, (alarm,) if alarm else (), offset_s)
        if len(self._out) == self._out.maxlen:
            self.dropped += 1
        self._out.append(linked)
        self.sent_alone[reason] += 1
        return linked

    def take(self) -> list[LinkedScan]:
        """The scans to send alone since the last call (the host sends each once)."""
        out = list(self._out)
        self._out.clear()
        return out


def scan_event(linked: LinkedScan, *, checkpoint: str, lane: str, boot_seq: int) -> XrayScanEvent:
    """The ``lane.xray-scan/1`` message of a scan sent alone (event_id minted here, once)."""
    return XrayScanEvent(
        event_id=str(uuid7()),
        checkpoint=checkpoint,
        lane=lane,
        crossing_id=linked.crossing_id,
        reason=linked.reason,
        xray=xray_record(linked.scan, linked.clock_offset_s),
        alarms=list(linked.alarms),
        boot_seq=boot_seq,
        produced=utc_now(),
        agent_version=agent_version(),
    )


def xray_record(scan: XrayScan, offset_s: float | None) -> Xray:
    """The crossing's ``xray`` object (wire model), with the clock offset used to match it."""
    return Xray.model_validate({**xray_field(scan), "clock_offset_s": offset_s})
