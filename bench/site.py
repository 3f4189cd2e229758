"""Register benchmark: `lane ingest` draining a many-lane backlog, against a plain insert loop.

    python -m bench.site [--lanes 12] [--crossings 100000] [--live-lanes 2] [--out FILE]
    python -m bench.site --backlog-rate 200 ...   # each lane paced as a lane paces its backlog

One run, on this machine: a private PostgreSQL and Mosquitto, `lane ingest` as a process.
``--lanes`` publisher processes (one MQTT client each) replay a backlog of ``--crossings``
crossings at once (or each at ``--backlog-rate`` messages a second, as a lane's
``storage.backlog_rate_per_s`` paces it), each a ``new``, two ``update``s and an ``end`` with
evidence references, flagged ``historical`` like a lane's replay; meanwhile ``--live-lanes``
publishers send one live crossing (new + end) a second each. Reported: crossings per second
committed by the register (first publish -> last backlog event committed), the same rows
through a plain psycopg insert loop (events + crossings upsert, one transaction per 200
events) into a fresh database of the same schema, their ratio, and the live events' latency
while the backlog drained (``produced`` -> the committing transaction's ``now()``), and before
the backlog started (``--baseline-s``: the same live lanes with an idle register). Paced, the
drain rate is the lanes' and the ratio says nothing: measure the ratio at once.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

CHECKPOINT = "BENCH"
BATCH = 200
ROOT = Path(__file__).resolve().parents[1]


# --- the rows -------------------------------------------------------------------------------


def _event(
    lane: str, seq: int, kind: str, crossing: str, start: datetime, rng: random.Random, **extra: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {
        "schema": "lane.crossing/1",
        "type": kind,
        "event_id": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
        "crossing_id": crossing,
        "checkpoint": CHECKPOINT,
        "lane": lane,
        "direction": "entry",
        "lane_seq": seq,
        "boot_seq": 1,
        "start": start.isoformat(),
        "produced": datetime.now(UTC).isoformat(),
        "identified": True,
        "historical": extra.pop("historical", False),
        "agent_version": "bench",
    }
    body.update(extra)
    return body


def crossing_events(
    lane: str, index: int, *, first_seq: int, historical: bool, live: bool = False
) -> list[dict[str, Any]]:
    """One crossing: new, two updates (weight), end with plate and overview evidence refs."""
    rng = random.Random(f"{lane}/{index}")
    crossing = str(uuid.UUID(int=rng.getrandbits(128), version=4))
    start = datetime(2026, 12, 1, tzinfo=UTC) + timedelta(seconds=index * 40)
    if live:
        start = datetime.now(UTC)
    plate = f"{rng.randrange(100, 999)}ABC{rng.randrange(10, 99)}"
    sha = [hashlib.sha256(f"{crossing}/{n}".encode()).hexdigest() for n in range(2)]
    read = {
        "text": plate,
        "confidence": 0.9,
        "camera": "cam1",
        "position": "front",
        "evidence": [{"kind": "plate_crop", "file": "front-crop.jpg", "sha256": sha[0]}],
    }
    kinds = ["new", "end"] if live else ["new", "update", "update", "end"]
    events = []
    for n, kind in enumerate(kinds):
        extra: dict[str, Any] = {"historical": historical, "plates": [read]}
        if kind == "update" or kind == "end":
            extra["weight"] = {
                "gross_kg": 18000.0 + n * 10,
                "stable": kind == "end",
                "device": "wb",
            }
        if kind == "end":
            extra["end"] = (start + timedelta(seconds=30)).isoformat()
            extra["end_reason"] = "exit"
            extra["overview"] = [{"kind": "overview", "file": "overview.jpg", "sha256": sha[1]}]
        events.append(_event(lane, first_seq + n, kind, crossing, start, rng, **extra))
    return events


def backlog(lane: str, crossings: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for index in range(crossings):
        events += crossing_events(lane, index, first_seq=index * 4 + 1, historical=True)
    return events


def share(total: int, lanes: int, lane_index: int) -> int:
    return total // lanes + (1 if lane_index < total % lanes else 0)


def lane_ids(prefix: str, count: int) -> list[str]:
    return [f"{prefix}{n + 1:02d}" for n in range(count)]


# --- a publisher process --------------------------------------------------------------------


def publisher(args: argparse.Namespace) -> int:
    """One lane's MQTT client. Backlog: prepare, print 'ready', wait for 'go' on stdin,
    publish everything QoS 1, print the seconds it took. Live: a crossing every interval
    until SIGTERM."""
    import paho.mqtt.client as mqtt

    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=f"bench-{args.lane}",
        protocol=mqtt.MQTTv5,
    )
    client.max_inflight_messages_set(200)
    client.max_queued_messages_set(0)
    client.connect("127.0.0.1", args.port)
    client.loop_start()
    topic = f"border/{CHECKPOINT}/{args.lane}/crossing"
    if args.live_interval:
        stop = False

        def _stop(*_a: object) -> None:
            nonlocal stop
            stop = True

        signal.signal(signal.SIGTERM, _stop)
        print("ready", flush=True)
        sys.stdin.readline()
        index, infos = 0, []
        while not stop:
            for body in crossing_events(
                args.lane, index, first_seq=index * 2 + 1, historical=False, live=True
            ):
                infos.append(client.publish(topic, json.dumps(body).encode(), qos=1))
            index += 1
            time.sleep(args.live_interval)
        for info in infos:
            info.wait_for_publish(60)
        print(f"published {index}", flush=True)
    else:
        payloads = [json.dumps(e).encode() for e in backlog(args.lane, args.crossings)]
        print("ready", flush=True)
        sys.stdin.readline()
        started = time.monotonic()
        if args.backlog_rate:  # paced as a lane paces its backlog (storage.backlog_rate_per_s)
            infos = []
            for n, payload in enumerate(payloads):
                ahead = started + n / args.backlog_rate - time.monotonic()
                if ahead > 0:
                    time.sleep(ahead)
                infos.append(client.publish(topic, payload, qos=1))
        else:  # at once: the broker queues what the register has not taken yet
            infos = [client.publish(topic, p, qos=1) for p in payloads]
        for info in infos:
            info.wait_for_publish(600)
        print(f"published {len(payloads)} {time.monotonic() - started:.3f}", flush=True)
    client.disconnect()
    client.loop_stop()
    return 0


# --- the plain loop -------------------------------------------------------------------------

EVENT_SQL = (
    "INSERT INTO events (event_id, crossing_id, checkpoint, lane, type, lane_seq, boot_seq,"
    " epoch, produced, historical, content_sha256, body)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,1,%s,%s,%s,%s) ON CONFLICT DO NOTHING"
)
CROSSING_SQL = (
    "INSERT INTO crossings (crossing_id, checkpoint, lane, direction, start_at, end_at, ended,"
    " end_reason, event_id, lane_seq, identified, plates, gross_kg, body)"
    " VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s,%s) ON CONFLICT (crossing_id) DO UPDATE"
    " SET end_at=EXCLUDED.end_at, ended=EXCLUDED.ended, end_reason=EXCLUDED.end_reason,"
    " event_id=EXCLUDED.event_id, lane_seq=EXCLUDED.lane_seq, plates=EXCLUDED.plates,"
    " gross_kg=EXCLUDED.gross_kg, body=EXCLUDED.body, updated_at=now()"
    " WHERE crossings.lane_seq < EXCLUDED.lane_seq"
)


def plain_loop(dsn: str, events: list[dict[str, Any]]) -> float:
    """The same rows with a bare psycopg loop; returns seconds."""
    import psycopg
    from psycopg.types.json import Jsonb

    started = time.monotonic()
    with psycopg.connect(dsn) as conn:
        for at in range(0, len(events), BATCH):
            rows_e, rows_c = [], []
            for e in events[at : at + BATCH]:
                text = json.dumps(e, sort_keys=True)
                rows_e.append(
                    (e["event_id"], e["crossing_id"], e["checkpoint"], e["lane"], e["type"],
                     e["lane_seq"], e["boot_seq"], e["produced"], e["historical"],
                     hashlib.sha256(text.encode()).hexdigest(), Jsonb(e))
                )  # fmt: skip
                rows_c.append(
                    (e["crossing_id"], e["checkpoint"], e["lane"], e["direction"], e["start"],
                     e.get("end"), e["type"] == "end", e.get("end_reason"), e["event_id"],
                     e["lane_seq"], e["identified"], [p["text"] for p in e.get("plates", [])],
                     (e.get("weight") or {}).get("gross_kg"), Jsonb(e))
                )  # fmt: skip
            with conn.cursor() as cur:
                cur.executemany(EVENT_SQL, rows_e)
                cur.executemany(CROSSING_SQL, rows_c)
            conn.commit()
    return time.monotonic() - started


# --- the run --------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def run(args: argparse.Namespace) -> dict[str, Any]:
    import psycopg

    from edge.devtools.localbroker import LocalBroker
    from edge.devtools.localdb import LocalPostgres
    from edge.site.schema import migrate

    work = Path(tempfile.mkdtemp(prefix="bench-site-"))
    backlog_lanes = lane_ids("B", args.lanes)
    live_lanes = lane_ids("L", args.live_lanes)
    total_events = args.crossings * 4
    pg = LocalPostgres().start()
    broker = LocalBroker(workdir=work / "broker").start()
    procs: list[subprocess.Popen[str]] = []
    ingest: subprocess.Popen[bytes] | None = None
    try:
        config = work / "ingest.yaml"
        all_lanes = backlog_lanes + live_lanes
        config.write_text(
            f"broker: {{host: 127.0.0.1, port: {broker.port}, client_id: bench-register,"
            f" receive_maximum: {args.receive_maximum}}}\n"
            f"limits: {{batch: {args.batch}}}\n"
            f"checkpoints: [{{id: {CHECKPOINT}, lanes: [{', '.join(all_lanes)}]}}]\n"
            f"database: {{dsn: '{pg.dsn}'}}\nevidence: {{dir: {work / 'evidence'}}}\n"
        )
        log = (work / "ingest.log").open("wb")
        ingest = subprocess.Popen(
            [sys.executable, *(["-m", "cProfile", "-o", str(args.profile)] if args.profile else []),
             "-m", "edge", "ingest", "--config", str(config)],
            cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )  # fmt: skip
        deadline = time.monotonic() + 120
        while "subscribed to" not in (work / "ingest.log").read_text(errors="replace"):
            if time.monotonic() > deadline or ingest.poll() is not None:
                raise RuntimeError(f"ingest did not subscribe; see {work / 'ingest.log'}")
            time.sleep(0.2)

        def spawn(lane: str, *extra: str) -> subprocess.Popen[str]:
            return subprocess.Popen(
                [sys.executable, "-m", "bench.site", "publish", "--port", str(broker.port),
                 "--lane", lane, *extra],
                cwd=ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            )  # fmt: skip

        for n, lane in enumerate(backlog_lanes):
            procs.append(
                spawn(
                    lane,
                    "--crossings",
                    str(share(args.crossings, args.lanes, n)),
                    "--backlog-rate",
                    str(args.backlog_rate),
                )
            )
        live = [spawn(lane, "--live-interval", str(args.live_interval)) for lane in live_lanes]
        procs += live
        for proc in procs:
            assert proc.stdout is not None
            if proc.stdout.readline().strip() != "ready":
                raise RuntimeError("a publisher failed to start")

        def go(proc: subprocess.Popen[str]) -> None:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()

        for proc in live:  # the live lanes first: their latency with an idle register
            go(proc)
        time.sleep(args.baseline_s if live else 0.0)
        started = datetime.now(UTC)
        for proc in procs:
            if proc not in live:
                go(proc)
        backlog_sql = "SELECT count(*), max(received_at) FROM events WHERE lane LIKE 'B%%'"
        deadline = time.monotonic() + args.timeout_s
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            while True:
                count, last = conn.execute(backlog_sql).fetchone()  # type: ignore[misc]
                if count >= total_events:
                    break
                if time.monotonic() > deadline or ingest.poll() is not None:
                    raise RuntimeError(f"backlog not drained: {count} of {total_events}")
                time.sleep(1.0)
            for proc in live:
                proc.send_signal(signal.SIGTERM)
            for proc in procs:
                proc.wait(120)
            time.sleep(3.0)  # the live publishers' last events
            drain_s = (last - started).total_seconds()
            live_sql = (
                "SELECT extract(epoch FROM received_at - produced)::float FROM events"
                " WHERE lane LIKE 'L%%' AND produced >= %s AND produced <= %s"
            )
            latencies = [r[0] * 1000.0 for r in conn.execute(live_sql, (started, last))]
            idle = [
                r[0] * 1000.0
                for r in conn.execute(live_sql, (started - timedelta(days=1), started))
            ]
            check = conn.execute(
                "SELECT (SELECT count(*) FROM crossings WHERE lane LIKE 'B%%' AND ended),"
                " (SELECT count(*) FROM gaps), (SELECT count(*) FROM quarantine)"
            ).fetchone()
            assert check is not None
        ingest.send_signal(signal.SIGTERM)
        ingest.wait(60)
        events: list[dict[str, Any]] = []
        for n, lane in enumerate(backlog_lanes):
            events += backlog(lane, share(args.crossings, args.lanes, n))
        with psycopg.connect(pg.dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE plain")
        plain_dsn = pg.dsn.replace("dbname=postgres", "dbname=plain")
        with psycopg.connect(plain_dsn) as conn:
            migrate(conn)
        plain_s = plain_loop(plain_dsn, events)
        ingest_rate = args.crossings / drain_s
        plain_rate = args.crossings / plain_s
        return {
            "machine": f"{platform.machine()} {os.cpu_count()} cpu, shared",
            "lanes": args.lanes,
            "ingest_receive_maximum": args.receive_maximum,
            "ingest_batch": args.batch,
            "backlog_rate_per_lane": args.backlog_rate or "at once",
            "crossings": args.crossings,
            "events": total_events,
            "ingest_s": round(drain_s, 2),
            "ingest_crossings_per_s": round(ingest_rate, 1),
            "ingest_events_per_s": round(total_events / drain_s, 1),
            "plain_s": round(plain_s, 2),
            "plain_crossings_per_s": round(plain_rate, 1),
            "ratio": round(ingest_rate / plain_rate, 3),
            "register_crossings_ended": check[0],
            "gaps": check[1],
            "quarantined": check[2],
            "live_lanes": args.live_lanes,
            "live_events": len(latencies),
            "live_latency_p50_ms": round(percentile(latencies, 0.5), 1),
            "live_latency_p95_ms": round(percentile(latencies, 0.95), 1),
            "live_latency_max_ms": round(max(latencies, default=float("nan")), 1),
            "idle_live_events": len(idle),
            "idle_live_latency_p50_ms": round(percentile(idle, 0.5), 1),
            "idle_live_latency_p95_ms": round(percentile(idle, 0.95), 1),
            "live_latency_mean_ms": round(statistics.fmean(latencies), 1) if latencies else None,
        }
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
        if ingest is not None and ingest.poll() is None:
            ingest.kill()
        broker.stop()
        pg.destroy()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.site", description=__doc__)
    sub = parser.add_subparsers(dest="command")
    pub = sub.add_parser("publish", help="(internal) one lane's publisher process")
    pub.add_argument("--port", type=int, required=True)
    pub.add_argument("--lane", required=True)
    pub.add_argument("--crossings", type=int, default=0)
    pub.add_argument("--live-interval", type=float, default=0.0)
    pub.add_argument("--backlog-rate", type=float, default=0.0)
    parser.add_argument("--lanes", type=int, default=12, help="backlog publishers (lanes)")
    parser.add_argument(
        "--crossings", type=int, default=100_000, help="backlog crossings, all lanes"
    )
    parser.add_argument("--live-lanes", type=int, default=2, help="lanes publishing live")
    parser.add_argument("--live-interval", type=float, default=1.0, help="s between live crossings")
    parser.add_argument(
        "--receive-maximum", type=int, default=1000, help="ingest broker.receive_maximum"
    )
    parser.add_argument("--batch", type=int, default=200, help="ingest limits.batch")
    parser.add_argument(
        "--backlog-rate",
        type=float,
        default=0.0,
        help="messages/s each backlog lane publishes (a lane's storage.backlog_rate_per_s);"
        " 0: all at once",
    )
    parser.add_argument(
        "--baseline-s", type=float, default=15.0, help="live only, before the backlog starts"
    )
    parser.add_argument("--timeout-s", type=float, default=3600.0, help="give up draining after")
    parser.add_argument("--profile", type=Path, help="run the ingest under cProfile, stats here")
    parser.add_argument("--out", type=Path, help="write the result as JSON here")
    args = parser.parse_args(argv)
    if args.command == "publish":
        return publisher(args)
    if args.lanes < 1 or args.crossings < args.lanes or args.live_lanes < 0:
        parser.error("--lanes >= 1, --crossings >= --lanes, --live-lanes >= 0")
    result = run(args)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
