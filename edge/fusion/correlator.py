"""Readings -> crossings: the lane state machine's inputs. Pure: no I/O, no clock, no threads.

Every input carries ``now``, the agent's monotonic receive time in seconds, so a recorded
lane replays through it deterministically and device clock skew never matters (device
timestamps are kept as evidence, not used for ordering). Each input puts its evidence on the
vehicle it belongs to and ends in a tick (:mod:`edge.fusion.lifecycle`): the frames in plate
recognition (``on_recognition_started`` .. ``on_recognition_done``) hold the ``end`` of the
vehicle they may show. A scan that arrives after its crossing's end, or fits none, is handed
out alone (``take_scans``), see :mod:`edge.cargo.xray_link`.
"""

from __future__ import annotations

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
from edge.cargo.xray import CrossingWindow, match_scan
from edge.cargo.xray_link import LinkedScan
from edge.events import PlatePosition, SensorState
from edge.fusion.lifecycle import Lifecycle
from edge.fusion.model import Emission, NeighbourSighting, OpenCrossing, PlateObservation
from edge.fusion.plates import add_plate, place
from edge.fusion.records import scanner_plates

OCCUPANCY_LINES = {"GS", "GA", "NS", "NA"}
NEIGHBOUR_LIMIT = 200
# Frames in recognition at once: each camera's waiting candidates (edge/recognize/schedule.py)
# and the one it is reading.
RECOGNITION_LIMIT = 128
# How fast a thermal region's empty-lane floor may rise: 1 C a minute.
THERMAL_FLOOR_RISE_C_PER_S = 1 / 60


class Correlator(Lifecycle):
    """Feed readings, plates, health changes and ticks; get crossing emissions back."""

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
            out += self._on_occupancy(reading, now)
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

    def _on_occupancy(self, reading: RpmOccupancy, now: float) -> list[Emission]:
        out: list[Emission] = []
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
        return out

    def on_plate(
        self, plate: PlateObservation, now: float, *, seen: float | None = None
    ) -> list[Emission]:
        """A plate read; ``seen`` is when its frame was captured (recognition takes time)."""
        out: list[Emission] = []
        current = self.current
        placed = place(
            plate,
            now,
            seen,
            current=current,
            closing=self.closing,
            previous=self._previous_plates,
            ended_at=self._ended_at,
            settings=self.settings,
        )
        if placed.where == "parked":
            if current is not None:
                why = "the previous vehicle's plate, still in view"
                current.note(now, "plate ignored", text=plate.text, why=why)
            return self.tick(now)
        if placed.where == "late":
            assert placed.vehicle is not None
            add_plate(placed.vehicle, plate, now, late=True)  # a vehicle settling, left
            return self.tick(now)
        if placed.where == "coming":
            assert current is not None
            self._recent_plates.append((now, plate))
            current.note(now, "plate kept", text=plate.text, why="the next vehicle's, coming")
            return self.tick(now)
        if placed.where == "stale":
            assert current is not None
            why = "captured before this vehicle arrived"
            current.note(now, "plate ignored", text=plate.text, why=why)
            return self.tick(now)
        if placed.where == "rival":
            assert current is not None
            current.rivals.append((now, plate))
            current.note(now, "plate held", text=plate.text, why="unlike this vehicle's")
            self._last_seen["camera"] = now
            return self.tick(now)
        if placed.where == "tailgate":
            # A second tractor under one presence, read twice: tailgating. The first vehicle
            # ends, and the second starts, where its plate was first read.
            assert current is not None
            current.rivals = [r for r in current.rivals if r not in placed.held]
            came = placed.held[0][0]
            current.clear_since = came
            current.note(now, "tailgating", new_front_plate=plate.text)
            out += self._finish(current, "tailgating", now)
            out += self._start(came)
            current = self.current
            assert current is not None
            current.plates[PlatePosition.FRONT].extend(r for _t, r in placed.held)
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
            add_plate(current, plate, now)
            if plate.position == PlatePosition.FRONT and current.front_since is None:
                current.front_since = now
            if first:
                out += self._update(current, f"plate:{plate.position}")
        return out + self.tick(now)

    # --- frames in plate recognition ----------------------------------------------------

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
        shown: OpenCrossing | None = None
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

    def on_neighbour(self, sighting: NeighbourSighting, now: float) -> list[Emission]:
        """A crossing event of a neighbouring lane (its plates and times), for cross-checks."""
        if sighting.plates:
            self._neighbours.pop(sighting.crossing_id, None)
            self._neighbours[sighting.crossing_id] = sighting
            while len(self._neighbours) > NEIGHBOUR_LIMIT:
                del self._neighbours[next(iter(self._neighbours))]
        return self.tick(now)

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

    def _cargo_target(self, seen: float) -> OpenCrossing | None:
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

    def _window(self, opened: OpenCrossing) -> CrossingWindow:
        left = opened.clear_since
        return CrossingWindow(
            opened.record.crossing_id,
            opened.record.start,
            self.wall(left) if left is not None else None,
            scanner_plates(opened),
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

    # --- thermal: the empty lane --------------------------------------------------------

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
