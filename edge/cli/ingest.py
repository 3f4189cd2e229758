"""`lane ingest`: the checkpoint register (edge.site).

lane ingest --config ingest.yaml                 run: broker -> PostgreSQL, nothing lost
lane ingest status --config ingest.yaml [--json] per lane: last seen, lane_seq, gaps, losses
lane ingest query --config ingest.yaml --plate P | --since T | --lane L [--json]
"""

from __future__ import annotations

import argparse
import json
import signal
import threading
from datetime import datetime
from pathlib import Path
from typing import Any


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("ingest", help="the checkpoint register: lanes -> PostgreSQL")
    parser.add_argument("--config", "-c", type=Path, help="ingest config (YAML)")
    parser.set_defaults(func=cmd_ingest)
    commands = parser.add_subparsers(dest="ingest_command", metavar="COMMAND")

    status = commands.add_parser("status", help="per lane: last seen, lane_seq, gaps, losses")
    status.add_argument("--config", "-c", type=Path, required=True, help="ingest config (YAML)")
    status.add_argument("--json", action="store_true", help="one JSON object")
    status.set_defaults(func=cmd_status)

    query = commands.add_parser("query", help="crossings by plate, time or lane")
    query.add_argument("--config", "-c", type=Path, required=True, help="ingest config (YAML)")
    query.add_argument("--plate", help="plate text (spaces and dashes ignored)")
    query.add_argument("--since", type=_when, help="ISO 8601 time, e.g. 2026-12-01T08:00Z")
    query.add_argument("--lane", help="lane id, or checkpoint/lane")
    query.add_argument("--limit", type=int, default=50, help="most rows (default 50)")
    query.add_argument("--json", action="store_true", help="one JSON object a line")
    query.set_defaults(func=cmd_query)

    forward = commands.add_parser("forward", help="committed events -> NATS JetStream")
    forward.add_argument("--config", "-c", type=Path, required=True, help="ingest config (YAML)")
    forward.set_defaults(func=cmd_forward)


def _when(text: str) -> datetime:
    try:
        return datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO 8601 time") from None


def _config(args: argparse.Namespace):
    from edge.errors import ConfigError, ConfigProblem
    from edge.site.config import load_ingest_config

    if args.config is None:
        raise ConfigError([ConfigProblem("command line", None, None, "--config", "required")])
    for module, package in (("psycopg", "psycopg"), ("nats", "nats-py")):
        try:
            __import__(module)
        except ImportError:
            raise ConfigError(
                [
                    ConfigProblem(
                        "installation",
                        None,
                        None,
                        "",
                        f"{package} is missing: pip install 'lane-agent[site]'",
                    )
                ]
            ) from None
    return load_ingest_config(args.config)


def cmd_ingest(args: argparse.Namespace) -> int:
    from edge.site.ingest import Ingest

    config = _config(args)
    if config.jetstream is not None:
        return _central(config)
    ingest = Ingest(config)
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda _s, _f: stop.set())
    ingest.run(stop)
    return 0


def _central(config: Any) -> int:
    """The centre: the same register from a JetStream durable consumer (edge.site.central)."""
    import asyncio

    from edge.site.central import CentralIngest

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await CentralIngest(config).run(stop)

    asyncio.run(main())
    return 0


def _read(args: argparse.Namespace, work: Any) -> Any:
    from edge.site.schema import connect

    with connect(_config(args), autocommit=True) as conn:
        return work(conn)


def cmd_status(args: argparse.Namespace) -> int:
    from edge.site.queries import forward_report, lane_report

    lanes = _read(args, lane_report)
    forwards = _read(args, forward_report)
    if args.json:
        print(json.dumps({"lanes": lanes, "forward": forwards}))
        return 0
    print(
        f"{'lane':<20} {'last seen':<25} {'lane_seq':>9} {'boot':>5} {'open gaps':>9}"
        f" {'missing':>8} {'repaired':>8} {'lost':>6} {'quar.':>6} {'flags':>5}  status"
    )
    for lane in lanes:
        print(
            f"{lane['checkpoint'] + '/' + lane['lane']:<20} {lane['last_seen'] or '-':<25}"
            f" {lane['last_lane_seq'] or '-':>9} {lane['boot_seq'] or '-':>5}"
            f" {lane['open_gaps']:>9} {lane['missing']:>8} {lane['gaps_repaired']:>8}"
            f" {lane['lost']:>6} {lane['quarantined']:>6} {lane['flags']:>5}"
            f"  {lane['status'] or '-'}"
        )
    for target in forwards:
        print(
            f"forward {target['target']}: {target['forwarded']} forwarded,"
            f" {target['behind']} waiting, {target['duplicates']} already there"
        )
    return 0


def cmd_query(args: argparse.Namespace) -> int:
    from edge.site.queries import find_crossings

    if args.plate is None and args.since is None and args.lane is None:
        print("error: give --plate, --since or --lane")
        return 2
    rows = _read(
        args,
        lambda conn: find_crossings(
            conn, plate=args.plate, since=args.since, lane=args.lane, limit=args.limit
        ),
    )
    for row in rows:
        if args.json:
            print(json.dumps(row, ensure_ascii=False))
            continue
        weight = f"{row['gross_kg']:,.0f} kg" if row["gross_kg"] is not None else "-"
        plates = ", ".join(row["plates"]) or "UNIDENTIFIED"
        state = "" if row["ended"] else "  (in progress)"
        alarms = f"  ALARM {', '.join(row['alarms'])}" if row["alarms"] else ""
        print(
            f"{row['start_at']}  {row['checkpoint']}/{row['lane']} {row['direction'] or ''}"
            f"  {plates:<24} {weight:>10}{alarms}{state}"
        )
    if not rows and not args.json:
        print("no crossing matches")
    return 0


def cmd_forward(args: argparse.Namespace) -> int:
    import asyncio

    from edge.errors import ConfigError, ConfigProblem
    from edge.site.forward import Forwarder

    config = _config(args)
    if config.forward is None:
        raise ConfigError([ConfigProblem(str(args.config), None, None, "forward", "missing")])
    forwarder = Forwarder(config)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await forwarder.run(stop)

    asyncio.run(_main())
    return 0
