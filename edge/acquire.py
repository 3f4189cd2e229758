"""Drivers -> readings -> the correlator, inside the agent's asyncio loop.

Every configured device gets its driver from the registry; readings of all drivers land in
one bounded queue. Camera frames are offered for plate reading only while a vehicle is in the
lane or the picture moves, so an empty lane costs almost nothing. Each camera keeps its few most
promising frames per vehicle (``edge/recognize/schedule.py``) and its worker reads them best
first, one at a time in a thread, until one read is sure: a busy controller reads fewer frames
of each vehicle, not fewer vehicles. A frame waiting or being read holds the end of the vehicle
it may show (the correlator's recognition hold), so its plate still joins that vehicle.
What a camera stamps into its pictures (date, time, name) is learned per camera from the
reads (edge/recognize/overlay.py) and never taken for a plate; a configured ``plate_area``
masks on top of it. Cargo is scheduled the same way, in parts of its own: a ``container``
camera keeps its sharpest few frames per vehicle and reads them for container codes once the
vehicle has left its view (or its frames have waited ``CONTAINER_PATIENCE_S``); every frame of
a front or rear camera is searched for orange ADR plates by colour (a few ms), and the frames
showing the largest ones are kept per vehicle and their numbers read, until two reads agree.
Both hold the vehicle's end like a plate read (``edge.cargo``). Drivers push their health
transitions and faults (``drivers.base.DriverObserver``); the ``device-health`` part hands
each change to the correlator (coverage) and to the agent (retained device status), in
order, so an outage shorter than a second is still seen. It also re-reads every driver's
health once a second, for the states that only time changes (DEGRADED ending after
``degraded_hold_s``).

Every task here is a part of the agent's supervisor (``edge.supervisor``): pumps, the
device-health part and the recognisers are restarted with backoff when they fail; fusion is
fatal (the agent exits 1 and systemd restarts it).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, ParamSpec, Protocol, TypeVar

from drivers.base import Driver, Health
from drivers.readings import Frame, Reading
from drivers.registry import create_driver
from edge.cargo.adr_read import OrangeRegion, orange_regions, orange_share
from edge.cargo.container_read import ContainerSighting
from edge.cargo.iso6346 import length_feet
from edge.cargo.readers import CargoReaders
from edge.cargo.xray_link import LinkedScan
from edge.config import LaneConfig
from edge.crossing import CrossingRecord
from edge.events import Candidate, EventType, PlatePosition, SensorState
from edge.evidence import EvidenceFile, EvidenceStore, FrameCache, encode, encode_overview
from edge.fusion.correlator import Correlator
from edge.fusion.model import Device, Emission, NeighbourSighting, PlateObservation
from edge.fusion.settings import fusion_settings
from edge.inbound import InboundError, parse_json
from edge.logs import worth_logging
from edge.metrics import LaneMetrics
from edge.notify import Heartbeats
from edge.recognize import schedule
from edge.recognize.judge import PlateResult
from edge.recognize.motion import MotionGate
from edge.recognize.overlay import OverlayLearner, TextRead
from edge.recognize.schedule import ReadScheduler, ScheduleSettings, Skipped, sharpness
from edge.redact import redact_text
from edge.supervisor import IDLE_BEAT_S, Policy, Supervisor, Uncounted

P = ParamSpec("P")
T = TypeVar("T")

log = logging.getLogger(__name__)

TICK_S = 0.1
HEALTH_POLL_S = 1.0  # re-reading health for what only time changes; transitions are pushed
STARTUP_GRACE_S = 3.0
OVERVIEW_MAX_AGE_S = 2.0  # an older scene frame (a camera stalled) shows another moment
OVERVIEW_CROSSINGS = 16  # open crossings whose scene pictures are kept until their end
OVERVIEW = "overview"  # the overview pictures' key among the evidence files by position
# A container camera's frames: its sharpest few per vehicle, read once the vehicle has left
# its view, or when the oldest has waited CONTAINER_PATIENCE_S (a truck stopped beside the
# camera); one kept longer than CONTAINER_MAX_WAIT_S is given up.
CONTAINER_FRAMES_KEPT = 3
CONTAINER_READS = 4  # per vehicle, at most
CONTAINER_PATIENCE_S = 10.0
CONTAINER_MAX_WAIT_S = 20.0
CONTAINER_POLL_S = 0.2
ADR_FRAMES_KEPT = 3  # frames showing an orange plate, kept per vehicle and camera
ADR_READS = 4  # per vehicle and camera, at most; two agreeing reads end it sooner
ORANGE_CACHE = 64  # frames whose orange boxes are kept for their plate read
ORANGE_FACE = 0.4  # a number-plate read on a box this orange is an ADR plate's digits
ADR_SEARCH_QUEUE = 4  # per camera: frames waiting to be searched; older ones are dropped

EmitFn = Callable[[Emission], Awaitable[None]]
# A front/rear frame kept for its orange plates: the frame, the plates found, its crossing.
_AdrItem = tuple[Frame, list[OrangeRegion], str | None]
HealthFn = Callable[[str, str, SensorState, str | None], None]
EvidenceFn = Callable[[str, list[EvidenceFile]], None]
ScanFn = Callable[[LinkedScan], None]


class Recognizer(Protocol):
    """Reads plates in one frame (``edge.recognize.pipeline.PlateRecognizer``); blocking."""

    def read(self, image: Any) -> list[PlateResult]: ...


class DriverFactory(Protocol):
    """Makes a device's driver (``drivers.registry.create_driver`` in production)."""

    def __call__(
        self, device_id: str, kind: str, options: dict[str, Any], timeout_ms: int
    ) -> Driver: ...


