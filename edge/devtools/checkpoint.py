"""A whole checkpoint here: N simulated lanes, the site broker, PostgreSQL, `lane ingest`.

Used by `lane checkpoint sim` (watch the register fill) and `lane checkpoint score` (compare
the register with every lane's ground truth, edge/devtools/checkscore.py). Each lane has its own
simulated devices (simulators.scenario.SimulatedLane, on its own event loop thread, like
separate hardware) and its own `lane run` process with its own state directory; all lanes
publish to one Mosquitto (edge/devtools/localbroker.py, persistent like a site broker), and one
`lane ingest` process keeps the register. PostgreSQL is the one named by
``LANE_CHECKPOINT_DSN`` (default: the local one on port 5432) when it answers, else, or
when a fault is to crash it, a private one `initdb`'d into a temp directory
(edge/devtools/localdb.py).

Faults (``--chaos``) are real signals to real processes: SIGKILL and SIGSTOP, and a
PostgreSQL stop in ``immediate`` mode (a crash) followed by a start.
"""

from __future__ import annotations

import asyncio
import os
import random
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from edge.devtools.harness import stop_process
from edge.devtools.localbroker import LocalBroker

CHECKPOINT = "CP-SIM"
DEVICE_UP = re.compile(r": device (\S+) \([\w.]+\) is UP")
AGENT_START_S = 8.0  # `lane run` loads its models and connects its devices
ROOT = Path(__file__).resolve().parents[2]


def lane_ids(count: int) -> list[tuple[str, str]]:
    """Two lanes in three are truck lanes: T01, C02, T03, T04, C05 ..."""
    return [(f"{'C' if n % 3 == 1 else 'T'}{n + 1:02d}", "car" if n % 3 == 1 else "truck")
            for n in range(count)]  # fmt: skip


def lane_scenario(kind: str, *, seed: int, vehicles: int, speedup: float) -> Any:
    """A truck lane: weighbridge, RPM, thermal, lane I/O, two cameras; random trucks, vans,
    cars, buses. A car lane: no weighbridge and no thermal camera; cars and vans."""
    from simulators.scenario import LaneSpec, RandomVehicles, Scenario, VehicleSpec

    delay = 3.0 * speedup  # after release(): the agents are up already
    camera = {"fps": 4, "width": 960, "height": 540}
    if kind == "truck":
        return Scenario.model_validate(
            {"seed": seed, "speedup": speedup, "start_delay_s": delay, "lane": {"cameras": camera},
             "random_vehicles": RandomVehicles(count=vehicles).model_dump()}
        )  # fmt: skip
    rng = random.Random(seed)
    specs = [
        VehicleSpec.model_validate({
            "class": rng.choice(["car", "car", "van"]),
            "front": {"country": (country := rng.choice(["KZ", "RU", "UZ", "KG"]))},
            "rear": {"country": country},
            "speed_kmh": round(rng.uniform(4, 10), 1),
            "gap_s": round(rng.uniform(3, 8), 1),
        }).model_dump(by_alias=True)
        for _ in range(vehicles)
    ]  # fmt: skip
    lane = LaneSpec.model_validate({"weighbridge": None, "thermal": None, "cameras": camera})
    return Scenario.model_validate(
        {"seed": seed, "speedup": speedup, "start_delay_s": delay,
         "lane": lane.model_dump(), "vehicles": specs}
    )  # fmt: skip


@dataclass
class Downtime:
    """A lane agent was not running from ``start`` to ``end`` (wall clock, epoch seconds)."""

    lane: str
    start: float
    end: float | None = None


