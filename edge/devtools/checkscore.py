"""`lane checkpoint score`: a simulated checkpoint's register against every lane's ground truth.

Each register crossing (its latest row, as committed) is matched to the vehicle of its lane
whose time in the lane it overlaps most (edge.devtools.score.match_crossings). Counted:

- ``missed``: vehicles with no crossing in the register, except those that passed while
  their own lane agent was down (a fault injected here: from the SIGKILL until the restarted
  agent reported every device up; nothing could see them): those are ``missed_agent_down``,
  apart. ``merged``: crossings the lane made of more than one vehicle (its fusion's doing,
  not the register's: a merged vehicle is also a missed one).
- ``duplicates``: extra register rows for one vehicle (the register keys rows by
  ``crossing_id``, so a re-sent event can never add a row; a second row means the lane made two
  crossings of one vehicle). ``phantoms``: rows matching no vehicle.
- gaps opened / repaired / still open, and ``lost`` (``lane_seq`` a lane reported not kept).
- ``events_missing``: events in a lane's own outbox history that never reached the register
  (the check `lane_seq` alone cannot make for a lane's last events).
- latency: the vehicle left (ground truth) -> the transaction that stored its ``end`` event
  (``events.received_at``, PostgreSQL ``now()`` of that transaction).

``--chaos`` injects, spread over the run: a lane agent SIGKILL (restarted after 3 s), a site
broker SIGKILL (restarted after 2 s on the same port and persistence file) and SIGSTOP (5 s),
an ingest SIGKILL (restarted after 2 s), and a PostgreSQL crash-restart (``pg_ctl -m
immediate``; with this fault the run always uses a private PostgreSQL, never the machine's).
"""

from __future__ import annotations

import random
import signal
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from edge.devtools.checkpoint import AGENT_START_S, CHECKPOINT, Checkpoint, Downtime
from edge.devtools.score import _percentile, match_crossings

QUIET_S = 10.0  # no new event from any lane this long, and the register has them all


def _query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    import psycopg

    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        return conn.execute(sql.encode(), params).fetchall()


class Chaos(threading.Thread):
    """Injects each fault once, in a seeded order, at moments spread over the traffic."""

    def __init__(
        self,
        checkpoint: Checkpoint,
        kinds: tuple[str, ...],
        *,
        seed: int,
        first_s: float,
        duration_s: float,
    ) -> None:
        super().__init__(name="chaos", daemon=True)
        self.checkpoint = checkpoint
        self.rng = random.Random(seed)
        # The machine's PostgreSQL is not ours to crash (chosen only without this fault).
        order = [k for k in kinds if k != "postgres_restart" or checkpoint.postgres]
        self.rng.shuffle(order)
        step = duration_s * 0.7 / max(1, len(order))
        self.plan = [(first_s + duration_s * 0.1 + i * step, kind) for i, kind in enumerate(order)]
        self.injected: list[dict[str, Any]] = []
        self.error: BaseException | None = None
        self._began = time.monotonic()

    def run(self) -> None:
        try:
            for at_s, kind in self.plan:
                delay = at_s - (time.monotonic() - self._began)
                if delay > 0:
                    time.sleep(delay)
                self.injected.append(self.inject(kind))
        except BaseException as exc:  # reported by the scorer, never lost in a thread
            self.error = exc

    def inject(self, kind: str) -> dict[str, Any]:
        cp = self.checkpoint
        at = round(time.monotonic() - self._began, 1)
        record: dict[str, Any] = {"kind": kind, "at_s": at}
        if kind == "agent_sigkill":
            lane = self.rng.choice(cp.site_lanes)
            down = Downtime(lane.lane, time.time())
            cp.downtimes.append(down)
            lane.kill_agent()
            time.sleep(3.0)
            offset = lane.log_path.stat().st_size
            lane.start_agent()
            # Blind until it has started and connected its devices: seconds on a loaded host.
            if not lane.wait_devices_up(offset):
                time.sleep(AGENT_START_S)
            down.end = time.time()
            record |= {"target": lane.lane, "down_s": round(down.end - down.start, 1)}
        elif kind == "broker_sigkill":
            cp.broker.kill()
            time.sleep(2.0)
            cp.broker.start()
            record |= {"target": "site broker", "down_s": 2.0}
        elif kind == "broker_sigstop":
            assert cp.broker.process is not None
            cp.broker.process.send_signal(signal.SIGSTOP)
            time.sleep(5.0)
            cp.broker.process.send_signal(signal.SIGCONT)
            record |= {"target": "site broker", "down_s": 5.0}
        elif kind == "ingest_sigkill":
            assert cp.ingest is not None
            cp.paused.add("ingest")
            cp.ingest.send_signal(signal.SIGKILL)
            cp.ingest.wait(10)
            time.sleep(2.0)
            cp.start_ingest()
            cp.paused.discard("ingest")
            record |= {"target": "lane ingest", "down_s": 2.0}
        elif kind == "postgres_restart":
            cp.postgres.stop("immediate")
            time.sleep(3.0)
            cp.postgres.start()
            record |= {"target": "PostgreSQL", "down_s": 3.0}
        return record


