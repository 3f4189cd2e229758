"""The scenario engine: one YAML file drives every simulator of a lane consistently.

A scenario is a timeline of vehicles (class, axles, plates, weights, radiation and
thermal profiles, speed, gaps) plus fault injections, deterministic from a seed. Times in
the file are device seconds; ``speedup`` compresses them for tests (the RPM still sends
200 ms count lines, just faster). :class:`SimulatedLane` starts the simulators, prints
their endpoints and a matching lane config, runs the timeline and writes the ground truth
of every vehicle (one JSON object a line).

Per vehicle, with D its dwell time on the lane (length / speed, at least 6 s):
  0.0-0.3 D  front camera sees the cab approaching; entry loop occupied 0.1-0.5 D
  0.1-0.3 D  weight ramps up (motion), 0.3-0.8 D stable at gross, 0.8-0.9 D ramps down
  0.3-0.7 D  RPM occupancy (GS/NS lines ... GX); light curtain blocked 0.3-0.8 D
  0.3-0.8 D  thermal regions show the vehicle's profile
  0.7-1.0 D  rear camera sees the trailer; exit loop occupied 0.8-0.95 D
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import math
import random
import shutil
import tempfile
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from simulators.camera import CameraSimulator
from simulators.cargo import CARGO_SEED, CargoPlan, CargoSpec, plan_cargo, render_side
from simulators.modbus import AspectSimulator, AspectTruth, LaneIoSimulator, ThermalSimulator
from simulators.render import OSD_BAND_PX, Plate, SceneVehicle, make_plate, render_scene
from simulators.rpm import RapiscanSimulator, RpmVehicle
from simulators.rtsp import RtspCameraSimulator
from simulators.weighbridge import WeighbridgeSimulator

COUNTRIES: tuple[Literal["KZ", "RU", "UZ", "KG", "CN", "EU"], ...]
COUNTRIES = ("KZ", "RU", "UZ", "KG", "CN", "EU")
VehicleClass = Literal["car", "van", "truck", "truck_trailer", "bus"]
_CLASS_DEFAULTS: dict[str, tuple[int, tuple[float, float], float]] = {
    # axles, gross kg range, length m
    "car": (2, (1_200, 2_400), 4.5),
    "van": (2, (2_500, 3_500), 6.0),
    "bus": (2, (11_000, 18_000), 12.0),
    "truck": (3, (9_000, 26_000), 10.0),
    "truck_trailer": (5, (14_000, 44_000), 16.5),
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PlateSpec(Strict):
    country: Literal["KZ", "RU", "UZ", "KG", "CN", "EU"] = "KZ"
    text: str | None = Field(None, description="Omit to draw one from the seed.")


class VehicleSpec(Strict):
    vehicle_class: VehicleClass = Field("truck_trailer", alias="class")
    axles: int | None = Field(None, ge=2, le=9)
    front: PlateSpec | None = None
    rear: PlateSpec | None = None
    trailer: PlateSpec | None = None
    gross_kg: float | None = Field(None, gt=0, le=120_000)
    radiation: Literal["none", "norm", "source"] = "none"
    thermal: Literal["normal", "hot_brakes", "hot_spot"] = "normal"
    speed_kmh: float = Field(5.0, gt=0, le=60)
    gap_s: float = Field(4.0, ge=0)
    lighting: Literal["day", "dusk", "night"] = "day"

    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class RandomVehicles(Strict):
    count: int = Field(10, ge=0, le=100_000)
    countries: list[Literal["KZ", "RU", "UZ", "KG", "CN", "EU"]] = list(COUNTRIES)
    norm_share: float = Field(0.1, ge=0, le=1)
    source_share: float = Field(0.03, ge=0, le=1)
    hot_share: float = Field(0.1, ge=0, le=1)
    gap_s: tuple[float, float] = (2.0, 8.0)
    classes: list[VehicleClass] = Field(  # drawn with equal odds; repeat one to favour it
        ["truck_trailer", "truck_trailer", "truck", "van", "car", "bus"]
    )


class FaultSpec(Strict):
    at_s: float = Field(ge=0, description="Device seconds from the start.")
    device: Literal["weighbridge", "rpm", "thermal", "laneio", "front", "rear", "trailer"]
    kind: str
    count: int = Field(1, ge=1)
    duration_s: float = Field(0.0, ge=0)
    params: dict[str, float | str] = Field(default_factory=dict)


class WeighbridgeSpec(Strict):
    protocol: Literal["toledo", "xk3190", "xk3190-command", "sics"] = "toledo"
    transport: Literal["pty", "tcp"] = "pty"
    division_kg: float = 10.0
    rate_hz: float = 10.0


class RpmSpec(Strict):
    protocol: Literal["rapiscan", "aspect"] = "rapiscan"
    background_interval_s: float = Field(5.0, gt=0)
    nsigma: float = 6.0


class ThermalSpec(Strict):
    map: Literal["flir", "infiray"] = "flir"
    regions: int = Field(6, ge=3, le=10)
    ambient_c: float = 12.0


class LaneIoSpec(Strict):
    map: Literal["moxa", "adam6050"] = "moxa"
    barrier_travel_s: float = 3.0


class CameraSpec(Strict):
    roles: list[Literal["front", "rear", "trailer", "overview", "container"]] = ["front", "rear"]
    fps: float = Field(10.0, gt=0, le=30)
    width: int = Field(960, ge=160, le=1920)
    height: int = Field(540, ge=120, le=1080)
    username: str = "admin"
    password: str = "sim12345"
    rtsp: bool = Field(False, description="Also serve RTSP (RTP/JPEG); the config then uses it.")


class LaneSpec(Strict):
    weighbridge: WeighbridgeSpec | None = Field(default_factory=WeighbridgeSpec)
    rpm: RpmSpec | None = Field(default_factory=RpmSpec)
    thermal: ThermalSpec | None = Field(default_factory=ThermalSpec)
    laneio: LaneIoSpec | None = Field(default_factory=LaneIoSpec)
    cameras: CameraSpec | None = Field(default_factory=CameraSpec)


class Scenario(Strict):
    seed: int = 1
    speedup: float = Field(1.0, gt=0, le=100)
    start_delay_s: float = Field(2.0, ge=0, description="Quiet time before the first vehicle.")
    clock_skew_s: float = Field(0.0, description="Offset of the devices' clocks (RPM stamps).")
    lane: LaneSpec = Field(default_factory=LaneSpec)
    vehicles: list[VehicleSpec] = Field(default_factory=list)
    random_vehicles: RandomVehicles | None = None
    faults: list[FaultSpec] = Field(default_factory=list)
    cargo: CargoSpec | None = Field(None, description="Containers, ADR plates, X-ray scans.")

    @classmethod
    def load(cls, path: str | Path) -> Scenario:
        path = Path(path)
        try:
            data = yaml.safe_load(path.read_text()) or {}
        except (OSError, yaml.YAMLError) as exc:
            raise ScenarioError(f"{path}: {exc}") from exc
        try:
            return cls.model_validate(data)
        except ValidationError as exc:
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
            raise ScenarioError(f"{path}: {problems}") from exc


class ScenarioError(Exception):
    pass


# -- the timeline --------------------------------------------------------------------------


@dataclass
class PlannedVehicle:
    index: int
    vehicle_class: str
    axles: int
    axle_kg: list[float]
    gross_kg: float
    plates: dict[str, Plate]
    radiation: str
    gamma_cps: float
    neutron_cps: float
    thermal: str
    thermal_max_c: float
    speed_kmh: float
    start_s: float
    dwell_s: float
    color: tuple[int, int, int]
    lighting: str
    # Filled while running:
    truth: dict[str, Any] = field(default_factory=dict)
    cargo: CargoPlan = field(default_factory=CargoPlan)

    @property
    def end_s(self) -> float:
        return self.start_s + self.dwell_s


def plan(scenario: Scenario) -> list[PlannedVehicle]:
    """The deterministic timeline: same seed, same vehicles, plates, weights, times."""
    rng = random.Random(scenario.seed)
    specs = list(scenario.vehicles)
    if scenario.random_vehicles is not None:
        rv = scenario.random_vehicles
        for _ in range(rv.count):
            cls = rng.choice(rv.classes)
            country = rng.choice(rv.countries)
            roll = rng.random()
            radiation = (
                "source"
                if roll < rv.source_share
                else ("norm" if roll < rv.source_share + rv.norm_share else "none")
            )
            hot = rng.random() < rv.hot_share
            specs.append(
                VehicleSpec.model_validate(
                    {
                        "class": cls,
                        "front": {"country": country},
                        "rear": {"country": country},
                        "trailer": {"country": country} if cls == "truck_trailer" else None,
                        "radiation": radiation,
                        "thermal": rng.choice(["hot_brakes", "hot_spot"]) if hot else "normal",
                        "speed_kmh": round(rng.uniform(3, 10), 1),
                        "gap_s": round(rng.uniform(*rv.gap_s), 1),
                        "lighting": rng.choice(["day", "day", "dusk", "night"]),
                    }
                )
            )
    division = scenario.lane.weighbridge.division_kg if scenario.lane.weighbridge else 10.0
    out: list[PlannedVehicle] = []
    t = scenario.start_delay_s
    for i, spec in enumerate(specs):
        axles_default, (lo, hi), length = _CLASS_DEFAULTS[spec.vehicle_class]
        axles = spec.axles or axles_default
        gross = spec.gross_kg or rng.uniform(lo, hi)
        gross = round(gross / division) * division
        shares = [rng.uniform(0.8, 1.2) for _ in range(axles)]
        axle_kg = [round(gross * s / sum(shares), 1) for s in shares]
        plates: dict[str, Plate] = {}
        for role in ("front", "rear", "trailer"):
            p: PlateSpec | None = getattr(spec, role)
            if p is None:
                continue
            plate = make_plate(p.country, rng, trailer=role == "trailer")
            if p.text:
                plate = Plate(p.text, p.country, rows=plate.rows)
            elif role == "rear" and "front" in plates and plates["front"].country == p.country:
                plate = plates["front"]  # one vehicle, one registration, front and back
            plates[role] = plate
        gamma = {"none": 0.0, "norm": rng.uniform(150, 400), "source": rng.uniform(2_000, 6_000)}
        neutron = rng.uniform(20, 60) if spec.radiation == "source" and rng.random() < 0.3 else 0.0
        thermal_max = {
            "normal": rng.uniform(25, 45),
            "hot_brakes": rng.uniform(150, 280),
            "hot_spot": rng.uniform(70, 110),
        }[spec.thermal]
        dwell = max(6.0, length / (spec.speed_kmh / 3.6))
        out.append(
            PlannedVehicle(
                index=i + 1,
                vehicle_class=spec.vehicle_class,
                axles=axles,
                axle_kg=axle_kg,
                gross_kg=gross,
                plates=plates,
                radiation=spec.radiation,
                gamma_cps=gamma[spec.radiation],
                neutron_cps=neutron,
                thermal=spec.thermal,
                thermal_max_c=round(thermal_max, 1),
                speed_kmh=spec.speed_kmh,
                start_s=round(t, 3),
                dwell_s=round(dwell, 3),
                color=(rng.randrange(30, 220), rng.randrange(30, 220), rng.randrange(30, 220)),
                lighting=spec.lighting,
            )
        )
        t += dwell + spec.gap_s
    if scenario.cargo is not None:  # its own stream: the vehicles stay the same without it
        cargo_rng = random.Random(scenario.seed ^ CARGO_SEED)
        for v in out:
            v.cargo = plan_cargo(scenario.cargo, v.index, v.vehicle_class, cargo_rng)
    return out


def weight_at(v: PlannedVehicle, t: float, rng: random.Random) -> tuple[float, bool]:
    """(gross kg, motion) on the weighbridge at scenario time ``t``."""
    x = (t - v.start_s) / v.dwell_s
    if x < 0.1 or x >= 0.9:
        return 0.0, False
    if x < 0.3:
        ramp = (x - 0.1) / 0.2
        return v.gross_kg * ramp + rng.uniform(-300, 300), True
    if x < 0.8:
        # Settles within the first 5% (oscillation decaying), then holds.
        settle = (x - 0.3) / 0.05
        if settle < 1:
            return v.gross_kg + 400 * (1 - settle) * math.sin(settle * 20), True
        return v.gross_kg, False
    ramp = 1 - (x - 0.8) / 0.1
    return v.gross_kg * ramp, True


def axles_passed(v: PlannedVehicle, t: float) -> int:
    """Axles of ``v`` that have rolled over the axle detector by ``t`` (at 10-50 % of dwell)."""
    x = (t - v.start_s) / v.dwell_s
    if x < 0.1:
        return 0
    return sum(1 for k in range(v.axles) if x >= 0.1 + 0.4 * k / max(1, v.axles - 1))


def thermal_at(
    v: PlannedVehicle | None, t: float, ambient: float, regions: int
) -> list[tuple[float, float, float]]:
    """Per-region (max, min, avg) degC at scenario time ``t``. Region 0 wheels/brakes, 1
    engine, 2 cargo, rest road; the vehicle is under the camera from 0.3 to 0.8 of its dwell,
    the road alone before and after."""
    road = (ambient + 1.5, ambient - 1.0, ambient)
    out = [road] * regions
    if v is None or not 0.3 <= (t - v.start_s) / v.dwell_s < 0.8:
        return out
    normal = min(v.thermal_max_c, 45.0)
    brakes = v.thermal_max_c if v.thermal == "hot_brakes" else normal - 8
    engine = normal if v.thermal != "hot_spot" else normal - 5
    cargo = v.thermal_max_c if v.thermal == "hot_spot" else ambient + 6
    if v.thermal == "normal":
        engine = v.thermal_max_c
    out[0] = (brakes, ambient + 2, (brakes + ambient) / 2)
    out[1] = (engine, ambient + 4, (engine + ambient) / 2)
    out[2] = (cargo, ambient + 1, (cargo + ambient) / 2)
    return out


class SimulatedLane:
    """All simulators of one lane, driven by one scenario."""

    def __init__(
        self,
        scenario: Scenario,
        *,
        truth_path: Path | None = None,
        host: str = "127.0.0.1",
        run_dir: Path | None = None,
    ) -> None:
        self.scenario = scenario
        # Where the sim keeps a link to each of its ptys: the config names the link, which
        # goes when the sim stops, so a config copied from a finished sim opens nothing (a
        # bare /dev/pts/N may meanwhile belong to another process).
        self.run_dir = run_dir
        self.links: list[Path] = []
        self.vehicles = plan(scenario)
        self.truth_path = truth_path
        self.host = host
        self.rng = random.Random(scenario.seed ^ 0x5EED)
        self.weighbridge: WeighbridgeSimulator | None = None
        self.rpm: RapiscanSimulator | None = None
        self.aspect: AspectSimulator | None = None
        self.thermal: ThermalSimulator | None = None
        self.laneio: LaneIoSimulator | None = None
        self.cameras: dict[str, CameraSimulator] = {}
        self.rtsp: dict[str, RtspCameraSimulator] = {}
        self.endpoints: dict[str, str] = {}
        self.truth: list[dict[str, Any]] = []
        self._t0 = time.monotonic()
        self._wall0 = datetime.now(UTC)
        self.begun = False
        self._tasks: list[asyncio.Task[None]] = []
        self._aspect_task: asyncio.Task[Any] | None = None
        self.xray_dir: Path | None = None  # the X-ray portal's drop folder (cargo.xray)

    # -- clock ---------------------------------------------------------------------------

    def now_s(self) -> float:
        """Scenario time (device seconds since start)."""
        return (time.monotonic() - self._t0) * self.scenario.speedup

    def _wall(self, t: float) -> datetime:
        return self._wall0 + timedelta(seconds=t / self.scenario.speedup)

    def current(self, t: float | None = None) -> PlannedVehicle | None:
        if not self.begun:
            return None  # devices up, the timeline not begun: an empty lane
        t = self.now_s() if t is None else t
        for v in self.vehicles:
            if v.start_s <= t < v.end_s:
                return v
        return None

    async def _sleep_until(self, t: float) -> None:
        delay = (t - self.now_s()) / self.scenario.speedup
        if delay > 0:
            await asyncio.sleep(delay)

    # -- lifecycle -----------------------------------------------------------------------

    async def start(self, *, begin: bool = True) -> dict[str, str]:
        """Start every simulator; the timeline too unless ``begin`` is False (then
        :meth:`begin` starts it: until then the lane is empty)."""
        lane = self.scenario.lane
        self._t0 = time.monotonic()
        self._wall0 = datetime.now(UTC)
        seed = self.scenario.seed
        if self.scenario.cargo is not None and self.scenario.cargo.xray:
            self.xray_dir = Path(tempfile.mkdtemp(prefix="lane-sim-xray-"))
            self.endpoints["xray"] = str(self.xray_dir)
        if lane.weighbridge is not None:
            wb = lane.weighbridge
            self.weighbridge = WeighbridgeSimulator(
                wb.protocol, transport=wb.transport, rate_hz=wb.rate_hz,
                division_kg=wb.division_kg, seed=seed,
            )  # fmt: skip
            self.weighbridge.profile = lambda _t: self._weight()
            self.endpoints["weighbridge"] = await self.weighbridge.start()
            if wb.transport == "pty" and self.run_dir is not None:
                self.endpoints["weighbridge"] = self._link("scale.tty", self.weighbridge.url)
        if lane.rpm is not None and lane.rpm.protocol == "rapiscan":
            self.rpm = RapiscanSimulator(
                host=self.host,
                background_interval_s=lane.rpm.background_interval_s / self.scenario.speedup,
                speedup=self.scenario.speedup,
                nsigma=lane.rpm.nsigma,
                seed=seed,
            )
            await self.rpm.start()
            if self.scenario.clock_skew_s:
                await self.rpm.inject("clock_skew", offset_s=self.scenario.clock_skew_s)
            self.endpoints["rpm"] = f"tcp://{self.host}:{self.rpm.port}"
        elif lane.rpm is not None:
            self.aspect = AspectSimulator(seed=seed, nsigma=lane.rpm.nsigma)
            self.endpoints["rpm"] = f"modbus://{self.host}:{await self.aspect.start()}"
        if lane.thermal is not None:
            th = lane.thermal
            self.thermal = ThermalSimulator(th.map, regions=th.regions, ambient_c=th.ambient_c)
            self.thermal.profile = lambda _t: self._thermal_now(th.ambient_c, th.regions)
            self.endpoints["thermal"] = f"modbus://{self.host}:{await self.thermal.start()}"
        if lane.laneio is not None:
            self.laneio = LaneIoSimulator(
                map=lane.laneio.map, barrier_travel_s=lane.laneio.barrier_travel_s, seed=seed
            )
            self.laneio.server.on_read = self._laneio_refresh
            self.endpoints["laneio"] = f"modbus://{self.host}:{await self.laneio.start()}"
        if lane.cameras is not None:
            for role in lane.cameras.roles:
                cam = CameraSimulator(
                    username=lane.cameras.username, password=lane.cameras.password,
                    fps=lane.cameras.fps, host=self.host, label=role.upper(),
                    frame_source=functools.partial(self._frame, role), seed=seed,
                )  # fmt: skip
                cam.start()
                self.cameras[role] = cam
                self.endpoints[f"camera.{role}"] = cam.mjpeg_url
                if lane.cameras.rtsp:
                    rtsp = RtspCameraSimulator(
                        functools.partial(cam.jpeg, multiple_of=16), fps=lane.cameras.fps,
                        host=self.host, faults=cam.faults,
                    )  # fmt: skip
                    self.rtsp[role] = rtsp
                    self.endpoints[f"camera.{role}.rtsp"] = await rtsp.start()
        if begin:
            self.begin()
        return self.endpoints

    def begin(self) -> None:
        """Start the timeline now: the first vehicle comes ``start_delay_s`` later."""
        if self.begun:
            return
        self._t0 = time.monotonic()
        self._wall0 = datetime.now(UTC)
        self.begun = True
        self._tasks = [
            asyncio.create_task(self._vehicles_task()),
            asyncio.create_task(self._faults_task()),
        ]

    def _link(self, name: str, target: str) -> str:
        assert self.run_dir is not None
        self.run_dir.mkdir(parents=True, exist_ok=True)
        link = self.run_dir / name
        link.unlink(missing_ok=True)
        link.symlink_to(target)
        self.links.append(link)
        return str(link.absolute())

    async def wait(self) -> None:
        """Until every vehicle has passed and its ground truth is written."""
        while not self._tasks:
            await asyncio.sleep(0.1)
        await self._tasks[0]

    async def stop(self) -> None:
        for link in self.links:  # first: an agent reconnecting meanwhile finds no pty
            link.unlink(missing_ok=True)
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for sim in (self.weighbridge, self.rpm, self.aspect, self.thermal, self.laneio):
            if sim is not None:
                await sim.stop()
        for rtsp in self.rtsp.values():
            await rtsp.stop()
        for cam in self.cameras.values():
            await asyncio.to_thread(cam.stop)
        if self.links and self.run_dir is not None:
            with contextlib.suppress(OSError):
                self.run_dir.rmdir()  # only when empty: nothing of anyone else's goes
        if self.xray_dir is not None:
            shutil.rmtree(self.xray_dir, ignore_errors=True)

    # -- device models -------------------------------------------------------------------

    def _weight(self) -> tuple[float, bool]:
        t = self.now_s()
        v = self.current(t)
        return weight_at(v, t, self.rng) if v is not None else (0.0, False)

    def _thermal_now(self, ambient: float, regions: int) -> list[tuple[float, float, float]]:
        t = self.now_s()
        return thermal_at(self.current(t), t, ambient, regions)

    def _laneio_refresh(self) -> None:
        assert self.laneio is not None
        t = self.now_s()
        v = self.current(t)
        x = (t - v.start_s) / v.dwell_s if v is not None else -1.0
        for name, on in (
            ("entry_loop", 0.1 <= x < 0.5),
            ("light_curtain", 0.3 <= x < 0.8),
            ("exit_loop", 0.8 <= x < 0.95),
        ):
            if name in self.laneio.inputs:
                self.laneio.state[name] = on
        if "axles" in self.laneio.count:
            # An axle detector at the entry loop: one pulse per axle, spread over the loop.
            passed = sum(axles_passed(v, t) for v in self.vehicles) if self.begun else 0
            self.laneio.count["axles"] = passed
        LaneIoSimulator._refresh(self.laneio)

    def _frame(self, role: str) -> Any:
        assert self.scenario.lane.cameras is not None
        spec = self.scenario.lane.cameras
        t = self.now_s()
        v = self.current(t)
        scene = None
        light = {"day": 1.0, "dusk": 0.6, "night": 0.35}
        brightness, blur, angle = 1.0, 0, 0.0
        if role == "container":
            x = (t - v.start_s) / v.dwell_s if v is not None else -1.0
            shown = v.cargo if v is not None and 0.25 <= x <= 0.75 else CargoPlan()
            return render_side(shown, (x - 0.25) / 0.5, self.rng, (spec.width, spec.height))
        if v is not None:
            x = (t - v.start_s) / v.dwell_s
            if role in ("front", "overview") and x < 0.3:
                scene = SceneVehicle(
                    v.plates.get("front"), v.color, x / 0.3, "front", adr=v.cargo.adr
                )
            elif role in ("rear", "trailer") and x >= 0.7:
                plate = v.plates.get("trailer") if role == "trailer" else v.plates.get("rear")
                if role == "rear" and "trailer" in v.plates:
                    plate = v.plates["trailer"]
                scene = SceneVehicle(plate, v.color, (x - 0.7) / 0.3, "rear", adr=v.cargo.adr)
            brightness = light[v.lighting]
            blur = v.index % 3
            angle = ((v.index * 7) % 9 - 4) * 0.75
        return render_scene(
            scene, now=datetime.now(UTC), rng=self.rng, size=(spec.width, spec.height),
            brightness=brightness, blur=blur, angle_deg=angle, label=role.upper(),
        )  # fmt: skip

    # -- timeline ------------------------------------------------------------------------

    async def _vehicles_task(self) -> None:
        for v in self.vehicles:
            await self._sleep_until(v.start_s + 0.3 * v.dwell_s)
            rpm_done: asyncio.Event | None = None
            duration = 0.4 * v.dwell_s
            if self.rpm is not None:
                rpm_done = self.rpm.pass_vehicle(
                    RpmVehicle(duration_s=duration, gamma_cps=v.gamma_cps,
                               neutron_cps=v.neutron_cps, speed_kmh=v.speed_kmh,
                               vehicle=str(v.index))
                ).done  # fmt: skip
            elif self.aspect is not None:
                self._aspect_task = asyncio.create_task(
                    self.aspect.pass_vehicle(
                        duration_s=duration / self.scenario.speedup,
                        gamma_cps=v.gamma_cps,
                        neutron_cps=v.neutron_cps,
                        speed_kmh=v.speed_kmh,
                        axles=v.axles,
                        step_s=0.2 / self.scenario.speedup,
                    )
                )
            await self._sleep_until(v.end_s)
            if self.xray_dir is not None and v.cargo.scan_id is not None:
                self._tasks.append(asyncio.create_task(self._export_scan(v)))
            if rpm_done is not None:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(10):
                        await rpm_done.wait()
            aspect: AspectTruth | None = None
            if self._aspect_task is not None:
                # On a loaded machine the monitor's pass can outlast the vehicle's dwell: its
                # truth is this vehicle's only once the pass is over.
                await asyncio.wait([self._aspect_task], timeout=10)
                done = self._aspect_task
                if done.done() and not done.cancelled() and done.exception() is None:
                    aspect = done.result()
            self._record(v, aspect)

    def _record(self, v: PlannedVehicle, aspect: AspectTruth | None) -> None:
        radiation: dict[str, Any] = {"profile": v.radiation}
        if self.rpm is not None:
            match = [t for t in self.rpm.truth if t.vehicle == str(v.index)]
            if match:
                radiation |= {
                    "occupancy_no": match[0].occupancy_no,
                    "gamma_alarm": match[0].gamma_alarm,
                    "neutron_alarm": match[0].neutron_alarm,
                    "gamma_max_cps": match[0].gamma_max_cps,
                    "gx_sent": match[0].gx_sent,
                }
        elif aspect is not None:
            radiation |= {"occupancy_no": aspect.object_counter,
                          "gamma_alarm": aspect.gamma_alarm,
                          "neutron_alarm": aspect.neutron_alarm}  # fmt: skip
        record = {
            "index": v.index,
            "class": v.vehicle_class,
            "axles": v.axles,
            "axle_kg": v.axle_kg,
            "gross_kg": v.gross_kg,
            "plates": {
                role: {"text": p.text, "country": p.country, "rows": p.rows, "rendered": p.rendered}
                for role, p in v.plates.items()
            },
            "radiation": radiation,
            "thermal": {"profile": v.thermal, "max_c": v.thermal_max_c},
            "speed_kmh": v.speed_kmh,
            "lighting": v.lighting,
            "start": self._wall(v.start_s).isoformat(),
            "end": self._wall(v.end_s).isoformat(),
            "weigh_window": [
                self._wall(v.start_s + 0.3 * v.dwell_s).isoformat(),
                self._wall(v.start_s + 0.8 * v.dwell_s).isoformat(),
            ],
        }
        if self.scenario.cargo is not None:
            record["cargo"] = v.cargo.truth()
        v.truth = record
        self.truth.append(record)
        if self.truth_path is not None:
            with self.truth_path.open("a") as f:
                f.write(json.dumps(record, ensure_ascii=False) + "\n")

    async def _export_scan(self, v: PlannedVehicle) -> None:
        """The portal's export of a truck's scan, written into the drop folder in real time."""
        from simulators.xray import ScanDrop, write_scan

        assert self.scenario.cargo is not None and self.xray_dir is not None
        await asyncio.sleep(self.scenario.cargo.xray_delay_s / self.scenario.speedup)
        plate = v.plates.get("front")
        shown = plate.rendered if plate is not None else None
        if v.cargo.scanner_plate_wrong:
            shown = "999XRY99"
        drop = ScanDrop(
            v.cargo.scan_id or "",
            files={"scan.img": 40_000, "preview.jpg": 4_000},
            started=self._wall(v.start_s + 0.3 * v.dwell_s),
            finished=self._wall(v.start_s + 0.7 * v.dwell_s),
            plate=shown,
            container=", ".join(b.code for b in v.cargo.boxes) or None,
            seed=self.scenario.seed,
        )
        await asyncio.to_thread(write_scan, drop, self.xray_dir)

    async def _faults_task(self) -> None:
        for fault in sorted(self.scenario.faults, key=lambda f: f.at_s):
            await self._sleep_until(fault.at_s)
            await self.inject(fault)

    async def inject(self, fault: FaultSpec) -> None:
        target: Any = {
            "weighbridge": self.weighbridge,
            "rpm": self.rpm or self.aspect,
            "thermal": self.thermal,
            "laneio": self.laneio,
        }.get(fault.device) or self.cameras.get(fault.device)
        if target is None:
            raise ScenarioError(f"fault for {fault.device!r}, which this lane does not have")
        duration = fault.duration_s / self.scenario.speedup
        result = target.inject(fault.kind, count=fault.count, duration_s=duration, **fault.params)
        if asyncio.iscoroutine(result):
            await result
        if fault.device in self.rtsp and fault.kind == "disconnect":
            await self.rtsp[fault.device].inject("disconnect")  # other faults share state

    # -- what the agent needs --------------------------------------------------------------

    def lane_config(self) -> dict[str, Any]:
        """A lane config (as a dict, dump it as YAML) whose devices are these simulators."""
        devices: list[dict[str, Any]] = []
        lane = self.scenario.lane
        if self.weighbridge is not None and lane.weighbridge is not None:
            kind = {"toledo": "weighbridge.toledo", "sics": "weighbridge.sics"}.get(
                lane.weighbridge.protocol, "weighbridge.xk3190"
            )
            url = self.endpoints.get("weighbridge") or self.weighbridge.url
            entry: dict[str, Any] = {"id": "scale", "kind": kind, "url": url,
                                     "timeout_ms": 1000}  # fmt: skip
            if kind == "weighbridge.xk3190":
                entry["mode"] = (
                    "command" if lane.weighbridge.protocol == "xk3190-command" else "continuous"
                )
            if lane.weighbridge.protocol in ("xk3190-command", "sics"):
                # Poll faster when time is compressed, so a hold still spans N frames.
                entry["poll_ms"] = max(20, round(200 / self.scenario.speedup))
            if kind != "weighbridge.toledo":
                entry["division_kg"] = lane.weighbridge.division_kg
            devices.append(entry)
        if self.rpm is not None:
            timeout = int(lane.rpm.background_interval_s / self.scenario.speedup * 2000) + 500  # type: ignore[union-attr]
            devices.append({"id": "rpm", "kind": "rpm.rapiscan", "host": self.host,
                            "port": self.rpm.port, "timeout_ms": timeout})  # fmt: skip
        if self.aspect is not None:
            devices.append({"id": "rpm", "kind": "rpm.aspect", "host": self.host,
                            "port": self.aspect.port, "timeout_ms": 1000})  # fmt: skip
        if self.thermal is not None and lane.thermal is not None:
            devices.append({"id": "thermal", "kind": "thermal.modbus", "host": self.host,
                            "port": self.thermal.port, "map": lane.thermal.map,
                            "regions": lane.thermal.regions, "timeout_ms": 1000})  # fmt: skip
        if self.laneio is not None:
            devices.append({
                "id": "io", "kind": "laneio.modbus", "host": self.host, "port": self.laneio.port,
                "map": self.laneio.map, "inputs": self.laneio.inputs,
                "outputs": self.laneio.outputs, "loops": ["entry_loop", "exit_loop"],
                "counters": self.laneio.counters, "timeout_ms": 1000,
            })  # fmt: skip
        for role, cam in self.cameras.items():
            # Below the date/name stamp: the agent learns it anyway, the mask says it at once.
            height = lane.cameras.height if lane.cameras is not None else 540
            area = [0.0, round(max(0.08, OSD_BAND_PX / height), 3), 1.0]
            area.append(round(1.0 - area[1], 3))
            if role in self.rtsp:
                devices.append({
                    "id": f"cam_{role}", "kind": "anpr.stream", "role": role,
                    "url": self.rtsp[role].url, "reader": "opencv", "timeout_ms": 3000,
                    "plate_area": area,
                })  # fmt: skip
                continue
            devices.append({
                "id": f"cam_{role}", "kind": "anpr.stream", "role": role, "url": cam.mjpeg_url,
                "reader": "http", "username": cam.username, "password": cam.password,
                "timeout_ms": 3000, "plate_area": area,
            })  # fmt: skip
        if self.xray_dir is not None:
            devices.append({"id": "xray1", "kind": "xray.uff_dir", "path": str(self.xray_dir),
                            "poll_ms": 200, "settle_ms": 400, "timeout_ms": 5000})  # fmt: skip
        return {"checkpoint": "KZ-SIM", "lane": "SIM1", "direction": "entry",
                "lane_type": "truck", "devices": devices}  # fmt: skip


def plan_summary(vehicles: list[PlannedVehicle]) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in asdict(p).items() if k not in {"truth", "color"}}
        | {"plates": {r: pl.text for r, pl in p.plates.items()}}
        for p in vehicles
    ]