class SiteLane:
    """One lane: its simulated devices on their own loop thread, its own `lane run`."""

    def __init__(
        self, lane: str, kind: str, scenario: Any, workdir: Path, *, broker_port: int
    ) -> None:
        from simulators.scenario import SimulatedLane

        self.lane, self.kind, self.workdir = lane, kind, workdir
        # The config names the simulator's own link to each pty (gone when the sim stops),
        # never a bare /dev/pts/N that an orphaned agent could reopen once it is recycled.
        self.devices = SimulatedLane(
            scenario, truth_path=workdir / "truth.jsonl", run_dir=workdir / "run"
        )
        self.broker_port = broker_port
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.agent: subprocess.Popen[bytes] | None = None
        self.config_path = workdir / "lane.yaml"
        self.log_path = workdir / "agent.log"
        self._vehicles: Any = None

    def _run(self, coro: Any, timeout: float | None = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self._thread.start()
        self._run(self.devices.start(begin=False))  # no vehicle before the agent is up
        config = self.devices.lane_config()
        devices = []
        for device in config["devices"]:
            if "password" in device:  # never inline: a file, like a real install
                secret = self.workdir / "secrets" / f"{device['id']}.password"
                secret.parent.mkdir(parents=True, exist_ok=True)
                secret.write_text(str(device["password"]))
                secret.chmod(0o600)
                device = device | {"password": {"file": str(secret)}}
            if device["kind"].startswith("anpr."):
                device["plate_area"] = [0.0, 0.08, 1.0, 0.92]  # below the date/name overlay
            devices.append(device)
        config |= {
            "checkpoint": CHECKPOINT,
            "lane": self.lane,
            "lane_type": self.kind,
            "devices": devices,
            "mqtt": {"host": "127.0.0.1", "port": self.broker_port,
                     "reconnect_min_s": 0.2, "reconnect_max_s": 2.0},
            "storage": {"state_dir": str(self.workdir / "state")},
            "fusion": {"settle_s": 2.0, "min_gap_s": 0.3},
            "telemetry": {"interval_s": 10},
        }  # fmt: skip
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        self.start_agent()

    def release(self) -> None:
        """The agent is up: let the vehicles come."""

        async def begin() -> None:
            self.devices.begin()

        self._run(begin())
        self._vehicles = asyncio.run_coroutine_threadsafe(self.devices.wait(), self.loop)

    def start_agent(self) -> None:
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "--config", str(self.config_path)],
            cwd=ROOT,
            stdout=self.log_path.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def wait_devices_up(self, offset: int, timeout_s: float = 180.0) -> bool:
        """Until the agent started after log offset ``offset`` reports every device UP: only
        then can it see a vehicle. False if it does not within ``timeout_s``."""
        devices = len(yaml.safe_load(self.config_path.read_text())["devices"])
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.agent is not None and self.agent.poll() is not None:
                return False  # it died
            with self.log_path.open("rb") as log:
                log.seek(offset)
                text = log.read().decode(errors="replace")
            # The agent's one line per transition: "device scale (weighbridge.toledo) is UP".
            up = {
                match.group(1)
                for line in text.splitlines()
                if (match := DEVICE_UP.search(line)) is not None
            }
            if len(up) >= devices:
                return True
            time.sleep(0.5)
        return False

    def kill_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGKILL)
            self.agent.wait(10)

    def agent_alive(self) -> bool:
        return self.agent is not None and self.agent.poll() is None

    def vehicles_done(self) -> bool:
        return self._vehicles is not None and self._vehicles.done()

    @property
    def truth(self) -> list[dict[str, Any]]:
        return list(self.devices.truth)

    def stop(self) -> None:
        if self.agent is not None:
            stop_process(self.agent, grace_s=60)
        try:
            self._run(self.devices.stop(), 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)


MACHINE_DSN = "host=127.0.0.1 port=5432 dbname=postgres user=postgres"


def machine_postgres() -> str | None:
    """The machine's PostgreSQL: ``LANE_CHECKPOINT_DSN`` (a role that may CREATE DATABASE;
    empty: never) or the local default, if it answers. A fresh database is made per run."""
    dsn = os.environ.get("LANE_CHECKPOINT_DSN", MACHINE_DSN)
    if not dsn:
        return None
    import psycopg

    try:
        with psycopg.connect(dsn, connect_timeout=3):
            return dsn
    except psycopg.OperationalError:
        return None