def outbox_events(state_dir: Path, column: str = "event_id") -> set[str]:
    """Every crossing event (or crossing, ``column="crossing_id"``) the lane made, from its
    own outbox history (read-only)."""
    if column not in ("event_id", "crossing_id"):
        raise ValueError(column)
    path = state_dir / "outbox.db"
    if not path.exists():
        return set()
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=10)
    try:
        return {row[0] for row in conn.execute(f"SELECT {column} FROM crossings")}
    finally:
        conn.close()


def settled(cp: Checkpoint) -> tuple[bool, int]:
    """(every event every lane made is in the register and no gap is open, events made)."""
    made: set[str] = set()
    for lane in cp.site_lanes:
        made |= outbox_events(lane.workdir / "state")
    stored = {row[0] for row in _query(cp.dsn, "SELECT event_id FROM events")}
    open_gaps = _query(cp.dsn, "SELECT count(*) FROM gaps WHERE state = 'open'")[0][0]
    return made <= stored and open_gaps == 0, len(made)


def score_register(cp: Checkpoint) -> dict[str, Any]:
    rows = _query(
        cp.dsn,
        "SELECT c.lane, c.body, extract(epoch FROM e.received_at)::float, c.ended"
        " FROM crossings c JOIN events e ON e.event_id = c.event_id WHERE c.checkpoint = %s",
        (CHECKPOINT,),
    )
    vehicles = missed = excepted = duplicates = phantoms = unended = merged = 0
    latencies: list[float] = []
    per_lane = {}
    for lane in cp.site_lanes:
        truth = lane.truth
        ends = [(body, received) for name, body, received, _e in rows if name == lane.lane]
        ended = [e for name, _b, _r, e in rows if name == lane.lane]
        matching = match_crossings(truth, ends)
        windows = [(d.start, d.end or time.time()) for d in cp.downtimes if d.lane == lane.lane]
        lane_missed = lane_excepted = 0
        for ti, vehicle in enumerate(truth):
            cis = matching.matches.get(ti, [])
            if not cis:
                start = _epoch(vehicle["start"])
                end = _epoch(vehicle["end"])
                if any(start < w_end and end > w_start for w_start, w_end in windows):
                    lane_excepted += 1
                else:
                    lane_missed += 1
                continue
            duplicates += len(cis) - 1
            if ended[cis[0]]:
                latencies.append((ends[cis[0]][1] - _epoch(vehicle["end"])) * 1000.0)
            else:
                unended += 1
        vehicles += len(truth)
        missed += lane_missed
        excepted += lane_excepted
        phantoms += len(matching.phantoms)
        merged += matching.merged
        made = outbox_events(lane.workdir / "state")
        per_lane[lane.lane] = {"kind": lane.kind, "vehicles": len(truth), "rows": len(ends),
                               "missed": lane_missed, "missed_agent_down": lane_excepted,
                               "events_made": len(made)}  # fmt: skip
    gaps = _query(
        cp.dsn,
        "SELECT count(*), count(*) FILTER (WHERE state = 'repaired'),"
        " count(*) FILTER (WHERE state = 'open'),"
        " (SELECT coalesce(sum(count), 0) FROM losses) FROM gaps",
    )[0]
    made_all: set[str] = set()
    crossings_made = 0
    for lane in cp.site_lanes:
        made_all |= outbox_events(lane.workdir / "state")
        crossings_made += len(outbox_events(lane.workdir / "state", "crossing_id"))
    stored = {row[0] for row in _query(cp.dsn, "SELECT event_id FROM events")}
    quarantined = _query(cp.dsn, "SELECT count(*) FROM quarantine")[0][0]
    return {
        "vehicles": vehicles,
        "register_crossings": len(rows),
        "missed": missed,
        "duplicates": duplicates,
        "gaps_opened": gaps[0],
        "gaps_repaired": gaps[1],
        "lost": int(gaps[3]),
        "latency_p50_ms": _percentile(latencies, 0.5),
        "latency_p95_ms": _percentile(latencies, 0.95),
        "faults": [],
        "missed_agent_down": excepted,
        "phantoms": phantoms,
        "merged": merged,
        "not_ended": unended,
        "gaps_open": gaps[2],
        "crossings_made": crossings_made,
        "events_made": len(made_all),
        "events_missing": len(made_all - stored),
        "quarantined": quarantined,
        "lanes": per_lane,
    }


