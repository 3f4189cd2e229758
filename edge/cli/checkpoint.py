"""`lane checkpoint sim|score`: a whole simulated checkpoint (edge.devtools.checkpoint).

lane checkpoint sim --lanes N --vehicles M [--speedup X]    watch the register fill
lane checkpoint score --lanes N --vehicles M [--chaos] [--seed S] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

# The faults `lane checkpoint score` can inject (edge/devtools/checkscore.py), by name: here,
# not in edge/devtools, so that building the parser imports no developer tooling.
FAULTS = ("agent_sigkill", "broker_sigkill", "broker_sigstop", "ingest_sigkill", "postgres_restart")


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "checkpoint", help="a simulated checkpoint: N lanes, site broker, PostgreSQL, ingest"
    )
    commands = parser.add_subparsers(dest="checkpoint_command", metavar="COMMAND", required=True)
    for name, help_text in (
        ("sim", "run N simulated lanes into one register and show it fill"),
        ("score", "score the register against every lane's ground truth"),
    ):
        command = commands.add_parser(name, help=help_text)
        command.add_argument("--lanes", type=_count(1, 24), default=2, help="lanes (1-24)")
        command.add_argument(
            "--vehicles", type=_count(1, 1000), default=10, help="vehicles per lane (1-1000)"
        )
        command.add_argument("--speedup", type=float, default=2.0, help="device time x (default 2)")
        command.add_argument("--seed", type=int, default=1, help="traffic and fault seed")
        command.add_argument(
            "--workdir", type=Path, help="keep configs, logs and state here (default: a temp dir)"
        )
        if name == "score":
            command.add_argument(
                "--chaos", action="store_true", help="SIGKILL/SIGSTOP processes, restart PostgreSQL"
            )
            command.add_argument(
                "--faults",
                type=_faults,
                help="only these faults, comma separated: " + ", ".join(FAULTS),
            )
            command.add_argument("--json", action="store_true", help="one JSON object")
        command.set_defaults(func=cmd_checkpoint)


def _faults(text: str) -> tuple[str, ...]:
    kinds = tuple(k.strip() for k in text.split(",") if k.strip())
    unknown = [k for k in kinds if k not in FAULTS]
    if unknown or not kinds:
        raise argparse.ArgumentTypeError(f"faults are among {', '.join(FAULTS)}")
    return kinds


def _count(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"{value} is not within {low}..{high}")
        return value

    return parse


def _progress() -> Any:
    shown: set[str] = set()

    def show(cp: Any) -> None:
        from edge.devtools.checkscore import _query

        try:
            rows = _query(
                cp.dsn,
                "SELECT crossing_id, lane, start_at, plates, gross_kg, alarms FROM crossings"
                " WHERE ended ORDER BY updated_at",
            )
        except Exception:  # the register is not up yet, or PostgreSQL is restarting
            return
        for crossing_id, lane, start, plates, gross, alarms in rows:
            if crossing_id not in shown:
                shown.add(crossing_id)
                weight = f"{gross:.0f} kg" if gross is not None else "-"
                print(f"{start:%H:%M:%S} {lane:4} {','.join(plates) or '(no plate)':24} "
                      f"{weight:>9} {','.join(alarms)}", flush=True)  # fmt: skip

    return show


def cmd_checkpoint(args: argparse.Namespace) -> int:
    from edge.cli import _exit_on_sigterm
    from edge.devtools.checkscore import run_checkpoint

    if args.speedup <= 0 or args.speedup > 100:
        print("error: --speedup is within (0, 100]", file=sys.stderr)
        return 2
    _exit_on_sigterm()
    scoring = args.checkpoint_command == "score"
    quiet = scoring and args.json
    result = run_checkpoint(
        lanes=args.lanes,
        vehicles=args.vehicles,
        speedup=args.speedup,
        seed=args.seed,
        faults=(args.faults or (FAULTS if args.chaos else ())) if scoring else (),
        workdir=args.workdir or Path(tempfile.mkdtemp(prefix="lane-checkpoint-")),
        progress=None if quiet or scoring else _progress(),
    )
    if quiet:
        print(json.dumps(result))
        return 0
    for key, value in result.items():
        if isinstance(value, dict | list) and value:
            print(key)
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for name, item in items:
                print(f"  {name}: {json.dumps(item)}")
        else:
            print(f"{key:<22} {value}")
    return 0
