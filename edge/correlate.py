"""Readings -> crossings: the lane state machine. Pure: no I/O, no clock, no threads.

Every input carries ``now``, the agent's monotonic receive time in seconds, so a recorded
lane replays through it deterministically and device clock skew never matters (device
timestamps are kept as evidence, not used for ordering).

Life cycle of one vehicle: ``new`` when presence starts, ``update`` when a first stable
weight, an occupancy result, a plate or a thermal alarm arrives, ``end`` once the lane has
been clear for ``settle_s`` (late RPM occupancies and plate reads still attach), or after
``max_crossing_s`` (a vehicle parked on the weighbridge), or at shutdown. Every ``new`` gets
an ``end`` with an ``end_reason``. While a frame captured before the lane went clear is still
in plate recognition (``on_recognition_started`` .. ``on_recognition_done``), that ``end``
waits up to ``recognition_wait_s`` more, on every input and tick alike, so the frame's plate
joins its own vehicle instead of being dropped or given to the next one. In a truck lane
with an X-ray scanner, a truck's ``end`` likewise waits up to ``xray_wait_s`` for its scan,
parked among the leaving vehicles so that the next one can come in; a scan that arrives
after its crossing's end, or fits none, is handed out alone (``take_scans``), see
:mod:`edge.cargo.xray_link`.

Presence comes from the first *available* source in ``presence_order`` (lane I/O loops and
light curtain, then weight, then RPM occupancy, then plate reads), so a dead loop degrades to
weight instead of losing vehicles.
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime

from drivers.readings import (
    LaneIoState,
    Reading,
    RpmCounts,
    RpmOccupancy,
    ThermalRegions,
    WeightReading,
    XrayScan,
)
from edge.cargo.adr import AdrPlate
from edge.cargo.container_read import ContainerSighting
from edge.cargo.crossing_cargo import CargoVotes
from edge.cargo.xray import CrossingWindow, match_scan, unscanned_note, xray_mismatch_alarm
from edge.cargo.xray_link import LinkedScan, ScanLink, xray_record
from edge.crossing import CrossingRecord
from edge.events import (
    Alarm,
    Candidate,
    Coverage,
    EventType,
    PlateLayout,
    PlatePosition,
    PlateRead,
    Radiation,
    SensorCoverage,
    SensorState,
    Thermal,
    ThermalRegion,
    Weight,
)

OCCUPANCY_LINES = {"GS", "GA", "NS", "NA"}
TRACE_LIMIT = 500
NEIGHBOUR_LIMIT = 200
# Frames in recognition at once: each camera's waiting candidates (edge/recognize/schedule.py)
# and the one it is reading.
RECOGNITION_LIMIT = 128
ATTEMPT_LIMIT = 64  # read attempts kept for a vehicle whose presence has not begun yet
# How fast a thermal region's empty-lane floor may rise: 1 C a minute.
THERMAL_FLOOR_RISE_C_PER_S = 1 / 60
LIGHT_VEHICLE_KG = 3500.0  # at most: a car or small van (category M1/N1)

PRESENCE_SOURCES = ("io", "weight", "rpm", "camera")

DEFAULT_PRESENCE_ORDER: dict[str, tuple[str, ...]] = {
    "truck": ("io", "weight", "rpm", "camera"),
    "bus": ("io", "weight", "rpm", "camera"),
    "car": ("io", "rpm", "weight", "camera"),
}

# Devices every vehicle must pass; a crossing they did not see is flagged, with these words.
SCREENING = {
    "rpm": "reported no occupancy for this vehicle",
    "weighbridge": "reported no stable weight for this vehicle",
}

COVERAGE_WORDS = {
    "rpm": "not radiation-screened",
    "weighbridge": "not weighed",
    "anpr": "plate not read",
    "thermal": "no thermal scan",
    "laneio": "no loop presence",
    "xray": "not X-rayed",
}
# What a device that was not UP during a crossing still delivered for it: the note then says
# so, instead of "not weighed" beside a stable weight.
DELIVERED_WORDS = {
    "rpm": "radiation-screened all the same",
    "weighbridge": "weighed all the same",
    "anpr": "plate read all the same",
    "thermal": "thermal scan taken all the same",
    "laneio": "loop presence seen all the same",
}


@dataclass(frozen=True, slots=True)
class PlateObservation:
    """One plate read in one frame, as the recogniser hands it over."""

    camera: str
    position: PlatePosition
    text: str
    confidence: float
    raw: str | None = None
    country: str | None = None
    type: str | None = None
    rows: int = 1
    candidates: tuple[Candidate, ...] = ()
    captured_at: datetime | None = None
    frame_key: str | None = None  # where the agent keeps the frame, for evidence
    # The recogniser's country and layout decision (edge.recognize.origin), carried as is.
    country_confidence: float | None = None
    layout: PlateLayout | None = None
    layout_confidence: float | None = None
    row_texts: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class NeighbourSighting:
    """Plates a neighbouring lane read on one crossing, from its published events."""

    lane: str
    crossing_id: str
    plates: frozenset[str]
    start: datetime
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Device:
    id: str
    kind: str  # registry kind, e.g. "rpm.rapiscan"; its class is the part before the dot
    role: str | None = None

    @property
    def device_class(self) -> str:
        return self.kind.split(".", 1)[0]


@dataclass(frozen=True, slots=True)
class FusionSettings:
    lane_type: str = "truck"
    presence_order: tuple[str, ...] | None = None
    presence_inputs: tuple[str, ...] = ("entry_loop", "exit_loop", "light_curtain")
    entry_input: str = "entry_loop"
    exit_input: str = "exit_loop"
    presence_kg: float = 300.0
    settle_s: float = 1.5
    min_gap_s: float = 1.0  # without an exit loop: a clear lane this long means a new vehicle
    min_presence_s: float = 0.6  # shorter, with nothing else seen: a pedestrian or noise
    recognition_wait_s: float = 3.0  # most an end waits for a frame still being read
    max_crossing_s: float = 600.0
    plate_lead_s: float = 3.0  # a plate read this long before presence still belongs to it
    parked_s: float = 60.0  # the previous vehicle's plate seen again this soon: ignored
    camera_gap_s: float = 3.0  # camera-only presence: no read for this long = gone
    # A second tractor's front plate cannot reach the front camera sooner than this after the
    # first one's was read (a vehicle's length at lane speed); sooner, it is a misread.
    tailgate_min_s: float = 1.0
    top_n: int = 5
    thermal_alarm_c: float = 120.0
    # A thermal region this much warmer than it shows the empty lane saw a vehicle. The
    # camera reports every poll, vehicle or not: its readings alone prove nothing.
    thermal_vehicle_c: float = 5.0
    axle_counter: str = "axles"  # lane I/O pulse counter wired to an axle detector
    max_axle_kg: float = 13_000.0  # more per axle: axles miscounted, or an overloaded axle
    neighbour_window_s: float = 10.0  # a plate in the next lane this close in time is flagged
    xray_wait_s: float = 60.0  # most a truck's end waits for its X-ray scan (past settle_s)
    xray_clock_tolerance_s: float = 5.0  # a scan's window widened by this when matching
    xray_max_offset_s: float = 600.0  # a scanner clock sample further off is refused
    xray_clock_offset: bool = True  # estimate the scanner's clock offset (edge.cargo.xray_link)

    def order(self) -> tuple[str, ...]:
        return self.presence_order or DEFAULT_PRESENCE_ORDER.get(self.lane_type, PRESENCE_SOURCES)


@dataclass(frozen=True, slots=True)
class Emission:
    type: EventType
    record: CrossingRecord


@dataclass(slots=True)
class _Open:
    record: CrossingRecord
    started: float
    clear_since: float | None = None
    plates: dict[PlatePosition, list[PlateObservation]] = field(
        default_factory=lambda: defaultdict(list)
    )
    weights: list[WeightReading] = field(default_factory=list)
    occupancy: RpmOccupancy | None = None
    thermal: list[ThermalRegions] = field(default_factory=list)
    thermal_saw: bool = False  # a region warmer than the empty lane (or in alarm)
    saw: set[str] = field(default_factory=set)
    worst: dict[str, tuple[SensorState, str | None]] = field(default_factory=dict)
    entry_seen: bool = False
    exit_seen: bool = False
    announced: set[str] = field(default_factory=set)
    confirmed: bool = False
    leaving_reason: str = "exit"
    exit_faulty: bool = False
    axle_base: int | None = None  # the axle counter when this vehicle arrived
    counted_axles: int | None = None  # by the lane I/O axle counter
    rpm_axles: int | None = None  # by the RPM (Aspect object mark)
    front_since: float | None = None  # when its first front plate was read
    # Strong front reads unlike its own, held until a second like them confirms a tailgater.
    rivals: list[tuple[float, PlateObservation]] = field(default_factory=list)
    xray: tuple[XrayScan, float | None] | None = None  # its scan and the clock offset used
    cargo: CargoVotes = field(default_factory=CargoVotes)  # container codes, orange plates
    frames_read: dict[str, int] = field(default_factory=dict)  # camera -> frames read

    def note(self, now: float, what: str, **detail: object) -> None:
        """One line of the crossing's story (bounded: a stuck lane must not grow it forever)."""
        if len(self.record.trace) < TRACE_LIMIT:
            self.record.trace.append({"t": round(now - self.started, 3), "what": what, **detail})