def _epoch(value: str) -> float:
    from datetime import datetime

    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def run_checkpoint(
    *,
    lanes: int,
    vehicles: int,
    workdir: Path,
    speedup: float = 2.0,
    faults: tuple[str, ...] = (),
    seed: int = 1,
    settle_timeout_s: float = 180.0,
    progress: Any = None,
) -> dict[str, Any]:
    """Start the checkpoint, let every vehicle pass (injecting ``faults``), wait until the
    register holds every event the lanes made (or ``settle_timeout_s``), score, stop."""
    cp = Checkpoint(
        lanes=lanes,
        vehicles=vehicles,
        workdir=workdir,
        speedup=speedup,
        seed=seed,
        private_postgres="postgres_restart" in faults,
    )
    started = time.monotonic()
    try:
        cp.start()
        planned = [lane.devices.vehicles for lane in cp.site_lanes if lane.devices.vehicles]
        first_s = min(v[0].start_s for v in planned) / speedup
        last_s = max(v[-1].end_s for v in planned) / speedup
        chaos_thread = (
            Chaos(cp, faults, seed=seed, first_s=first_s, duration_s=last_s - first_s)
            if faults
            else None
        )
        if chaos_thread is not None:
            chaos_thread.start()
        while not cp.vehicles_done() or (chaos_thread is not None and chaos_thread.is_alive()):
            cp.check_alive()
            if progress is not None:
                progress(cp)
            time.sleep(1.0)
        # Done when the register holds everything and the lanes made nothing new for a while
        # (a loaded host can take seconds to end the last vehicles' crossings).
        deadline = time.monotonic() + settle_timeout_s
        last_made, quiet_since = -1, time.monotonic()
        while time.monotonic() < deadline:
            cp.check_alive()
            complete, made = settled(cp)
            if made != last_made:
                last_made, quiet_since = made, time.monotonic()
            elif complete and time.monotonic() - quiet_since >= QUIET_S:
                break
            time.sleep(1.0)
        result = score_register(cp)
        if chaos_thread is not None:
            if chaos_thread.error is not None:
                raise RuntimeError(f"a fault could not be injected: {chaos_thread.error}")
            result["faults"] = chaos_thread.injected
        result |= {"lanes_run": lanes, "speedup": speedup, "seed": seed, "chaos": bool(faults),
                   "postgres": "private (initdb)" if cp.postgres is not None else "machine",
                   "wall_s": round(time.monotonic() - started, 1)}  # fmt: skip
        return result
    finally:
        cp.stop()