@dataclass
class Checkpoint:
    """Everything of one simulated checkpoint; ``start``, wait, ``stop``."""

    lanes: int
    vehicles: int
    workdir: Path
    speedup: float = 2.0
    seed: int = 1
    site_lanes: list[SiteLane] = field(default_factory=list)
    downtimes: list[Downtime] = field(default_factory=list)
    paused: set[str] = field(default_factory=set)  # processes a fault took down on purpose
    private_postgres: bool = False  # never the machine's (a fault will crash this one)

    def __post_init__(self) -> None:
        self.broker = LocalBroker(workdir=self.workdir / "broker", persistent=True)
        self.postgres: Any = None  # LocalPostgres when private
        self.dsn = ""
        self.ingest: subprocess.Popen[bytes] | None = None
        self.ingest_config = self.workdir / "ingest.yaml"
        self.ingest_log = self.workdir / "ingest.log"
        self._machine: str | None = None
        self._database_name = ""

    def _database(self) -> None:
        import psycopg

        machine = None if self.private_postgres else machine_postgres()
        if machine is not None:
            self._machine = machine
            name = self._database_name = f"checkpoint_{os.getpid()}_{int(time.time())}"
            with psycopg.connect(machine, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"'.encode())
            params = psycopg.conninfo.conninfo_to_dict(machine) | {"dbname": name}
            self.dsn = psycopg.conninfo.make_conninfo(**params)  # type: ignore[arg-type]
            return
        from edge.devtools.localdb import LocalPostgres

        self.postgres = LocalPostgres(workdir=Path(f"/tmp/lane-checkpoint-pg-{os.getpid()}"))
        self.postgres.start()
        self.dsn = self.postgres.dsn

    def start(self) -> Checkpoint:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker.start()
        self._database()
        ids = lane_ids(self.lanes)
        self.ingest_config.write_text(
            yaml.safe_dump(
                {
                    "broker": {
                        "host": "127.0.0.1",
                        "port": self.broker.port,
                        "client_id": "checkpoint-register",
                        "reconnect_min_s": 0.2,
                        "reconnect_max_s": 2.0,
                    },
                    "checkpoints": [{"id": CHECKPOINT, "lanes": [lane for lane, _ in ids]}],
                    "database": {"dsn": self.dsn, "reconnect_min_s": 0.2, "reconnect_max_s": 2.0},
                    "evidence": {"dir": str(self.workdir / "evidence")},
                    "replay": {"grace_s": 2.0, "min_interval_s": 2.0, "max_interval_s": 10.0},
                },
                sort_keys=False,
            )
        )
        self.start_ingest()
        self.wait_for(lambda: "subscribed to" in self.ingest_output(), 120, "ingest subscribed")
        for n, (lane, kind) in enumerate(ids):
            scenario = lane_scenario(
                kind, seed=self.seed * 1000 + n, vehicles=self.vehicles, speedup=self.speedup
            )
            site_lane = SiteLane(
                lane, kind, scenario, self.workdir / lane, broker_port=self.broker.port
            )
            site_lane.start()
            self.site_lanes.append(site_lane)
        for site_lane in self.site_lanes:  # all agents start together: minutes on a busy host
            if not site_lane.wait_devices_up(0, timeout_s=600):
                raise RuntimeError(f"lane agent {site_lane.lane} did not bring its devices up")
        for site_lane in self.site_lanes:
            site_lane.release()
        return self

    def ingest_output(self) -> str:
        return self.ingest_log.read_text(errors="replace") if self.ingest_log.exists() else ""

    def start_ingest(self) -> None:
        self.ingest = subprocess.Popen(
            [sys.executable, "-m", "edge", "ingest", "--config", str(self.ingest_config)],
            cwd=ROOT,
            stdout=self.ingest_log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    @staticmethod
    def wait_for(condition: Any, timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not condition():
            if time.monotonic() > deadline:
                raise RuntimeError(f"timed out waiting for: {what}")
            time.sleep(0.2)

    def vehicles_done(self) -> bool:
        return all(lane.vehicles_done() for lane in self.site_lanes)

    def check_alive(self) -> None:
        """A process that died without a fault injected is a failure of the run."""
        down = {d.lane for d in self.downtimes if d.end is None}
        for lane in self.site_lanes:
            if not lane.agent_alive() and lane.lane not in down:
                raise RuntimeError(f"lane agent {lane.lane} died; see {lane.log_path}")
        if (
            "ingest" not in self.paused
            and self.ingest is not None
            and self.ingest.poll() is not None
        ):
            raise RuntimeError(f"lane ingest exited; see {self.ingest_log}")

    def stop(self) -> None:
        for lane in self.site_lanes:
            try:
                lane.stop()
            except Exception as exc:  # stop the rest whatever one lane does
                print(f"stopping lane {lane.lane}: {exc}", file=sys.stderr)
        if self.ingest is not None:
            stop_process(self.ingest, grace_s=30)
        self.broker.stop()
        if self.postgres is not None:
            self.postgres.destroy()
        if self._machine is not None:  # leave the machine's PostgreSQL as it was
            import psycopg

            with psycopg.connect(self._machine, autocommit=True) as conn:
                drop = f'DROP DATABASE IF EXISTS "{self._database_name}" WITH (FORCE)'
                conn.execute(drop.encode())
