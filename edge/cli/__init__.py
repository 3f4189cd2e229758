"""The `lane` command.

Exit codes: 0 success; 1 unexpected error; 2 invalid config or secret; 3 another agent holds
the lane; 4 outbox unusable; 5 device error (these are defined on the exception classes in
``edge.errors``); 70 `lane run` did not stop within 25 s of SIGTERM (every thread's stack is
in the log); 130 interrupted.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import faulthandler
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path

from edge.cli.help import document
from edge.config import config_json_schema, load_config
from edge.errors import ConfigError, LaneError

log = logging.getLogger("lane")


def _add_config(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", "-c", required=True, type=Path, help="lane config (YAML)")


def build_parser() -> argparse.ArgumentParser:
    from edge.events import agent_version

    parser = argparse.ArgumentParser(
        prog="lane",
        description="Border checkpoint lane agent: devices -> crossing events -> MQTT.",
        epilog="examples:\n  lane run --config /etc/lane-agent/lane-T1.yaml\n  lane demo\n"
        "  lane COMMAND --help   # each command's own options and examples",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"lane {agent_version()}")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING, ERROR")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="run the lane agent")
    _add_config(run)
    run.add_argument(
        "--log-file",
        type=Path,
        help="also log to this file, rotated at 10 MiB (5 kept): for an agent run from a "
        "shell, which has no journal; `lane diag bundle` takes it along",
    )
    run.set_defaults(func=cmd_run)

    config = sub.add_parser("config", help="check a lane config, print its schema")
    config_sub = config.add_subparsers(dest="config_command", required=True)
    check = config_sub.add_parser(
        "check",
        help="validate config files (exit 2 when invalid)",
        description="Check each file's structure (every problem in one round, each as "
        "file:line:column: key.path: message) and, unless --secrets skip, that every secret "
        "it references resolves here.",
    )
    check.add_argument("files", nargs="+", type=Path, help="lane config files (YAML)")
    check.add_argument(
        "--secrets",
        choices=("check", "skip"),
        default="check",
        help="check: every secret must resolve (env, file, credential) - the default; "
        "skip: check the structure only (a workstation or a fresh clone)",
    )
    check.add_argument(
        "--json", action="store_true", help="one JSON object per file, each problem placed"
    )
    check.set_defaults(func=cmd_config_check)
    schema = config_sub.add_parser("schema", help="print the lane config JSON Schema")
    schema.set_defaults(func=cmd_config_schema)

    outbox = sub.add_parser("outbox", help="the durable outbox")
    outbox_sub = outbox.add_subparsers(dest="outbox_command", required=True)
    stats = outbox_sub.add_parser("stats", help="pending, rejected, oldest age, alarms")
    _add_config(stats)
    stats.add_argument("--json", action="store_true", help="one JSON object")
    stats.set_defaults(func=cmd_outbox_stats)

    events = sub.add_parser("events", help="crossings in the local store")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    tail = events_sub.add_parser("tail", help="latest crossings, even with no broker")
    _add_config(tail)
    tail.add_argument("-n", type=int, default=20, help="how many (default 20)")
    tail.add_argument("--json", action="store_true", help="one event per line")
    tail.set_defaults(func=cmd_events_tail)

    contract = sub.add_parser("contract", help="JSON Schemas and AsyncAPI document")
    contract_sub = contract.add_subparsers(dest="contract_command", required=True)
    export = contract_sub.add_parser("export", help="write config/schemas and docs/asyncapi.yaml")
    export.add_argument("--check", action="store_true", help="only report drift (exit 1)")
    export.add_argument(
        "--root", type=Path, default=Path("."), help="repository root (default: here)"
    )
    export.set_defaults(func=cmd_contract_export)

    from edge import install

    setup = sub.add_parser("install", help="install into /opt, the systemd unit, /etc example")
    install.add_arguments(setup, uninstalling=False)
    setup.set_defaults(func=install.run_install)
    remove = sub.add_parser("uninstall", help="reverse `lane install`")
    install.add_arguments(remove, uninstalling=True)
    remove.set_defaults(func=install.run_uninstall)

    demo = sub.add_parser("demo", help="a whole simulated lane publishing to a local broker")
    demo.add_argument("--scenario", type=Path, help="scenario file (default: the built-in one)")
    demo.add_argument("--vehicles", type=int, default=12, help="how many vehicles (default 12)")
    demo.add_argument("--speedup", type=float, default=2.0, help="device time x (default 2)")
    demo.set_defaults(func=cmd_demo)

    score = sub.add_parser("score", help="score a simulated lane end to end against its truth")
    score.add_argument("--scenario", type=Path, help="scenario file (default: the built-in one)")
    score.add_argument("--vehicles", type=int, help="how many vehicles (default: the scenario's)")
    score.add_argument("--speedup", type=float, help="device time x (default: the scenario's)")
    score.add_argument("--settle-s", type=float, default=2.0, help="fusion settle time")
    score.add_argument("--json", action="store_true", help="one JSON object")
    score.set_defaults(func=cmd_score)

    from edge.cli import broker, checkpoint, diag, ingest, recognize, sim

    broker.add_parser(sub)
    recognize.add_parser(sub)
    sim.add_parser(sub)
    diag.add_parser(sub)
    ingest.add_parser(sub)
    checkpoint.add_parser(sub)
    document(parser)
    return parser


def main(argv: list[str] | None = None) -> int:
    from edge.logs import setup_logging

    args = build_parser().parse_args(argv)
    setup_logging(args.log_level.upper(), log_file=getattr(args, "log_file", None))
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        for problem in exc.problems:
            print(f"error: {problem}", file=sys.stderr)
        return exc.exit_code
    except LaneError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        return 130
    except ModuleNotFoundError as exc:
        name = exc.name or ""
        missing = [p for p in DEVELOPER_PACKAGES if name == p or name.startswith(f"{p}.")]
        if not missing:
            raise
        print(
            f"error: `lane {args.command}` is developer tooling that this install leaves out "
            f"(no {missing[0]}: a runtime-only wheel, LANE_AGENT_WHEEL=runtime); "
            "install the full lane-agent wheel to run it",
            file=sys.stderr,
        )
        return 1


# What a runtime-only wheel leaves out (setup.py); `lane run` never imports them.
DEVELOPER_PACKAGES = ("edge.devtools", "simulators")


# A stop that takes longer is a bug: the agent writes every thread's stack to the log and
# exits, before systemd's SIGKILL (TimeoutStopSec=30 in systemd/lane@.service) leaves no trace.
STOP_DEADLINE_S = 25.0
EXIT_STOP_STUCK = 70


def arm_stop_deadline(deadline_s: float = STOP_DEADLINE_S) -> threading.Timer:
    """From now, the process has ``deadline_s`` to stop by itself."""

    def give_up() -> None:
        log.critical(
            "the agent did not stop within %g s of the stop request; every thread's stack "
            "follows, then it exits %d",
            deadline_s,
            EXIT_STOP_STUCK,
        )
        for handler in logging.getLogger().handlers:
            handler.flush()
        faulthandler.dump_traceback(file=sys.stderr, all_threads=True)
        sys.stderr.flush()
        os._exit(EXIT_STOP_STUCK)

    timer = threading.Timer(deadline_s, give_up)
    timer.name = "stop-deadline"
    timer.daemon = True
    timer.start()
    return timer


def cmd_run(args: argparse.Namespace) -> int:
    from edge.lane import LaneAgent
    from edge.redact import install_log_redaction, remember

    config = load_config(args.config)
    remember(config)  # every log line, device status and diag reply is redacted from here on
    install_log_redaction()
    agent = LaneAgent(config)
    from edge.logs import note_log_file

    note_log_file(config.storage.resolved_state_dir(), args.log_file)

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def request_stop() -> None:
            if not stop.is_set():
                arm_stop_deadline()
                stop.set()

        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, request_stop)
        loop.add_signal_handler(signal.SIGHUP, agent.request_reload)
        await agent.run(stop)

    asyncio.run(_main())
    return 0


def cmd_config_check(args: argparse.Namespace) -> int:
    if args.json:
        return _config_check_json(args)
    bad = 0
    for path in args.files:
        try:
            config = load_config(path, secrets=args.secrets)
        except ConfigError as exc:
            bad += 1
            for problem in exc.problems:
                print(f"error: {problem}")
            unresolved = sum(p.secret for p in exc.problems)
            if unresolved:
                structure = (
                    "structure OK"
                    if unresolved == len(exc.problems)
                    else f"{len(exc.problems) - unresolved} structure problem(s)"
                )
                print(
                    f"note: {path}: {structure}; {unresolved} secret(s) do not resolve here "
                    "(on the controller they come from the unit's LoadCredential= or its "
                    "environment). To check the structure only: "
                    f"lane config check --secrets skip {path}"
                )
            continue
        refs = len(config.secrets())
        secrets = (
            f"secrets not checked ({refs} referenced)"
            if args.secrets == "skip"
            else f"{refs} secret(s) resolve"
        )
        print(
            f"{path}: OK (checkpoint {config.checkpoint}, lane {config.lane}, "
            f"{len(config.devices)} devices; {secrets})"
        )
    return 2 if bad else 0


def _config_check_json(args: argparse.Namespace) -> int:
    """One JSON object per file: ``ok``, and each problem with its place (for scripts)."""
    bad = 0
    for path in args.files:
        out: dict[str, object] = {"file": str(path), "secrets": args.secrets}
        try:
            config = load_config(path, secrets=args.secrets)
        except ConfigError as exc:
            bad += 1
            out |= {"ok": False, "problems": [dataclasses.asdict(p) for p in exc.problems]}
        else:
            out |= {
                "ok": True,
                "checkpoint": config.checkpoint,
                "lane": config.lane,
                "devices": len(config.devices),
                "secrets_referenced": len(config.secrets()),
                "problems": [],
            }
        print(json.dumps(out, ensure_ascii=False))
    return 2 if bad else 0


def cmd_config_schema(_args: argparse.Namespace) -> int:
    print(json.dumps(config_json_schema(), indent=2))
    return 0


def _outbox_for(config_path: Path):
    from edge.errors import OutboxError
    from edge.lane import open_outbox

    config = load_config(config_path)
    path = config.storage.resolved_state_dir() / "outbox.db"
    if not path.exists():
        raise OutboxError(f"no outbox at {path}: the agent has not run with this config yet")
    return open_outbox(config, read_only=True)  # never change the running agent's store


def cmd_outbox_stats(args: argparse.Namespace) -> int:
    outbox = _outbox_for(args.config)
    stats = outbox.stats()
    outbox.close()
    if args.json:
        print(json.dumps(stats.as_dict()))
        return 0
    age = f"{stats.oldest_pending_age_s:.1f} s" if stats.oldest_pending_age_s is not None else "-"
    print(f"outbox        {outbox.path}")
    print(f"pending       {stats.pending} ({stats.pending_crossings} crossings)")
    print(f"oldest        {age}")
    print(f"rejected      {stats.rejected}")
    print(f"size          {stats.bytes} of {stats.max_bytes} bytes, bound {stats.max_rows} rows")
    print(f"boot_seq      {stats.boot_seq}")
    print(f"last lane_seq {stats.last_lane_seq}")
    print(f"alarms        {', '.join(stats.alarms) or 'none'}")
    return 0


def cmd_events_tail(args: argparse.Namespace) -> int:
    from edge.cli.text import describe_event, dumps

    outbox = _outbox_for(args.config)
    events = outbox.reader.latest_crossings(args.n)
    outbox.close()
    for event in events:
        if args.json:
            print(dumps(event))
        else:  # the crossing id, for `lane diag explain`
            print(f"{describe_event(event)}  [{event['_delivery']}]  {event.get('crossing_id')}")
    return 0


def cmd_contract_export(args: argparse.Namespace) -> int:
    from edge.contract import export

    changed = export(args.root, check=args.check)
    for path in changed:
        print(f"{'differs' if args.check else 'wrote'}: {path}")
    if args.check and changed:
        print("the contract files drifted from the code: run `lane contract export`")
        return 1
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from edge.devtools.demo import DEFAULT_SCENARIO, run_demo

    return run_demo(
        scenario_path=args.scenario or DEFAULT_SCENARIO,
        vehicles=args.vehicles,
        speedup=args.speedup,
    )


def _exit_on_sigterm() -> None:
    """SIGTERM ends the command as Ctrl-C does: its ``finally`` blocks run, so the broker,
    simulators and agent it started are stopped, not left behind."""

    def handler(signum: int, _frame: object) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, handler)


def cmd_score(args: argparse.Namespace) -> int:
    import tempfile

    from drivers.text import plain
    from edge.devtools.harness import DEFAULT_SCENARIO
    from edge.devtools.score import run_score

    _exit_on_sigterm()
    workdir = Path(tempfile.mkdtemp(prefix="lane-score-"))
    if not args.json:
        print(f"work dir {workdir} (lane config, agent log, ground truth)", flush=True)
    result = run_score(
        args.scenario or DEFAULT_SCENARIO,
        vehicles=args.vehicles,
        speedup=args.speedup,
        settle_s=args.settle_s,
        workdir=workdir,
        progress=not args.json,
    )
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            if isinstance(value, list) and value:
                print(key)  # one wrong plate, split or phantom a line
                for item in value:
                    print(f"  {plain(item)}")
            else:
                print(f"{key:<22} {plain(value)}")
    return 0
