"""`lane sim --scenario FILE`: start a whole simulated lane, print its endpoints and config.

Every simulator speaks its device's wire protocol on a real transport (ptys, TCP, Modbus
TCP, HTTP), so the printed lane config runs the real agent against them:
``lane sim --scenario S.yaml --config-out sim-lane.yaml`` then ``lane run -c sim-lane.yaml``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import signal
import sys
from pathlib import Path
from typing import Any

import yaml


def add_parser(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("sim", help="run a simulated lane from a scenario file")
    parser.add_argument("--scenario", "-s", type=Path, required=True, help="scenario (YAML)")
    parser.add_argument(
        "--truth", type=Path, default=Path("sim-truth.jsonl"), help="ground truth (JSON lines)"
    )
    parser.add_argument("--config-out", type=Path, help="also write the lane config here")
    parser.add_argument("--speedup", type=float, help="override the scenario's speedup")
    parser.add_argument(
        "--plan", action="store_true", help="print the planned vehicles and exit (no devices)"
    )
    parser.add_argument(
        "--linger", action="store_true", help="keep the devices up after the last vehicle"
    )
    parser.set_defaults(func=cmd_sim)


def _config_with_secret_refs(config: dict[str, Any], secrets_dir: Path) -> dict[str, Any]:
    """Lane configs never hold secrets inline: move camera passwords into files."""
    devices = []
    for device in config["devices"]:
        device = dict(device)
        if "password" in device:
            secrets_dir.mkdir(parents=True, exist_ok=True)
            path = secrets_dir / f"{device['id']}.password"
            path.write_text(str(device["password"]))
            path.chmod(0o600)
            device["password"] = {"file": str(path.resolve())}
        devices.append(device)
    return config | {"devices": devices}


def cmd_sim(args: argparse.Namespace) -> int:
    from simulators.scenario import Scenario, ScenarioError, SimulatedLane, plan, plan_summary

    try:
        scenario = Scenario.load(args.scenario)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.speedup:
        scenario = scenario.model_copy(update={"speedup": args.speedup})
    if args.plan:
        for vehicle in plan_summary(plan(scenario)):
            print(json.dumps(vehicle, ensure_ascii=False))
        return 0
    args.truth.unlink(missing_ok=True)

    async def main() -> None:
        lane = SimulatedLane(scenario, truth_path=args.truth)
        endpoints = await lane.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        secrets_dir = (args.config_out or args.truth).parent / "sim-secrets"
        config = _config_with_secret_refs(lane.lane_config(), secrets_dir)
        text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        if args.config_out:
            args.config_out.write_text(text)
        print("# endpoints")
        for name, url in endpoints.items():
            print(f"#   {name:18} {url}")
        print(f"# {len(lane.vehicles)} vehicles, speedup {scenario.speedup}, truth -> {args.truth}")
        print("# lane config:")
        print(text, flush=True)
        done = asyncio.create_task(lane.wait())
        waiters = [done, asyncio.create_task(stop.wait())]
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
            if done.done() and args.linger and not stop.is_set():
                print("# timeline finished; devices stay up (Ctrl-C to stop)", flush=True)
                await stop.wait()
        finally:
            for task in waiters:
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await lane.stop()
        print(f"# {len(lane.truth)} vehicles written to {args.truth}", flush=True)

    asyncio.run(main())
    return 0
