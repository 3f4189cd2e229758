"""The life cycle of the lane's crossings: presence, opening, confirming, updating and ending
them, the ticks that end them, and the recognition hold. Pure: no I/O, no clock, no threads.

Life cycle of one vehicle: ``new`` when presence starts, ``update`` when a first stable
weight, an occupancy result, a plate or a thermal alarm arrives, ``end`` once the lane has
been clear for ``settle_s`` (late RPM occupancies and plate reads still attach), or after
``max_crossing_s`` (a vehicle parked on the weighbridge), or at shutdown. Every ``new`` gets
an ``end`` with an ``end_reason``. While a frame captured before the lane went clear is still
in plate recognition, that ``end`` waits up to ``recognition_wait_s`` more, on every input and
tick alike, so the frame's plate joins its own vehicle instead of being dropped or given to the
next one. In a truck lane with an X-ray scanner, a truck's ``end`` likewise waits up to
``xray_wait_s`` for its scan, parked among the leaving vehicles so that the next one can come
in (:mod:`edge.cargo.xray_link`).

Presence comes from the first *available* source in ``presence_order`` (lane I/O loops and
light curtain, then weight, then RPM occupancy, then plate reads), so a dead loop degrades to
weight instead of losing vehicles.

:class:`Lifecycle` holds all of the lane's state; :class:`edge.fusion.correlator.Correlator`
adds the inputs that feed it.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterable
from datetime import datetime

from edge.cargo.xray import CrossingWindow
from edge.cargo.xray_link import ScanLink
from edge.crossing import CrossingRecord
from edge.events import EventType, PlatePosition, SensorState
from edge.fusion.model import Device, Emission, NeighbourSighting, OpenCrossing, PlateObservation
from edge.fusion.plates import vote
from edge.fusion.records import current_class, scanner_plates, snapshot
from edge.fusion.settings import FusionSettings

ATTEMPT_LIMIT = 64  # read attempts kept for a vehicle whose presence has not begun yet

PRESENCE_CLASSES = {"io": "laneio", "weight": "weighbridge", "rpm": "rpm", "camera": "anpr"}


class Lifecycle:
    """The vehicles in and leaving the lane, and when each crossing begins and ends.

    ``wall`` maps the monotonic ``now`` to UTC for the event's start and end: the agent's
    receive time, never a device's clock (devices drift and skew).
    """

    def __init__(
        self,
        devices: Iterable[Device],
        settings: FusionSettings | None = None,
        *,
        wall: Callable[[float], datetime],
    ) -> None:
        self.devices = {d.id: d for d in devices}
        self.settings = settings or FusionSettings()
        self.wall = wall
        self.health: dict[str, tuple[SensorState, str | None]] = {
            d: (SensorState.UP, None) for d in self.devices
        }
        self.current: OpenCrossing | None = None
        # Vehicles that left the lane and wait out settle_s for late results (an RPM
        # occupancy, a plate still in recognition) while the next vehicle is already in.
        self.closing: list[OpenCrossing] = []
        self._last_seen: dict[str, float] = {}
        self._recent_plates: deque[tuple[float, PlateObservation]] = deque(maxlen=64)
        self._previous_plates: tuple[float, set[str]] = (float("-inf"), set())
        self._ended_at = float("-inf")
        self._ended_clear = float("-inf")  # when the lane of the last vehicle ended went clear
        self._axle_total: int | None = None
        # The axle counter when the last vehicle cleared the lane: pulses since then are the
        # next one's (an axle detector may sit before the entry loop, and the counter and the
        # loops are read in separate requests, so either may show a change first).
        self._axle_mark: int | None = None
        # Plates the neighbouring lanes reported: crossing id -> sighting (bounded).
        self._neighbours: dict[str, NeighbourSighting] = {}
        # Frames in plate recognition: (camera, capture time) -> when their read began.
        self._in_recognition: dict[tuple[str, float], float] = {}
        self.xray = ScanLink(
            tolerance_s=self.settings.xray_clock_tolerance_s,
            max_offset_s=self.settings.xray_max_offset_s,
            estimate=self.settings.xray_clock_offset,
        )
        self._scanners = [d for d, dev in self.devices.items() if dev.device_class == "xray"]
        # Frames read before any presence began: (capture time, camera), for the next vehicle.
        self._early_attempts: deque[tuple[float, str]] = deque(maxlen=ATTEMPT_LIMIT)
        # Each thermal region's empty-lane temperature: (device, region) -> (degC, when).
        self._empty_lane_c: dict[tuple[str, int], tuple[float, float]] = {}

    def tick(self, now: float) -> list[Emission]:
        """Time passes: close crossings whose lane has been clear long enough.

        A frame still in recognition that may show a vehicle (:meth:`_may_show`) holds that
        vehicle's end (up to ``recognition_wait_s`` more), so its plate is not lost or given to
        the next vehicle. Every input ends in this tick, so the hold applies whatever the input
        rate (a 10 Hz weighbridge never lets the agent's queue idle).
        """
        out: list[Emission] = []
        reading = self._frames_in_recognition(now)
        for opened in list(self.closing):
            held = any(self._may_show(camera, captured, opened) for camera, captured in reading)
            waited = now - (opened.clear_since or now)
            limit = self.settings.settle_s + (self.settings.recognition_wait_s if held else 0)
            if self._awaits_scan(opened):
                limit = max(limit, self.settings.settle_s + self.settings.xray_wait_s)
            if waited >= limit:
                out += self._finish(opened, opened.leaving_reason, now)
        current = self.current
        if current is None:
            return out
        out += self._confirm(current, now)
        if (
            current.clear_since is not None
            and now - current.clear_since
            < self.settings.settle_s + self.settings.recognition_wait_s
            and any(self._may_show(camera, captured, current) for camera, captured in reading)
        ):
            return out
        source = self._presence_source()
        if source == "camera":
            last = self._last_seen.get("camera", current.started)
            if now - last >= self.settings.camera_gap_s:
                return out + self._leave(current, "exit", now)
        if current.clear_since is not None and now - current.clear_since >= self.settings.settle_s:
            return out + self._leave(current, self._clear_reason(current, source), now)
        if now - current.started >= self.settings.max_crossing_s:
            return out + self._finish(current, "timeout", now)
        return out

    def shutdown(self, now: float) -> list[Emission]:
        out: list[Emission] = []
        for opened in list(self.closing):
            out += self._finish(opened, opened.leaving_reason, now)
        if self.current is not None:
            out += self._finish(self.current, "shutdown", now)
        return out

    def _frames_in_recognition(self, now: float) -> list[tuple[str, float]]:
        """(camera, capture time) of the frames still in recognition.

        A read in flight longer than an ``end`` can wait (``settle_s + recognition_wait_s``) is
        given up: its recogniser is stuck or its done was lost, and it holds nothing more.
        """
        give_up = self.settings.settle_s + self.settings.recognition_wait_s
        for key, began in list(self._in_recognition.items()):
            if now - began > give_up:
                del self._in_recognition[key]
        return list(self._in_recognition)

    def _may_show(self, camera: str, captured: float, opened: OpenCrossing) -> bool:
        """Whether a frame ``camera`` captured at ``captured`` may show this vehicle.

        A rear or trailer camera sees a vehicle leaving: its frames show it from its start
        until the next vehicle's, also after its lane went clear (the frames it reads best).
        Any other camera's frame may show it if captured before its lane went clear.
        """
        device = self.devices.get(camera)
        if device is not None and device.role in ("rear", "trailer"):
            if captured < opened.started:
                return False
            vehicles = [*self.closing, *([self.current] if self.current is not None else [])]
            later = [v.started for v in vehicles if v.started > opened.started]
            return not later or captured < min(later)
        return opened.clear_since is None or captured <= opened.clear_since

    def _leave(self, opened: OpenCrossing, reason: str, now: float) -> list[Emission]:
        """The vehicle has left: end it, or park it among the leaving ones to wait for its
        X-ray scan (the lane is free for the next vehicle meanwhile)."""
        waited = now - (opened.clear_since if opened.clear_since is not None else now)
        if (
            not self._awaits_scan(opened)
            or waited >= self.settings.settle_s + self.settings.xray_wait_s
        ):
            return self._finish(opened, reason, now)
        opened.leaving_reason = reason
        opened.note(now, "waiting for X-ray scan", most_s=self.settings.xray_wait_s)
        self.closing.append(opened)
        self._release(opened)
        return []

    def _awaits_scan(self, opened: OpenCrossing) -> bool:
        """A truck in a truck lane with a scanner up, and no scan yet: its end waits."""
        if opened.xray is not None or self.settings.lane_type != "truck":
            return False
        if not any(self.health[d][0] != SensorState.DOWN for d in self._scanners):
            return False
        return current_class(opened) != "light_vehicle"

    # --- presence -----------------------------------------------------------------------

    def _presence_source(self) -> str:
        """The best presence source that is configured and not DOWN."""
        for source in self.settings.order():
            ids = [
                d for d, dev in self.devices.items() if dev.device_class == PRESENCE_CLASSES[source]
            ]
            if any(self.health[d][0] != SensorState.DOWN for d in ids):
                return source
        return "camera"

    def _presence(self, source: str, active: bool, now: float) -> list[Emission]:
        if source != self._presence_source():
            return []
        current = self.current
        if active:
            if current is None:
                return self._start(now)
            settled = (
                current.clear_since is not None
                and now - current.clear_since >= self.settings.settle_s
            )
            if current.clear_since is not None and (self._left(current, source, now) or settled):
                # The previous vehicle has gone; this is the next one. The previous one
                # still collects late results until its settle time is over. (Clear for
                # settle_s, it would have ended already but for a frame still being read: the
                # hold waits for that read, it does not make the next vehicle part of this one.)
                current.leaving_reason = (
                    "exit"
                    if self._left(current, source, now)
                    else self._clear_reason(current, source)
                )
                current.note(now, "next vehicle", source=source)
                self.closing.append(current)
                self._release(current)
                return self._start(now)
            current.clear_since = None
            return []
        if current is not None and current.clear_since is None:
            current.clear_since = now
            current.note(now, "lane clear", source=source)
            self._axle_mark = self._axle_total  # its axles are counted; later ones are the next's
        return []

    def _clear_reason(self, opened: OpenCrossing, source: str) -> str:
        """Why a vehicle whose lane has been clear for settle_s ended: ``reversed`` when it came
        over the entry loop and never reached the exit loop."""
        if source == "io" and opened.entry_seen and not opened.exit_seen and not opened.exit_faulty:
            return "reversed"
        return "exit"

    def _left(self, opened: OpenCrossing, source: str, now: float) -> bool:
        """Whether a clear lane meant the vehicle left (not a tractor-trailer gap)."""
        if source == "io" and self.settings.exit_input in self.settings.presence_inputs:
            return opened.exit_seen
        return now - (opened.clear_since or now) >= self.settings.min_gap_s

    def _count_axles(self, total: int | None) -> None:
        """The axle counter's running total: a vehicle's axles are its increase since the
        previous vehicle left."""
        if total is None:
            return
        if self._axle_mark is None:
            self._axle_mark = total  # the first reading: nothing before it is counted
        self._axle_total = total
        if self.current is not None and self.current.clear_since is None:
            self._axles_of(self.current)

    def _axles_of(self, opened: OpenCrossing) -> None:
        if opened.axle_base is None:
            opened.axle_base = self._axle_total  # the counter came up mid-vehicle
        if opened.axle_base is not None and self._axle_total is not None:
            opened.counted_axles = (self._axle_total - opened.axle_base) % 2**32

    def _release(self, opened: OpenCrossing) -> None:
        """``opened`` is no longer the vehicle in the lane: later axles are the next one's."""
        if opened is self.current:
            self.current = None
            if opened.clear_since is None:  # split or ended while still in the lane
                self._axle_mark = self._axle_total

    # --- opening and closing ------------------------------------------------------------

    def _start(self, now: float) -> list[Emission]:
        record = CrossingRecord.begin(self.wall(now))
        opened = OpenCrossing(record=record, started=now, axle_base=self._axle_mark)
        self._axles_of(opened)
        opened.note(now, "presence", source=self._presence_source())
        for device in self.devices:
            self._note_health(opened, device)
        # Plate reads that came just before presence (camera upstream of the loop).
        for seen, plate in self._recent_plates:
            if now - seen <= self.settings.plate_lead_s:
                opened.plates[plate.position].append(plate)
                opened.saw.add(plate.camera)
                if plate.position == PlatePosition.FRONT and opened.front_since is None:
                    opened.front_since = seen
        self._recent_plates.clear()
        for captured, camera in self._early_attempts:
            if now - captured <= self.settings.plate_lead_s and captured > self._ended_clear:
                opened.frames_read[camera] = opened.frames_read.get(camera, 0) + 1
        self._early_attempts.clear()
        self.current = opened
        self._last_seen["camera"] = now
        return self._confirm(opened, now)

    def _confirm(self, opened: OpenCrossing, now: float) -> list[Emission]:
        """Announce ``new`` once the presence is a vehicle: long enough, or seen by others."""
        if opened.confirmed:
            return []
        until = opened.clear_since if opened.clear_since is not None else now
        if not opened.proof() and until - opened.started < self.settings.min_presence_s:
            return []
        opened.confirmed = True
        opened.note(now, "new", why="evidence" if opened.proof() else "presence held")
        return [Emission(EventType.NEW, self._snapshot(opened))]

    def _update(self, opened: OpenCrossing, what: str) -> list[Emission]:
        if what in opened.announced:
            return []
        opened.announced.add(what)
        if not opened.confirmed:
            return self._confirm(opened, opened.started)
        return [Emission(EventType.UPDATE, self._snapshot(opened))]

    def _finish(self, opened: OpenCrossing, reason: str, now: float) -> list[Emission]:
        self._release(opened)
        if opened in self.closing:
            self.closing.remove(opened)
        if not opened.confirmed and not opened.proof():
            return []  # a pedestrian, a bird, a loop glitch: no crossing
        out = self._confirm(opened, now)
        # The vehicle left when the lane went clear, not when we were sure of it.
        end = opened.clear_since if opened.clear_since is not None else now
        opened.record.end = self.wall(max(opened.started, end))
        opened.record.end_reason = reason
        # Reads held as a possible tailgater's and never confirmed are this vehicle's.
        opened.plates[PlatePosition.FRONT].extend(r for _t, r in opened.rivals)
        opened.rivals.clear()
        if not opened.plates[PlatePosition.FRONT]:
            del opened.plates[PlatePosition.FRONT]
        for position, observations in sorted(opened.plates.items()):
            final = vote(observations, position, top_n=self.settings.top_n)
            opened.note(
                now,
                "plate vote",
                position=position.value,
                reads=len(observations),
                chosen=final.text,
                candidates=[c.model_dump() for c in final.candidates],
            )
        opened.note(now, "end", reason=reason)
        self._ended_at = now
        if self._scanners:
            self.xray.crossing_ended(
                CrossingWindow(
                    opened.record.crossing_id,
                    opened.record.start,
                    opened.record.end,
                    scanner_plates(opened),
                ),
                opened.cargo.codes_read(),
            )
        self._ended_clear = max(self._ended_clear, end)
        plates = {p.text for obs in opened.plates.values() for p in obs}
        self._previous_plates = (now, plates)
        return [*out, Emission(EventType.END, self._snapshot(opened, final=True))]

    def _note_health(self, opened: OpenCrossing, device: str) -> None:
        opened.note_health(device, *self.health.get(device, (SensorState.UP, None)))

    def _snapshot(self, opened: OpenCrossing, *, final: bool = False) -> CrossingRecord:
        return snapshot(
            opened,
            devices=self.devices,
            settings=self.settings,
            scanners=self._scanners,
            neighbours=self._neighbours.values(),
            final=final,
        )