def monotonic_to_utc() -> Callable[[float], datetime]:
    offset = time.time() - time.monotonic()
    return lambda t: datetime.fromtimestamp(offset + t, UTC)


class Acquisition:
    def __init__(
        self,
        config: LaneConfig,
        *,
        emit: EmitFn,
        on_health: HealthFn,
        on_evidence: EvidenceFn = lambda _crossing, _files: None,
        on_scan: ScanFn = lambda _scan: None,
        recognizer: Recognizer | None = None,
        supervisor: Supervisor | None = None,
        metrics: LaneMetrics | None = None,
        driver_factory: DriverFactory = create_driver,
    ) -> None:
        self.config = config
        self.supervisor = supervisor or Supervisor(
            heartbeats=Heartbeats(), counter=Uncounted(), on_fatal=_fatal_without_agent
        )
        self.metrics = metrics
        self._emit = emit
        self._on_scan = on_scan  # an X-ray scan sent on its own topic (late, unmatched)
        self._on_evidence = on_evidence
        self.frames = FrameCache()
        storage = config.storage
        self.evidence = (
            EvidenceStore(
                storage.resolved_state_dir() / "evidence",
                max_bytes=storage.evidence_max_bytes,
                max_age_s=storage.evidence_days * 86400,
            )
            if recognizer is not None
            else None
        )
        self._on_health = on_health
        self.recognizer = recognizer
        self.cargo = CargoReaders.of(recognizer)
        # Plate and cargo reading run here, never on the loop nor the default executor: as
        # many reads at once as the core budget allows (docs/architecture.md, Threads).
        self._reading = ThreadPoolExecutor(
            max_workers=config.recognition.workers, thread_name_prefix="recognize"
        )
        devices = [d for d in config.devices if d.enabled]
        self.kinds = {d.id: d.kind for d in devices}
        self.roles = {d.id: d.role for d in devices}
        self.plate_areas = {d.id: d.plate_area for d in devices if d.plate_area is not None}
        # Each camera's stamped text (date, time, name), learned from its reads.
        self.overlays = {
            d.id: OverlayLearner()
            for d in devices
            if d.kind.startswith("anpr.") and d.role != "overview"
        }
        self.drivers: dict[str, Driver] = {
            d.id: driver_factory(d.id, d.kind, d.driver_options(), d.timeout_ms) for d in devices
        }
        for driver in self.drivers.values():
            driver.observer = self
        self.correlator = Correlator(
            [Device(d.id, d.kind, d.role) for d in devices],
            fusion_settings(config),
            wall=monotonic_to_utc(),
        )
        self.queue: asyncio.Queue[Reading | NeighbourSighting] = asyncio.Queue(maxsize=4096)
        self._loop: asyncio.AbstractEventLoop | None = None
        self.neighbour_errors = 0
        self._schedulers: dict[str, ReadScheduler[Frame]] = {}
        self._scene: dict[str, Frame] = {}  # overview camera -> its newest frame
        # crossing id -> the scene frames taken when it was announced (``new``), until its end.
        self._overview: OrderedDict[str, dict[str, Frame]] = OrderedDict()
        self._gates: dict[str, MotionGate] = {}
        self._frame_ready: asyncio.Event | None = None  # a frame waits to be read
        # Cargo: per container camera its kept frames (capture -> the crossing open then);
        # per front/rear camera the frames showing orange plates, and the reads so far per
        # vehicle (episode) for the two-agree rule; the orange boxes of recent frames.
        self._container_schedulers: dict[str, ReadScheduler[Frame]] = {}
        self._container_waiting: dict[str, dict[float, str]] = {}
        self._container_ready: dict[str, asyncio.Event] = {}
        self._container_reads: dict[tuple[str, int], list[frozenset[str]]] = {}
        self._adr_schedulers: dict[str, ReadScheduler[_AdrItem]] = {}
        self._adr_ready: asyncio.Event | None = None
        self._adr_search: dict[str, deque[tuple[Frame, bool, str | None]]] = {}
        self._adr_reads: dict[tuple[str, int], list[str]] = {}
        self._orange: OrderedDict[tuple[str, float], list[tuple[int, int, int, int]]] = (
            OrderedDict()
        )
        self._states: dict[str, SensorState] = {}
        self._parts: list[str] = []
        # Health transitions pushed by the drivers, in order, for the device-health part.
        self._health_changes: deque[tuple[str, Health]] = deque(maxlen=1024)
        self._health_pushed = asyncio.Event()
        self._grace_until = 0.0
        self.recognition_ms: list[float] = []

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        slowest = max((d.timeout_s for d in self.drivers.values()), default=1.0)
        self._grace_until = time.monotonic() + max(STARTUP_GRACE_S, 2 * slowest)
        for device_id, driver in self.drivers.items():
            await driver.open()
            self._spawn(f"pump:{device_id}", functools.partial(self._pump, driver), Policy.RESTART)
        self._spawn("fusion", self._fuse, Policy.FATAL, progress=True)
        self._spawn("device-health", self._watch_health, Policy.RESTART, progress=True)

    def _spawn(
        self,
        name: str,
        factory: Callable[[], Awaitable[None]],
        policy: Policy,
        *,
        progress: bool = False,
    ) -> None:
        self.supervisor.spawn(name, factory, policy=policy, progress=progress)
        self._parts.append(name)

    async def stop(self) -> None:
        """Close every driver and end the crossing in progress (``end_reason: shutdown``)."""
        await self.supervisor.stop(*self._parts)
        self._parts = []
        for driver in self.drivers.values():
            with contextlib.suppress(Exception):
                await driver.close()
        await self._handle(self.correlator.shutdown(time.monotonic()))
        self._reading.shutdown(wait=False, cancel_futures=True)

    async def _in_reader(self, fn: Callable[P, T], /, *args: P.args, **kwargs: P.kwargs) -> T:
        """Run plate or cargo reading on the recognition threads (``recognition.workers``)."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._reading, functools.partial(fn, *args, **kwargs))

    def device_health(self) -> dict[str, SensorState]:
        return {d: drv.health().state for d, drv in self.drivers.items()}

    # --- what the drivers push (drivers.base.DriverObserver) ------------------------------

    def driver_health(self, device_id: str, health: Health) -> None:
        self._health_changes.append((device_id, health))
        self._health_pushed.set()

    def driver_fault(self, device_id: str, kind: str, count: int) -> None:
        if self.metrics is not None:
            self.metrics.device_fault(device_id, kind, count)

    def driver_crashed(self, device_id: str, error: BaseException) -> None:
        """A driver bug: the driver logged its traceback once and restarts its session."""
        if self.metrics is not None:
            self.metrics.stage_failed(f"device:{device_id}")
            self.metrics.part_restarted(f"device:{device_id}")

    # --- tasks --------------------------------------------------------------------------

    async def _pump(self, driver: Driver) -> None:
        async for reading in driver.readings():
            if isinstance(reading, Frame):
                if self.roles.get(reading.device_id) == "overview":
                    self._scene[reading.device_id] = reading  # newest wins
                else:
                    await self._offer_frame(reading)
            else:
                await self.queue.put(reading)

    def _scheduler(self, camera: str) -> ReadScheduler[Frame]:
        """The camera's scheduler, made with its first frame (the reading task with the first
        camera's)."""
        scheduler = self._schedulers.get(camera)
        if scheduler is None:
            r = self.config.recognition
            scheduler = self._schedulers[camera] = ReadScheduler(
                ScheduleSettings(
                    frames_per_vehicle=r.frames_per_vehicle,
                    candidates_per_vehicle=r.candidates_per_vehicle,
                    sure_confidence=r.sure_confidence,
                    max_latency_s=r.max_latency_s,
                    follows_leaving=self.roles.get(camera) in ("rear", "trailer"),
                )
            )
        if self._frame_ready is None:
            self._frame_ready = asyncio.Event()
            self._spawn("recognize", self._recognize, Policy.RESTART, progress=True)
        return scheduler

    async def _offer_frame(self, frame: Frame) -> None:
        if self.recognizer is None:
            return
        camera = frame.device_id
        gate = self._gates.setdefault(camera, MotionGate())
        moving = gate.changed(frame.image, frame.thumbnail)
        current = self.correlator.current
        if not moving and current is None:
            return  # an empty, still lane: no OCR
        if self.roles.get(camera) == "container":
            await self._offer_container_frame(camera, frame, moving)
            return
        if self.cargo is not None and self.roles.get(camera) in ("front", "rear"):
            self._offer_adr_frame(camera, frame, moving)
        scheduler = self._scheduler(camera)
        if self.metrics is not None:
            self.metrics.frame_offered(camera)
        kept, skipped = scheduler.offer(
            frame,
            captured=frame.monotonic,
            promise=lambda: sharpness(frame.image, self.plate_areas.get(camera)),
            moving=moving,
            # A lane gone clear shows no vehicle in it: the next one may be coming.
            crossing=current.record.crossing_id
            if current is not None and current.clear_since is None
            else None,
        )
        if kept is not None:
            # From now until its read is over (or it is given up) the frame holds the end of
            # the vehicle it may show.
            await self._handle(
                self.correlator.on_recognition_started(camera, frame.monotonic, time.monotonic())
            )
        else:  # given up at once: counted, but never held anything
            for each in [s for s in skipped if s.candidate.item is frame]:
                if self.metrics is not None:
                    self.metrics.frame_skipped(camera, each.reason)
            skipped = [s for s in skipped if s.candidate.item is not frame]
        await self._skip(camera, skipped)
        assert self._frame_ready is not None
        self._frame_ready.set()

    def _open_crossing(self) -> str | None:
        """The crossing of the vehicle in the lane (None: none, or the lane is clear)."""
        current = self.correlator.current
        if current is None or current.clear_since is not None:
            return None
        return current.record.crossing_id

    async def _offer_container_frame(self, camera: str, frame: Frame, moving: bool) -> None:
        """A container camera's frame: kept among its vehicle's sharpest few, or given up."""
        scheduler = self._container_schedulers.get(camera)
        if scheduler is None:
            scheduler = self._container_schedulers[camera] = ReadScheduler(
                ScheduleSettings(
                    frames_per_vehicle=CONTAINER_READS,
                    candidates_per_vehicle=CONTAINER_FRAMES_KEPT,
                    sure_confidence=1.0,
                    max_latency_s=CONTAINER_MAX_WAIT_S,
                )
            )
            self._container_waiting[camera] = {}
            self._container_ready[camera] = asyncio.Event()
            self._spawn(
                f"containers:{camera}",
                functools.partial(self._read_containers, camera),
                Policy.RESTART,
                progress=True,
            )
        crossing = self._open_crossing()
        if crossing is None:
            return  # no vehicle in the lane: nothing on the side camera is its cargo
        if self.metrics is not None:
            self.metrics.frame_offered(camera)
        kept, skipped = scheduler.offer(
            frame,
            captured=frame.monotonic,
            promise=lambda: sharpness(frame.image),
            moving=moving,
            crossing=crossing,
        )
        waiting = self._container_waiting[camera]
        if kept is not None:
            waiting[frame.monotonic] = crossing
            await self._handle(
                self.correlator.on_recognition_started(camera, frame.monotonic, time.monotonic())
            )
        else:
            for each in [s for s in skipped if s.candidate.item is frame]:
                if self.metrics is not None:
                    self.metrics.frame_skipped(camera, each.reason)
            skipped = [s for s in skipped if s.candidate.item is not frame]
        for each in skipped:
            waiting.pop(each.candidate.captured, None)
        await self._skip(camera, skipped)
        self._container_ready[camera].set()

    def _offer_adr_frame(self, camera: str, frame: Frame, moving: bool) -> None:
        """A front or rear frame, queued to be searched for orange plates by the ``adr`` part
        (the newest few per camera: the search is a few ms, but not in the pump's loop)."""
        crossing = self._open_crossing()
        if crossing is None and self.roles.get(camera) == "front":
            # No vehicle in the lane yet: what a front camera sees is the next one coming,
            # searched once it is in (read now, it would join the vehicle still leaving).
            return
        queue = self._adr_search.get(camera)
        if queue is None:
            queue = self._adr_search[camera] = deque(maxlen=ADR_SEARCH_QUEUE)
        queue.append((frame, moving, crossing))
        if self._adr_ready is None:
            self._adr_ready = asyncio.Event()
            self._spawn("adr", self._read_adr_plates, Policy.RESTART, progress=True)
        self._adr_ready.set()

    async def _search_adr_frame(
        self, camera: str, frame: Frame, moving: bool, crossing: str | None
    ) -> None:
        """One queued frame searched for orange plates (colour and layout); one showing any
        is kept among its vehicle's few with the largest plates."""
        regions = await asyncio.to_thread(orange_regions, frame.image)
        self._orange[(camera, frame.monotonic)] = [r.box for r in regions]
        while len(self._orange) > ORANGE_CACHE:
            self._orange.popitem(last=False)
        if not regions:
            return
        scheduler = self._adr_schedulers.get(camera)
        if scheduler is None:
            scheduler = self._adr_schedulers[camera] = ReadScheduler(
                ScheduleSettings(
                    frames_per_vehicle=ADR_READS,
                    candidates_per_vehicle=ADR_FRAMES_KEPT,
                    sure_confidence=1.0,
                    max_latency_s=self.config.recognition.max_latency_s,
                    follows_leaving=self.roles.get(camera) == "rear",
                )
            )
        key = _adr_key(camera)
        kept, skipped = scheduler.offer(
            (frame, regions, crossing),
            captured=frame.monotonic,
            promise=max(r.box[2] * r.box[3] for r in regions),  # the nearest plate first
            moving=moving,
            crossing=crossing,
        )
        if kept is not None:
            await self._handle(
                self.correlator.on_recognition_started(key, frame.monotonic, time.monotonic())
            )
        skipped = [s for s in skipped if s.candidate.item[0] is not frame]
        await self._release_held(key, [s.candidate.captured for s in skipped])

    async def _release_held(self, key: str, captured: list[float]) -> None:
        """Cargo frames given up or read: they hold their vehicle's end no longer. (Not counted
        as the camera's plate reads: ``read=False``.)"""
        for each in captured:
            await self._handle(
                self.correlator.on_recognition_done(key, each, time.monotonic(), read=False)
            )

    async def _release_adr(self, camera: str, skipped: list[Skipped[_AdrItem]]) -> None:
        await self._release_held(_adr_key(camera), [s.candidate.captured for s in skipped])

    async def _skip(self, camera: str, skipped: list[Skipped[Frame]]) -> None:
        for each in skipped:
            if self.metrics is not None:
                self.metrics.frame_skipped(camera, each.reason)
            await self._handle(
                self.correlator.on_recognition_done(
                    camera, each.candidate.captured, time.monotonic(), read=False
                )
            )

    async def _recognize(self) -> None:
        """The one reading task. The cameras share the recogniser (it reads one frame at a
        time), so the most urgent waiting frame of any camera goes next: a vehicle no camera
        read yet before a second read of another."""
        assert self._frame_ready is not None
        ready = self._frame_ready
        while True:
            self.supervisor.beat("recognize")  # idle (no vehicle) or not: it makes progress
            ready.clear()
            camera = await _most_urgent(self._schedulers, self._skip)
            if camera is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_BEAT_S):
                        await ready.wait()
                continue
            scheduler = self._schedulers[camera]
            candidate, skipped = scheduler.take(time.monotonic())
            await self._skip(camera, skipped)
            if candidate is not None:
                position = PlatePosition(self.roles.get(camera) or "front")
                await self._read_candidate(camera, scheduler, candidate, position)

    async def _read_candidate(
        self,
        camera: str,
        scheduler: ReadScheduler[Frame],
        candidate: schedule.Candidate[Frame],
        position: PlatePosition,
    ) -> None:
        frame = candidate.item
        try:
            orange = await self._orange_boxes(camera, frame, position)
            confidence = await self._read(camera, frame, position, orange)
        except Exception:  # the supervisor logs it and restarts the part; the hold ends
            await self._skip(camera, scheduler.finished(candidate, confidence=None))
            await self._handle(
                self.correlator.on_recognition_done(camera, frame.monotonic, time.monotonic())
            )
            raise
        await self._skip(camera, scheduler.finished(candidate, confidence=confidence))
        # Plates first, then done: a done first could end the vehicle without them.
        await self._handle(
            self.correlator.on_recognition_done(camera, frame.monotonic, time.monotonic())
        )

    async def _read(
        self,
        camera: str,
        frame: Frame,
        position: PlatePosition,
        orange: list[tuple[int, int, int, int]] | None = None,
    ) -> float | None:
        """One frame through the recogniser; its plates to the correlator. Returns the surest
        plate's confidence (None: no plate).

        A recogniser that raises ends the reading part: the supervisor logs the traceback once
        and restarts it with backoff (frames wait in the schedulers meanwhile)."""
        start = time.perf_counter()
        assert self.recognizer is not None  # _offer_frame starts no reader without one
        results = await self._in_reader(self.recognizer.read, frame.image)
        spent = time.perf_counter() - start
        self.recognition_ms.append(spent * 1000)
        del self.recognition_ms[:-1000]
        if self.metrics is not None:
            self.metrics.observe_recognition(spent, camera=camera)
        now = time.monotonic()
        height, width = frame.image.shape[:2]
        area = self.plate_areas.get(camera)
        overlay = self.overlays.setdefault(camera, OverlayLearner())
        current = self.correlator.current
        surest: float | None = None
        stamped = overlay.observe(
            [TextRead(r.box, r.text, r.raw) for r in results],
            width=width,
            height=height,
            crossing=current.record.crossing_id if current is not None else None,
        )
        for result, stamp in zip(results, stamped, strict=True):
            if result.confidence < self.config.recognition.min_confidence or stamp:
                continue  # unsure, or the camera's own date/time/name text
            if area is not None and not _inside(result.box, area, width, height):
                continue  # the camera's overlay text, a sign, a parked car's plate
            if (orange and any(_within(result.box, box) for box in orange)) or (
                self.cargo is not None and orange_share(frame.image, result.box) >= ORANGE_FACE
            ):
                continue  # the digits of an orange ADR plate, not a number plate
            surest = max(surest or 0.0, result.confidence)
            await self._handle(
                self.correlator.on_plate(
                    PlateObservation(
                        camera=camera,
                        position=position,
                        text=result.text,
                        confidence=min(1.0, max(0.0, result.confidence)),
                        raw=result.raw,
                        country=result.country,
                        type=result.type,
                        rows=result.rows,
                        candidates=tuple(
                            Candidate(text=c.text, confidence=min(1.0, c.confidence))
                            for c in result.candidates
                        ),
                        captured_at=frame.captured_at,
                        frame_key=self.frames.put(frame.image, result.box),
                        country_confidence=round(result.country_confidence, 4),
                        layout=result.layout,
                        layout_confidence=round(result.layout_confidence, 4),
                        row_texts=result.row_texts or (result.text,),
                    ),
                    now,
                    seen=frame.monotonic,
                )
            )
        return surest

    def _not_ended(self, crossing: str | None) -> bool:
        """Whether that crossing is still in the lane or leaving (its event not out yet)."""
        current = self.correlator.current
        if current is not None and current.record.crossing_id == crossing:
            return True
        return any(leaving.record.crossing_id == crossing for leaving in self.correlator.closing)

    def _container_due(self, camera: str, now: float) -> bool:
        """Whether the container camera's kept frames are read now: their vehicle has left
        its view (another crossing, or the lane clear), or the oldest has waited long enough.
        Reading while the side of the truck still passes would spend the reads on its first
        frames, not its best."""
        waiting = self._container_waiting.get(camera) or {}
        if not waiting:
            return False
        open_now = self._open_crossing()
        if open_now is None or any(c != open_now for c in waiting.values()):
            return True
        return now - min(waiting) >= CONTAINER_PATIENCE_S

    async def _read_containers(self, camera: str) -> None:
        """A ``container`` camera's kept frames: container codes, no plates (edge.cargo).

        Its vehicle's sharpest frames are read best first once it has left the camera's view,
        until the codes are settled (``_read_container_frame``) or ``CONTAINER_READS`` are
        spent; each frame holds the vehicle's end from when it was kept until its read is
        over."""
        ready = self._container_ready[camera]
        scheduler = self._container_schedulers[camera]
        waiting = self._container_waiting[camera]
        part = f"containers:{camera}"
        while True:
            self.supervisor.beat(part)  # idle (no vehicle) or not: this part makes progress
            now = time.monotonic()
            expired = scheduler.expire(now)
            for each in expired:
                waiting.pop(each.candidate.captured, None)
            await self._skip(camera, expired)
            if scheduler.peek() is None or not self._container_due(camera, now):
                ready.clear()
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(CONTAINER_POLL_S if waiting else IDLE_BEAT_S):
                        await ready.wait()
                continue
            candidate, skipped = scheduler.take(now)
            for each in skipped:
                waiting.pop(each.candidate.captured, None)
            await self._skip(camera, skipped)
            if candidate is None:
                continue
            crossing = waiting.pop(candidate.captured, None)
            if not self._not_ended(crossing):
                # Its vehicle's event is out (its end could wait no longer): read now, its
                # codes would join the next vehicle.
                await self._skip(camera, [Skipped(candidate, "late")])
                continue
            # Its vehicle has left the camera's view: the frame read is the best of its pass.
            complete = crossing != self._open_crossing()
            # The hold restarts with the read: a frame kept long ago (the whole pass of a
            # slow truck) still holds its vehicle's end while it is read.
            await self._handle(
                self.correlator.on_recognition_started(camera, candidate.captured, now)
            )
            await self._read_container_frame(
                camera, scheduler, candidate, crossing=crossing, complete=complete
            )

    async def _read_container_frame(
        self,
        camera: str,
        scheduler: ReadScheduler[Frame],
        candidate: schedule.Candidate[Frame],
        *,
        crossing: str | None,
        complete: bool,
    ) -> None:
        frame = candidate.item
        found: list[ContainerSighting] = []
        try:
            if self.cargo is not None:
                found = await self._in_reader(self.cargo.containers.read, frame.image)
        except Exception as exc:  # one bad frame must not stop the camera
            log.warning("container reading failed on %s: %s", camera, exc)
        if found and not self._not_ended(crossing):
            # Its vehicle ended while the frame was read (its end could wait no longer): the
            # codes are dropped, not given to the vehicle in the lane now.
            log.info("container codes read after their vehicle ended, dropped: %s", camera)
            found = []
        for sighting in found:
            await self._handle(
                self.correlator.on_container(
                    sighting, camera, time.monotonic(), seen=frame.monotonic
                )
            )
        # Its other frames are not needed after: a read of every box a unit can carry, all
        # check digits right (one 40 or 45 ft box, or two boxes); two reads with the same
        # codes; or no code at all in the sharpest frame of its whole pass (a truck without
        # containers). An empty read while it still passes may be a frame before its boxes.
        reads = self._container_reads.setdefault((camera, candidate.vehicle), [])
        codes = frozenset(s.code for s in found)
        sure = (codes in reads or _every_box(found)) if codes else complete
        reads.append(codes)
        while len(self._container_reads) > 64:
            del self._container_reads[next(iter(self._container_reads))]
        skipped = scheduler.finished(candidate, confidence=1.0 if sure else None)
        for each in skipped:
            self._container_waiting.get(camera, {}).pop(each.candidate.captured, None)
        await self._skip(camera, skipped)
        await self._handle(
            self.correlator.on_recognition_done(camera, frame.monotonic, time.monotonic())
        )

    async def _read_adr_plates(self) -> None:
        """The orange plates of the kept front and rear frames: the most urgent first (a
        vehicle none of whose frames was read yet before a second read of another)."""
        assert self._adr_ready is not None
        ready = self._adr_ready
        while True:
            self.supervisor.beat("adr")
            ready.clear()
            # Frames waiting to be searched first, one per camera in turn (the search is
            # cheap, and it decides which frames are kept for reading).
            searched = False
            for camera, queue in list(self._adr_search.items()):
                if queue:
                    await self._search_adr_frame(camera, *queue.popleft())
                    searched = True
            if searched:
                continue
            urgent = await _most_urgent(self._adr_schedulers, self._release_adr)
            if urgent is None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(IDLE_BEAT_S):
                        await ready.wait()
                continue
            camera = urgent
            scheduler = self._adr_schedulers[camera]
            candidate, skipped = scheduler.take(time.monotonic())
            key = _adr_key(camera)
            await self._release_held(key, [s.candidate.captured for s in skipped])
            if candidate is not None:
                await self._read_adr_frame(camera, scheduler, candidate)

    async def _read_adr_frame(
        self,
        camera: str,
        scheduler: ReadScheduler[_AdrItem],
        candidate: schedule.Candidate[_AdrItem],
    ) -> None:
        frame, regions, crossing = candidate.item
        position = self.roles.get(camera) or "front"
        plates = []
        try:
            if self.cargo is not None:
                read = await self._in_reader(
                    self.cargo.adr.read_regions,
                    frame.image,
                    regions,
                    position=position,
                    device=camera,
                )
                plates = [plate for plate, _box in read]
        except Exception as exc:  # one bad frame must not stop the camera
            log.warning("orange plate reading failed on %s: %s", camera, exc)
        if plates and crossing is not None and not self._not_ended(crossing):
            plates = []  # its vehicle ended meanwhile: not given to the one in the lane now
        for plate in plates:
            await self._handle(
                self.correlator.on_adr(plate, time.monotonic(), seen=frame.monotonic)
            )
        # Two reads of one vehicle's plate that agree (numbers, or blank): enough.
        reads = self._adr_reads.setdefault((camera, candidate.vehicle), [])
        labels = [p.label for p in plates if p.readable]
        sure = any(label in reads for label in labels)
        reads.extend(labels)
        while len(self._adr_reads) > 64:
            del self._adr_reads[next(iter(self._adr_reads))]
        skipped = scheduler.finished(candidate, confidence=1.0 if sure else None)
        key = _adr_key(camera)
        await self._release_held(key, [s.candidate.captured for s in skipped])
        await self._release_held(key, [frame.monotonic])

    async def _orange_boxes(
        self, camera: str, frame: Frame, position: PlatePosition
    ) -> list[tuple[int, int, int, int]]:
        """The orange plates' boxes in a front or rear frame (no number plate is there)."""
        if self.cargo is None or position not in (PlatePosition.FRONT, PlatePosition.REAR):
            return []
        boxes = self._orange.get((camera, frame.monotonic))
        if boxes is None:
            try:
                regions = await asyncio.to_thread(orange_regions, frame.image)
            except Exception as exc:  # one bad frame must not stop the camera
                log.warning("orange plate search failed on %s: %s", camera, exc)
                return []
            boxes = [r.box for r in regions]
        return boxes

    def neighbour_crossing(self, lane: str, payload: bytes) -> None:
        """A neighbouring lane's crossing event (any thread): its plates, for cross-checks."""
        mqtt = self.config.mqtt
        try:
            event = parse_json(
                payload, max_bytes=mqtt.max_neighbour_bytes, max_depth=mqtt.max_json_depth
            )
            if not isinstance(event, dict):
                raise InboundError("a crossing event is a JSON object")
            sighting = NeighbourSighting(
                lane=lane,
                crossing_id=str(event["crossing_id"]),
                plates=frozenset(str(p["text"]) for p in event.get("plates") or ()),
                start=datetime.fromisoformat(event["start"]),
                end=datetime.fromisoformat(event["end"]) if event.get("end") else None,
            )
            if any(t is not None and t.tzinfo is None for t in (sighting.start, sighting.end)):
                raise ValueError("start/end without a UTC offset")
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            self.neighbour_errors += 1
            if worth_logging(self.neighbour_errors):
                log.warning(
                    "unreadable crossing event from lane %s (%d so far): %s",
                    lane,
                    self.neighbour_errors,
                    exc,
                )
            return
        if sighting.plates and self._loop is not None:
            self._loop.call_soon_threadsafe(self._offer_neighbour, sighting)

    def _offer_neighbour(self, sighting: NeighbourSighting) -> None:
        with contextlib.suppress(asyncio.QueueFull):  # full: drop the cross-check, not a reading
            self.queue.put_nowait(sighting)

    async def _fuse(self) -> None:
        while True:
            try:
                async with asyncio.timeout(TICK_S):
                    reading = await self.queue.get()
            except TimeoutError:
                emissions = self.correlator.tick(time.monotonic())
            else:
                if isinstance(reading, NeighbourSighting):
                    emissions = self.correlator.on_neighbour(reading, time.monotonic())
                else:
                    emissions = self.correlator.on_reading(reading, time.monotonic())
            self.supervisor.beat("fusion")
            await self._handle(emissions)

    async def _handle(self, emissions: list[Emission]) -> None:
        for emission in emissions:
            await self._deliver(emission)
        for scan in self.correlator.take_scans():  # after the crossings they may refer to
            self._on_scan(scan)

    async def _deliver(self, emission: Emission) -> None:
        """An ``end`` takes its evidence along: files first, then the event naming them."""
        record = emission.record
        if emission.type == EventType.NEW:
            self._take_overview(record.crossing_id)
        scene = self._overview.pop(record.crossing_id, {}) if emission.type == EventType.END else {}
        if emission.type == EventType.END and (record.evidence_keys or scene) and self.evidence:
            try:
                files = await asyncio.to_thread(self._save_evidence, record, scene)
            except OSError as exc:  # a full disk must not cost the crossing
                log.error("evidence of crossing %s not saved: %s", record.crossing_id, exc)
                files = {}
            overview = files.pop(OVERVIEW, [])
            record.overview = [f.reference() for f in overview]
            record.plates = [
                p.model_copy(update={"evidence": [f.reference() for f in files[p.position]]})
                if p.position in files
                else p
                for p in record.plates
            ]
            await self._emit(emission)
            for position_files in [*files.values(), overview]:
                if position_files:
                    self._on_evidence(record.crossing_id, position_files)
            return
        await self._emit(emission)

    def _take_overview(self, crossing_id: str) -> None:
        """Each overview camera's newest frame, as the crossing is announced (still fresh)."""
        now = time.monotonic()
        shots = {
            camera: frame
            for camera, frame in self._scene.items()
            if now - frame.monotonic <= OVERVIEW_MAX_AGE_S
        }
        if shots:
            self._overview[crossing_id] = shots
            while len(self._overview) > OVERVIEW_CROSSINGS:
                self._overview.popitem(last=False)

    def _save_evidence(
        self, record: CrossingRecord, scene: dict[str, Frame]
    ) -> dict[str, list[EvidenceFile]]:
        assert self.evidence is not None
        files: dict[str, list[EvidenceFile]] = {}
        for position, key in record.evidence_keys.items():
            cached = self.frames.get(key)
            if cached is not None:
                files[position] = encode(*cached, position)
        for camera, frame in sorted(scene.items()):
            picture = encode_overview(frame.image, camera)
            if picture is not None:
                files.setdefault(OVERVIEW, []).append(picture)
        self.evidence.write(record.crossing_id, [f for fs in files.values() for f in fs])
        return files

    async def _watch_health(self) -> None:
        """Each pushed health change in order; every driver's health again once a second."""
        reread_at = 0.0
        while True:
            self.supervisor.beat("device-health")
            while self._health_changes:
                device_id, health = self._health_changes.popleft()
                await self._apply_health(device_id, health)
            if time.monotonic() >= reread_at:
                reread_at = time.monotonic() + HEALTH_POLL_S
                for device_id, driver in self.drivers.items():
                    await self._apply_health(device_id, driver.health())
            self._health_pushed.clear()
            if self._health_changes:
                continue
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(min(IDLE_BEAT_S, reread_at - time.monotonic())):
                    await self._health_pushed.wait()

    async def _apply_health(self, device_id: str, health: Health) -> None:
        state = health.state
        first = device_id not in self._states
        if first and state == SensorState.DOWN and time.monotonic() < self._grace_until:
            return  # still connecting: no DOWN line for a device that is coming up
        if self._states.get(device_id) == state:
            return
        self._states[device_id] = state
        reason = health.last_error if state != SensorState.UP else None
        if reason is not None:  # it goes into status, crossings, log: no secret
            reason = redact_text(reason)
        await self._handle(self.correlator.on_health(device_id, state, reason, time.monotonic()))
        self._on_health(device_id, self.kinds[device_id], state, reason)