_STATE_RANK = {SensorState.UP: 0, SensorState.DEGRADED: 1, SensorState.DOWN: 2}


class Correlator:
    """Feed readings, plates, health changes and ticks; get crossing emissions back.

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
        self.ignored_presences = 0
        self.health: dict[str, tuple[SensorState, str | None]] = {
            d: (SensorState.UP, None) for d in self.devices
        }
        self.current: _Open | None = None
        # Vehicles that left the lane and wait out settle_s for late results (an RPM
        # occupancy, a plate still in recognition) while the next vehicle is already in.
        self.closing: list[_Open] = []
        self._present: dict[str, bool] = {}
        self._last_seen: dict[str, float] = {}
        self._recent_plates: deque[tuple[float, PlateObservation]] = deque(maxlen=64)
        self._previous_plates: tuple[float, set[str]] = (float("-inf"), set())
        # Each thermal region's empty-lane temperature: (device, region) -> (degC, when).
        self._empty_lane_c: dict[tuple[str, int], tuple[float, float]] = {}
        self._ended_at = float("-inf")
        self._ended_clear = float("-inf")  # when the lane of the last vehicle ended went clear
        self.late_readings = 0
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

    # --- inputs -------------------------------------------------------------------------

    def on_health(
        self, device: str, state: SensorState, reason: str | None, now: float
    ) -> list[Emission]:
        self.health[device] = (state, reason)
        if self.current is not None:
            self._note_health(self.current, device)
            self.current.note(now, "device", device=device, state=state.value, reason=reason)
        return self.tick(now)

    def on_reading(self, reading: Reading, now: float) -> list[Emission]:
        out: list[Emission] = []
        if isinstance(reading, LaneIoState):
            # A loop the driver reports chattering or locked on says nothing about vehicles.
            inputs = {k: v for k, v in reading.inputs.items() if k not in reading.faults}
            active = any(inputs.get(name, False) for name in self.settings.presence_inputs)
            out += self._presence("io", active, now)
            self._count_axles(reading.counters.get(self.settings.axle_counter))
            if self.current is not None:
                if inputs.get(self.settings.entry_input):
                    self.current.entry_seen = True
                if inputs.get(self.settings.exit_input):
                    self.current.exit_seen = True
                if self.settings.exit_input in reading.faults:
                    self.current.exit_faulty = True  # cannot tell a reversal from an exit
                if active:
                    self.current.saw.add(reading.device_id)
        elif isinstance(reading, WeightReading):
            loaded = reading.gross_kg >= self.settings.presence_kg and not reading.overload
            out += self._presence("weight", loaded, now)
            if self.current is not None and loaded:
                self.current.saw.add(reading.device_id)
                if reading.stable and not any(w.stable for w in self.current.weights):
                    self.current.note(now, "weight", kg=reading.gross_kg, stable=True)
                if reading.stable:
                    first = not any(w.stable for w in self.current.weights)
                    self.current.weights.append(reading)
                    if first:
                        out += self._update(self.current, "weight")
        elif isinstance(reading, RpmCounts):
            if reading.fault is None:
                active = reading.line_type in OCCUPANCY_LINES
                out += self._presence("rpm", active, now)
        elif isinstance(reading, RpmOccupancy):
            target = self.current
            began = now - (reading.end - reading.start).total_seconds()  # same device clock
            if self.closing and (target is None or began < target.started):
                target = self.closing[-1]  # the vehicle that just left, not the next one
            elif target is None and now - self._ended_at > 2 * self.settings.settle_s:
                # An occupancy nobody else saw is a vehicle too (unidentified, never dropped);
                # one just after a crossing ended is that crossing's late result.
                out += self._start(now)
                target = self.current
                assert target is not None
                target.clear_since = now
            elif target is None:
                self.late_readings += 1
            if target is not None:
                target.occupancy = reading
                target.rpm_axles = reading.axles
                target.saw.add(reading.device_id)
                target.note(
                    now,
                    "radiation",
                    gamma_max_cps=reading.gamma_max_cps,
                    background=reading.gamma_background_cps,
                    sigma=reading.sigma,
                    gamma_alarm=reading.gamma_alarm,
                    neutron_alarm=reading.neutron_alarm,
                )
                out += self._update(target, "radiation")
        elif isinstance(reading, XrayScan):
            out += self._on_scan(reading, now)
        elif isinstance(reading, ThermalRegions) and self.current is None:
            if not self.closing:
                self._learn_empty_lane(reading, now)
        elif (
            isinstance(reading, ThermalRegions)
            and self.current is not None  # always true here (None took the branch above)
            and self.current.clear_since is None
        ):
            # Only while the vehicle is present: once the lane is clear, the camera shows
            # the road or the next vehicle coming, not this one.
            self.current.thermal.append(reading)
            if self._thermal_sees_vehicle(reading):
                self.current.thermal_saw = True
                self.current.saw.add(reading.device_id)
            if any(r.alarm for r in reading.regions):
                self.current.note(now, "thermal alarm", max_c=reading.max_c)
                out += self._update(self.current, "thermal")
        return out + self.tick(now)

    def on_plate(
        self, plate: PlateObservation, now: float, *, seen: float | None = None
    ) -> list[Emission]:
        """A plate read; ``seen`` is when its frame was captured (recognition takes time)."""
        out: list[Emission] = []
        gone_at, previous = self._previous_plates
        if plate.text in previous and now - gone_at < self.settings.parked_s:
            if self.current is not None:
                self.current.note(
                    now,
                    "plate ignored",
                    text=plate.text,
                    why="the previous vehicle's plate, still in view",
                )
            return self.tick(now)  # the last vehicle (queued or parked) still in view
        current = self.current
        if current is None or not _holds(current, plate.text):
            # The vehicle that just left, read again on its way out (the rear camera still
            # sees it), whatever the loops did meanwhile: its plate, not the next vehicle's.
            for leaving in reversed(self.closing):
                if _holds(leaving, plate.text):
                    return self._late_plate(leaving, plate, now)
        if seen is not None and self.closing and (current is None or seen < current.started):
            last_vehicle = self.closing[-1]
            if seen >= last_vehicle.started - self.settings.plate_lead_s and not _coming(
                plate, last_vehicle, seen
            ):
                return self._late_plate(last_vehicle, plate, now)
        if current is not None and _coming(plate, current, seen):
            # A front camera sees vehicles coming: a plate it saw after this vehicle's lane
            # went clear is the next vehicle's, not a tailgater's or this one's.
            self._recent_plates.append((now, plate))
            current.note(now, "plate kept", text=plate.text, why="the next vehicle's, coming")
            return out + self.tick(now)
        if (
            current is not None
            and seen is not None
            and seen < current.started
            and (seen <= self._ended_at)
        ):
            # Captured while the previous vehicle was in the lane, read after it left.
            self.late_readings += 1
            current.note(
                now, "plate ignored", text=plate.text, why="captured before this vehicle arrived"
            )
            return self.tick(now)
        if current is not None and self._rival(current, plate, now):
            held = [(t, r) for t, r in current.rivals if _similar(r.text, plate.text)]
            if not held:
                # One read is no second tractor: a misread of this one's plate is likelier.
                current.rivals.append((now, plate))
                current.note(now, "plate held", text=plate.text, why="unlike this vehicle's")
                self._last_seen["camera"] = now
                return out + self.tick(now)
            # A second tractor under one presence, read twice: tailgating. The first vehicle
            # ends, and the second starts, where its plate was first read.
            current.rivals = [r for r in current.rivals if r not in held]
            came = held[0][0]
            current.clear_since = came
            current.note(now, "tailgating", new_front_plate=plate.text)
            out += self._finish(current, "tailgating", now)
            out += self._start(came)
            current = self.current
            assert current is not None
            current.plates[PlatePosition.FRONT].extend(r for _t, r in held)
            current.front_since = came
        self._last_seen["camera"] = now
        if current is None:
            out += self._presence("camera", True, now)
            current = self.current
        if current is None:
            # No presence yet: the camera often sees the plate before the loop fires.
            self._recent_plates.append((now, plate))
        else:
            first = not current.plates.get(plate.position)
            _add_plate(current, plate, now)
            if plate.position == PlatePosition.FRONT and current.front_since is None:
                current.front_since = now
            if first:
                out += self._update(current, f"plate:{plate.position}")
        return out + self.tick(now)

    def _late_plate(self, opened: _Open, plate: PlateObservation, now: float) -> list[Emission]:
        """A read for a vehicle that has left the lane and is settling."""
        _add_plate(opened, plate, now, late=True)
        return self.tick(now)

    def on_recognition_started(self, camera: str, captured: float, now: float) -> list[Emission]:
        """A frame ``camera`` captured at ``captured`` (monotonic) went into plate recognition.

        Until ``on_recognition_done``, a vehicle whose lane went clear after ``captured`` does
        not end (up to ``recognition_wait_s`` past its settle time): the frame may hold its plate.
        """
        self._in_recognition[(camera, captured)] = now
        while len(self._in_recognition) > RECOGNITION_LIMIT:
            del self._in_recognition[next(iter(self._in_recognition))]
        return self.tick(now)

    def on_recognition_done(
        self, camera: str, captured: float, now: float, *, read: bool = True
    ) -> list[Emission]:
        """That frame's read is over; its plates, if any, were handed in before this.

        ``read`` False: the frame was given up unread (a better one of its vehicle was read).
        A read frame counts in its vehicle's coverage (``frames_read`` of the camera).
        """
        self._in_recognition.pop((camera, captured), None)
        if read:
            self._count_attempt(camera, captured)
        return self.tick(now)

    def _count_attempt(self, camera: str, captured: float) -> None:
        """The vehicle a frame captured at ``captured`` shows gets one more frame read.

        A front camera looks at vehicles coming: its frame shows the first vehicle whose lane
        was not yet clear at the capture (from ``plate_lead_s`` before its presence began); one
        captured after every lane went clear is kept for the vehicle that begins within
        ``plate_lead_s`` of it. A rear or trailer camera looks at them leaving: its frame shows
        the last vehicle that was in the lane by the capture. A frame of a vehicle that has
        ended already counts nowhere (its event is out).
        """
        device = self.devices.get(camera)
        vehicles = [*self.closing, *([self.current] if self.current is not None else [])]
        shown: _Open | None = None
        if device is not None and device.role in ("rear", "trailer"):
            shown = next((v for v in reversed(vehicles) if v.started <= captured), None)
        elif captured > self._ended_clear:
            lead = self.settings.plate_lead_s
            shown = next(
                (
                    v
                    for v in vehicles
                    if captured >= v.started - lead
                    and (v.clear_since is None or captured <= v.clear_since)
                ),
                None,
            )
            if shown is None:
                self._early_attempts.append((captured, camera))
        if shown is not None:
            shown.frames_read[camera] = shown.frames_read.get(camera, 0) + 1

    def _reading_since(self, now: float) -> float | None:
        """Capture time of the oldest frame still in recognition, if any.

        A read in flight longer than an ``end`` can wait (``settle_s + recognition_wait_s``) is
        given up: its recogniser is stuck or its done was lost, and it holds nothing more.
        """
        give_up = self.settings.settle_s + self.settings.recognition_wait_s
        for key, began in list(self._in_recognition.items()):
            if now - began > give_up:
                del self._in_recognition[key]
        return min((captured for _camera, captured in self._in_recognition), default=None)

    def on_neighbour(self, sighting: NeighbourSighting, now: float) -> list[Emission]:
        """A crossing event of a neighbouring lane (its plates and times), for cross-checks."""
        if sighting.plates:
            self._neighbours.pop(sighting.crossing_id, None)
            self._neighbours[sighting.crossing_id] = sighting
            while len(self._neighbours) > NEIGHBOUR_LIMIT:
                del self._neighbours[next(iter(self._neighbours))]
        return self.tick(now)

    def tick(self, now: float) -> list[Emission]:
        """Time passes: close crossings whose lane has been clear long enough.

        A frame still in recognition that was captured before a vehicle's lane went clear
        holds that vehicle's end (up to ``recognition_wait_s`` more), so its plate is not lost
        or given to the next vehicle. Every input ends in this tick, so the hold applies
        whatever the input rate (a 10 Hz weighbridge never lets the agent's queue idle).
        """
        out: list[Emission] = []
        reading_since = self._reading_since(now)
        for opened in list(self.closing):
            held = reading_since is not None and reading_since <= (opened.clear_since or now)
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
            reading_since is not None
            and current.clear_since is not None
            and reading_since <= current.clear_since
            and now - current.clear_since
            < self.settings.settle_s + self.settings.recognition_wait_s
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

    def _leave(self, opened: _Open, reason: str, now: float) -> list[Emission]:
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

    def shutdown(self, now: float) -> list[Emission]:
        out: list[Emission] = []
        for opened in list(self.closing):
            out += self._finish(opened, opened.leaving_reason, now)
        if self.current is not None:
            out += self._finish(self.current, "shutdown", now)
        return out

    # --- cargo: container codes, orange plates, X-ray scans -------------------------------

    def on_container(
        self, sighting: ContainerSighting, camera: str, now: float, *, seen: float | None = None
    ) -> list[Emission]:
        """A container code a ``container`` camera read (``seen``: its frame's capture)."""
        target = self._cargo_target(now if seen is None else seen)
        if target is not None:
            first = not target.cargo.codes
            target.cargo.add_container(sighting, camera, now)
            target.saw.add(camera)
            if sighting.code in target.cargo.codes and target.cargo.codes[sighting.code].reads == 1:
                target.note(now, "container", code=sighting.code, level=sighting.level.value)
            if first:
                return self._update(target, "containers") + self.tick(now)
        return self.tick(now)

    def on_adr(self, plate: AdrPlate, now: float, *, seen: float | None = None) -> list[Emission]:
        """An orange plate a front or rear camera saw (``seen``: its frame's capture)."""
        target = self._cargo_target(now if seen is None else seen)
        if target is not None:
            first = not target.cargo.adr
            target.cargo.add_adr(plate)
            target.note(now, "adr", position=plate.position, plate=plate.label)
            if first:
                return self._update(target, "adr") + self.tick(now)
        return self.tick(now)

    def _cargo_target(self, seen: float) -> _Open | None:
        """The vehicle a frame captured at ``seen`` shows: in the lane, else the one leaving."""
        current = self.current
        if current is not None and seen >= current.started:
            return current
        for leaving in reversed(self.closing):
            if seen >= leaving.started:
                return leaving
        return current

    def take_scans(self) -> list[LinkedScan]:
        """Scans to send on their own (late, unmatched, second): drain after every call."""
        return self.xray.take()

    def _awaits_scan(self, opened: _Open) -> bool:
        """A truck in a truck lane with a scanner up, and no scan yet: its end waits."""
        if opened.xray is not None or self.settings.lane_type != "truck":
            return False
        if not any(self.health[d][0] != SensorState.DOWN for d in self._scanners):
            return False
        return self._vehicle_class(opened) != "light_vehicle"

    def _vehicle_class(self, opened: _Open) -> str | None:
        weight = self._weight(opened)
        return vehicle_class(
            opened.counted_axles or opened.rpm_axles,
            weight.gross_kg if weight is not None else None,
            trailer=PlatePosition.TRAILER in opened.plates,
        )

    def _window(self, opened: _Open) -> CrossingWindow:
        left = opened.clear_since
        return CrossingWindow(
            opened.record.crossing_id,
            opened.record.start,
            self.wall(left) if left is not None else None,
            tuple(sorted({p.text for reads in opened.plates.values() for p in reads})),
        )

    def _on_scan(self, scan: XrayScan, now: float) -> list[Emission]:
        """Match a scan by the scanner's times (on the agent's clock) to a crossing."""
        received = self.wall(now)
        offset = self.xray.observe(scan, received)
        moved = self.xray.in_agent_time(scan, offset)
        live = [o for o in [*self.closing, self.current] if o is not None]
        chosen = match_scan(
            moved,
            [self._window(o) for o in live] + self.xray.ended_windows(),
            now=received,
            clock_tolerance_s=self.settings.xray_clock_tolerance_s,
            # An applied offset comes from delayed samples: the scan was then at or before
            # the times it is moved to, never after.
            lead_s=self.settings.xray_clock_tolerance_s if offset else 0.0,
        )
        target = next((o for o in live if o.record.crossing_id == chosen), None)
        if target is not None and target.xray is None:
            target.xray = (scan, offset)
            target.saw.add(scan.device_id)
            target.note(now, "xray", scan_id=scan.scan_id, clock_offset_s=offset)
            self.xray.linked += 1
            return self._update(target, "xray")
        if target is not None:
            window = self._window(target)
            self.xray.send_alone(scan, "second_scan", chosen, offset_s=offset, plates=window.plates)
        elif chosen is None and self.xray.last_was_stale:
            self.xray.stale += 1  # the archive re-read after a restart: sent by the last run
        else:
            self.xray.send_alone(scan, "late" if chosen else "unmatched", chosen, offset_s=offset)
        return []

    # --- presence -----------------------------------------------------------------------

    def _presence_source(self) -> str:
        """The best presence source that is configured and not DOWN."""
        classes = {"io": "laneio", "weight": "weighbridge", "rpm": "rpm", "camera": "anpr"}
        for source in self.settings.order():
            ids = [d for d, dev in self.devices.items() if dev.device_class == classes[source]]
            if any(self.health[d][0] != SensorState.DOWN for d in ids):
                return source
        return "camera"

    def _presence(self, source: str, active: bool, now: float) -> list[Emission]:
        self._present[source] = active
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

    def _clear_reason(self, opened: _Open, source: str) -> str:
        """Why a vehicle whose lane has been clear for settle_s ended: ``reversed`` when it came
        over the entry loop and never reached the exit loop."""
        if source == "io" and opened.entry_seen and not opened.exit_seen and not opened.exit_faulty:
            return "reversed"
        return "exit"

    def _left(self, opened: _Open, source: str, now: float) -> bool:
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

    def _axles_of(self, opened: _Open) -> None:
        if opened.axle_base is None:
            opened.axle_base = self._axle_total  # the counter came up mid-vehicle
        if opened.axle_base is not None and self._axle_total is not None:
            opened.counted_axles = (self._axle_total - opened.axle_base) % 2**32

    def _release(self, opened: _Open) -> None:
        """``opened`` is no longer the vehicle in the lane: later axles are the next one's."""
        if opened is self.current:
            self.current = None
            if opened.clear_since is None:  # split or ended while still in the lane
                self._axle_mark = self._axle_total

    def _start(self, now: float) -> list[Emission]:
        record = CrossingRecord.begin(self.wall(now))
        opened = _Open(record=record, started=now, axle_base=self._axle_mark)
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

    def _proof(self, opened: _Open) -> bool:
        """Something besides presence saw this vehicle."""
        return bool(opened.plates or opened.weights or opened.occupancy or opened.thermal_saw)

    def _thermal_sees_vehicle(self, reading: ThermalRegions) -> bool:
        """A region in alarm, or ``thermal_vehicle_c`` warmer than it showed the empty lane.
        Before the lane was ever seen empty there is nothing to compare with, and the
        reading counts as seeing whatever is there."""
        compared = False
        for region in reading.regions:
            if not region.valid or region.max_c is None:
                continue
            if region.alarm:
                return True
            empty = self._empty_lane_c.get((reading.device_id, region.index))
            if empty is not None:
                compared = True
                if region.max_c >= empty[0] + self.settings.thermal_vehicle_c:
                    return True
        return not compared

    def _learn_empty_lane(self, reading: ThermalRegions, now: float) -> None:
        """Each region's empty-lane temperature: a floor that follows the road down at once
        and up by at most ``THERMAL_FLOOR_RISE_C_PER_S`` (the sun warms a road over hours; a
        hot truck queueing in view before the loop must not become the empty lane)."""
        for region in reading.regions:
            if not region.valid or region.max_c is None:
                continue
            key = (reading.device_id, region.index)
            floor = self._empty_lane_c.get(key)
            value = region.max_c
            if floor is not None:
                value = min(value, floor[0] + THERMAL_FLOOR_RISE_C_PER_S * (now - floor[1]))
            self._empty_lane_c[key] = (value, now)

    def _confirm(self, opened: _Open, now: float) -> list[Emission]:
        """Announce ``new`` once the presence is a vehicle: long enough, or seen by others."""
        if opened.confirmed:
            return []
        until = opened.clear_since if opened.clear_since is not None else now
        if not self._proof(opened) and until - opened.started < self.settings.min_presence_s:
            return []
        opened.confirmed = True
        opened.note(now, "new", why="evidence" if self._proof(opened) else "presence held")
        return [Emission(EventType.NEW, self._snapshot(opened))]

    def _update(self, opened: _Open, what: str) -> list[Emission]:
        if what in opened.announced:
            return []
        opened.announced.add(what)
        if not opened.confirmed:
            return self._confirm(opened, opened.started)
        return [Emission(EventType.UPDATE, self._snapshot(opened))]

    def _finish(self, opened: _Open, reason: str, now: float) -> list[Emission]:
        self._release(opened)
        if opened in self.closing:
            self.closing.remove(opened)
        if not opened.confirmed and not self._proof(opened):
            self.ignored_presences += 1  # a pedestrian, a bird, a loop glitch: no crossing
            return []
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
                    tuple(sorted({p.text for obs in opened.plates.values() for p in obs})),
                ),
                opened.cargo.codes_read(),
            )
        self._ended_clear = max(self._ended_clear, end)
        plates = {p.text for obs in opened.plates.values() for p in obs}
        self._previous_plates = (now, plates)
        return [*out, Emission(EventType.END, self._snapshot(opened, final=True))]

    # --- building the record ------------------------------------------------------------

    def _note_health(self, opened: _Open, device: str) -> None:
        state, reason = self.health.get(device, (SensorState.UP, None))
        worst = opened.worst.get(device)
        if worst is None or _STATE_RANK[state] > _STATE_RANK[worst[0]]:
            opened.worst[device] = (state, reason)

    def _strong(self, plate: PlateObservation) -> bool:
        return plate.confidence >= 0.6

    def _rival(self, opened: _Open, plate: PlateObservation, now: float) -> bool:
        """A strong front read unlike every front read of ``opened``, which has a strong one
        read long enough ago for a second tractor to have come up behind it."""
        fronts = opened.plates.get(PlatePosition.FRONT)
        return (
            plate.position == PlatePosition.FRONT
            and bool(fronts)
            and not any(_similar(plate.text, p.text) for p in fronts or [])
            and self._strong(plate)
            and self._strong_front(opened)
            and opened.front_since is not None
            and now - opened.front_since >= self.settings.tailgate_min_s
        )

    def _strong_front(self, opened: _Open) -> bool:
        return any(self._strong(p) for p in opened.plates.get(PlatePosition.FRONT, []))

    def _snapshot(self, opened: _Open, *, final: bool = False) -> CrossingRecord:
        record = opened.record
        record.plates = [
            vote(observations, position, top_n=self.settings.top_n)
            for position, observations in sorted(opened.plates.items())
            if observations
        ]
        record.weight = self._weight(opened)
        record.radiation = self._radiation(opened)
        record.thermal = self._thermal(opened)
        record.coverage = self._coverage(opened, final=final)
        record.axle_count = opened.counted_axles or opened.rpm_axles
        record.vehicle_class = vehicle_class(
            record.axle_count,
            record.weight.gross_kg if record.weight is not None else None,
            trailer=PlatePosition.TRAILER in opened.plates,
        )
        record.containers = opened.cargo.containers()
        record.adr = opened.cargo.adr_field()
        if opened.xray is not None:
            record.xray = xray_record(*opened.xray)
        note = unscanned_note(
            lane_type=self.settings.lane_type,
            xray_devices=self._scanners,
            scanned=opened.xray is not None,
            vehicle_class=record.vehicle_class,
        )
        if final and note is not None:
            record.coverage = record.coverage.model_copy(
                update={"notes": [*record.coverage.notes, note]}
            )
        record.alarms = self._alarms(opened, record, final=final)
        if final:
            record.evidence_keys = {
                position.value: key
                for position, observations in opened.plates.items()
                if observations and (key := winner(observations).frame_key) is not None
            }
        if opened.occupancy is not None and opened.occupancy.speed_kmh is not None:
            record.speed_kmh = opened.occupancy.speed_kmh
        return replace(
            record, plates=list(record.plates), alarms=list(record.alarms), trace=list(record.trace)
        )

    def _weight(self, opened: _Open) -> Weight | None:
        stable = [w for w in opened.weights if w.stable]
        if not stable:
            return None
        # The vehicle wholly on the deck is the heaviest stable plateau.
        best = max(stable, key=lambda w: w.gross_kg)
        return Weight(
            gross_kg=best.gross_kg,
            stable=True,
            device=best.device_id,
            division_kg=best.division_kg,
        )

    def _radiation(self, opened: _Open) -> Radiation | None:
        o = opened.occupancy
        if o is None:
            return None
        return Radiation(
            device=o.device_id,
            occupancy_start=o.start,
            occupancy_end=o.end,
            gamma_max_cps=float(o.gamma_max_cps),
            # Counts are whole numbers; a background or a sigma shown past 0.1 / 0.01 is noise.
            gamma_background_cps=_rounded(o.gamma_background_cps, 1),
            neutron_max_cps=float(o.neutron_max),
            neutron_background_cps=_rounded(o.neutron_background, 1),
            sigma=_rounded(o.sigma, 2),
            gamma_alarm=o.gamma_alarm,
            neutron_alarm=o.neutron_alarm,
        )

    def _thermal(self, opened: _Open) -> Thermal | None:
        if not opened.thermal:
            return None
        best: dict[int, tuple[float, bool]] = {}
        for reading in opened.thermal:
            for region in reading.regions:
                if not region.valid or region.max_c is None:
                    continue
                peak, alarm = best.get(region.index, (float("-inf"), False))
                best[region.index] = (max(peak, region.max_c), alarm or region.alarm)
        device = opened.thermal[-1].device_id
        return Thermal(
            device=device,
            regions=[
                ThermalRegion(region=f"region{i}", max_c=round(peak, 2), alarm=alarm)
                for i, (peak, alarm) in sorted(best.items())
            ],
        )

    def _coverage(self, opened: _Open, *, final: bool) -> Coverage:
        sensors, notes = [], []
        for device_id, device in self.devices.items():
            state, reason = opened.worst.get(device_id, (SensorState.UP, None))
            sensors.append(
                SensorCoverage(
                    device=device_id,
                    kind=device.kind,
                    state=state,
                    saw_vehicle=device_id in opened.saw,
                    reason=reason,
                    frames_read=opened.frames_read.get(device_id, 0)
                    if device.device_class == "anpr" and device.role != "overview"
                    else None,
                )
            )
            words = COVERAGE_WORDS.get(device.device_class, "sensor unavailable")
            why = f" ({reason})" if reason else ""
            if state != SensorState.UP and self._delivered(opened, device_id, device.device_class):
                notes.append(
                    f"{device_id} {state.value} during this crossing{why}; "
                    f"{DELIVERED_WORDS.get(device.device_class, 'its reading used')}"
                )
            elif state != SensorState.UP:
                notes.append(f"{words}: {device_id} {state.value}{why}")
            elif final and device.device_class in SCREENING and device_id not in opened.saw:
                # Up, yet silent about this vehicle: say so rather than leave a gap unexplained.
                notes.append(f"{words}: {device_id} {SCREENING[device.device_class]}")
        if final and not opened.plates:
            notes.append("unidentified: no plate read")
        return Coverage(sensors=sensors, notes=notes)

    @staticmethod
    def _delivered(opened: _Open, device_id: str, device_class: str) -> bool:
        """The device gave this vehicle what it is there for (a weight, a screening ...)."""
        record = opened.record
        if device_class == "weighbridge":
            return record.weight is not None
        if device_class == "rpm":
            return record.radiation is not None
        if device_class == "thermal":
            return record.thermal is not None
        if device_class == "anpr":
            return any(o.camera == device_id for obs in opened.plates.values() for o in obs)
        return device_id in opened.saw

    def _alarms(self, opened: _Open, record: CrossingRecord, *, final: bool) -> list[Alarm]:
        alarms = []
        radiation = record.radiation
        if radiation is not None and radiation.gamma_alarm:
            alarms.append(
                Alarm(
                    code="radiation.gamma",
                    severity="critical",
                    message=f"gamma alarm, max {radiation.gamma_max_cps:.0f} cps",
                    device=radiation.device,
                )
            )
        if radiation is not None and radiation.neutron_alarm:
            alarms.append(
                Alarm(
                    code="radiation.neutron",
                    severity="critical",
                    message="neutron alarm",
                    device=radiation.device,
                )
            )
        if record.thermal is not None:
            hot = [
                r
                for r in record.thermal.regions
                if r.alarm or r.max_c >= self.settings.thermal_alarm_c
            ]
            if hot:
                alarms.append(
                    Alarm(
                        code="thermal.hot",
                        severity="warning",
                        device=record.thermal.device,
                        message="hot: " + ", ".join(f"{r.region} {r.max_c:.1f} C" for r in hot),
                    )
                )
        if final and not record.plates and (record.weight is not None or opened.occupancy):
            alarms.append(
                Alarm(
                    code="crossing.unidentified",
                    severity="warning",
                    message="vehicle weighed or screened but no plate read",
                )
            )
        alarms += self._neighbour_alarms(record)
        alarms += opened.cargo.alarms()
        if opened.xray is not None:
            mismatch = xray_mismatch_alarm(
                opened.xray[0],
                plates=[p.text for p in record.plates],
                containers=opened.cargo.codes_read(),
            )
            alarms += [mismatch] if mismatch is not None else []
        weight = record.weight.gross_kg if record.weight is not None else None
        if final:
            alarms += self._axle_alarms(record, weight)
        if final and weight is not None:
            lane = self.settings.lane_type
            if lane == "car" and weight > LIGHT_VEHICLE_KG:
                alarms.append(
                    Alarm(
                        code="crossing.class_mismatch",
                        severity="warning",
                        message=f"{weight:.0f} kg in a car lane",
                    )
                )
            elif lane == "truck" and weight <= LIGHT_VEHICLE_KG:
                alarms.append(
                    Alarm(
                        code="crossing.class_mismatch",
                        severity="info",
                        message=f"light vehicle ({weight:.0f} kg) in a truck lane",
                    )
                )
        return alarms

    def _axle_alarms(self, record: CrossingRecord, weight: float | None) -> list[Alarm]:
        """Axle count against the vehicle's class: weight, trailer plate and lane type."""
        axles = record.axle_count
        if not axles:
            return []
        problems = []
        if weight is not None and axles >= 3 and weight <= LIGHT_VEHICLE_KG:
            problems.append(f"{axles} axles counted but {weight:.0f} kg weighed")
        if weight is not None and weight / axles > self.settings.max_axle_kg:
            problems.append(
                f"{weight:.0f} kg on {axles} axles ({weight / axles:.0f} kg per axle, more than "
                f"{self.settings.max_axle_kg:.0f}): axles miscounted or overloaded"
            )
        if any(p.position == PlatePosition.TRAILER for p in record.plates) and axles < 3:
            problems.append(f"a trailer plate was read but only {axles} axles counted")
        if self.settings.lane_type == "car" and axles > 2:
            problems.append(f"{axles} axles in a car lane")
        return [
            Alarm(code="crossing.axle_mismatch", severity="warning", message=problem)
            for problem in problems
        ]

    def _neighbour_alarms(self, record: CrossingRecord) -> list[Alarm]:
        """Our plate read in a neighbouring lane at the same time: a camera seeing across
        lanes, or two vehicles with one plate (cloned plates)."""
        window = self.settings.neighbour_window_s
        ours_from, ours_to = record.start, record.end or record.start
        alarms = []
        for plate in record.plates:
            for sighting in self._neighbours.values():
                if plate.text not in sighting.plates:
                    continue
                gap = max(
                    (sighting.start - ours_to).total_seconds(),
                    (ours_from - (sighting.end or sighting.start)).total_seconds(),
                )
                if gap <= window:
                    alarms.append(
                        Alarm(
                            code="crossing.plate_in_neighbour_lane",
                            severity="warning",
                            message=(
                                f"plate {plate.text} ({plate.position}) also read in lane "
                                f"{sighting.lane} at {sighting.start:%H:%M:%S} "
                                f"(crossing {sighting.crossing_id})"
                            ),
                        )
                    )
                    break
        return alarms