def _within(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int]) -> bool:
    """Whether the centre of box ``inner`` lies in box ``outer`` (x, y, w, h)."""
    cx, cy = inner[0] + inner[2] / 2, inner[1] + inner[3] / 2
    return outer[0] <= cx <= outer[0] + outer[2] and outer[1] <= cy <= outer[1] + outer[3]


def _inside(
    box: tuple[int, int, int, int], area: tuple[float, float, float, float], width: int, height: int
) -> bool:
    """Whether the box's centre lies in the area (fractions of the frame)."""
    cx = (box[0] + box[2] / 2) / width
    cy = (box[1] + box[3] / 2) / height
    x, y, w, h = area
    return x <= cx <= x + w and y <= cy <= y + h


def _fatal_without_agent(part: str, exc: BaseException) -> None:
    log.critical("%s failed and no agent supervises this acquisition: %r", part, exc)


def _adr_key(camera: str) -> str:
    """The key an ADR read holds its vehicle's end by (apart from the camera's plate reads of
    the same frame)."""
    return f"{camera}#adr"


def _every_box(found: list[ContainerSighting]) -> bool:
    """Whether one frame's codes are all a unit carries, each with its check digit right:
    one 40 or 45 ft box, or two boxes (ISO 6346 lengths; a unit carries no more)."""
    if not found or not all(s.verification.check_digit_ok for s in found):
        return False
    long_box = any((length_feet(s.size_type or "") or 0) >= 40 for s in found)
    return len(found) >= 2 or long_box


async def _most_urgent(
    schedulers: dict[str, ReadScheduler[T]],
    expired: Callable[[str, list[Skipped[T]]], Awaitable[None]],
) -> str | None:
    """The camera whose waiting frame is most urgent (None: no frame waits); each
    scheduler's expired frames go to ``expired`` on the way."""
    now = time.monotonic()
    chosen: tuple[schedule.Urgency, str] | None = None
    for camera, scheduler in list(schedulers.items()):
        await expired(camera, scheduler.expire(now))
        urgency = scheduler.peek()
        if urgency is not None and (chosen is None or urgency < chosen[0]):
            chosen = (urgency, camera)
    return None if chosen is None else chosen[1]