def vehicle_class(axles: int | None, gross_kg: float | None, *, trailer: bool) -> str | None:
    """A coarse class from what was measured, or None when nothing tells.

    ``articulated`` (a trailer plate, or 5+ axles), ``light_vehicle`` (3.5 t or less),
    ``heavy_vehicle`` (heavier, or 3-4 axles: a rigid truck, a bus or a light semi-trailer).
    """
    if trailer or (axles is not None and axles >= 5):
        return "articulated"
    if gross_kg is not None:
        return "light_vehicle" if gross_kg <= LIGHT_VEHICLE_KG else "heavy_vehicle"
    if axles is not None and axles >= 3:
        return "heavy_vehicle"
    return None


def _add_plate(opened: _Open, plate: PlateObservation, now: float, **detail: object) -> None:
    """A read joins the vehicle's reads (its vote at ``end``) and its trace."""
    opened.plates[plate.position].append(plate)
    opened.saw.add(plate.camera)
    opened.note(
        now,
        "plate",
        position=plate.position.value,
        text=plate.text,
        confidence=round(plate.confidence, 3),
        camera=plate.camera,
        **detail,
    )


def _coming(plate: PlateObservation, opened: _Open, seen: float | None) -> bool:
    """A front plate seen after ``opened``'s lane went clear: the next vehicle coming."""
    return (
        plate.position == PlatePosition.FRONT
        and seen is not None
        and opened.clear_since is not None
        and seen > opened.clear_since
    )


def _holds(opened: _Open, text: str) -> bool:
    """Whether any camera read ``text`` for this vehicle."""
    return any(p.text == text for reads in opened.plates.values() for p in reads)


def _similar(a: str, b: str) -> bool:
    """Two reads that could be one plate misread (at most 2 edits): never a tailgater."""
    return abs(len(a) - len(b)) <= 2 and edit_distance(a, b) <= 2


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance: insertions, deletions and substitutions."""
    previous = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        current = [i]
        for j, cb in enumerate(b, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ca != cb)))
        previous = current
    return previous[-1]


def winner(observations: list[PlateObservation]) -> PlateObservation:
    """The best read of the text that wins the vote (its frame is the evidence)."""
    score: dict[str, float] = defaultdict(float)
    for obs in observations:
        score[obs.text] += obs.confidence
    text = min(score, key=lambda t: (-score[t], t))
    return max((o for o in observations if o.text == text), key=lambda o: o.confidence)


def vote(
    observations: list[PlateObservation], position: PlatePosition, *, top_n: int = 5
) -> PlateRead:
    """Multi-frame vote: texts weighted by summed confidence; the winner's reads give the rest."""
    score: dict[str, float] = defaultdict(float)
    for obs in observations:
        score[obs.text] += obs.confidence
    total = sum(score.values()) or 1.0
    ranked = sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))
    text = ranked[0][0]
    best = winner(observations)
    agreement = score[text] / total
    confidence = round(min(1.0, best.confidence * (0.5 + 0.5 * agreement)), 4)
    return PlateRead(
        text=text,
        raw=best.raw,
        country=best.country,
        type=best.type,
        rows=best.rows,
        confidence=confidence,
        candidates=[Candidate(text=t, confidence=round(s / total, 4)) for t, s in ranked[:top_n]],
        camera=best.camera,
        position=position,
        country_confidence=best.country_confidence,
        layout=best.layout,
        layout_confidence=best.layout_confidence,
        row_texts=None if best.row_texts is None else list(best.row_texts),
    )


def _rounded(value: float | None, digits: int) -> float | None:
    return None if value is None else round(value, digits)
