"""`lane sim --scenario FILE`: start a whole simulated lane, print its endpoints and config.

Every simulator speaks its device's wire protocol on a real transport (ptys, TCP, Modbus
TCP, HTTP), so the printed lane config runs the real agent against them:
``lane sim --scenario S.yaml --config-out sim-lane.yaml --wait-for-agent`` then
``lane run -c sim-lane.yaml``. With ``--wait-for-agent`` the first vehicle waits until the
agent reports every device UP on the broker (or Enter is pressed). The config names a link
to each pty under ``<config-out>.run/``, which the sim removes when it stops.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import queue
import signal
import sys
import time
from datetime import datetime
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
    parser.add_argument(
        "--wait-for-agent",
        action="store_true",
        help="start the vehicles when the agent reports every device UP (or on Enter)",
    )
    parser.add_argument(
        "--broker",
        metavar="HOST:PORT",
        help="the agent's MQTT broker: written into the config's mqtt section, and watched "
        "for the devices' status with --wait-for-agent (default 127.0.0.1:1883)",
    )
    parser.set_defaults(func=cmd_sim)


def _broker(value: str | None) -> tuple[str, int]:
    from edge.config import MqttConfig

    if not value:
        default = MqttConfig()
        return default.host, default.port
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"--broker {value!r}: give HOST:PORT, e.g. 127.0.0.1:1883")
    return host.removeprefix("[").removesuffix("]"), int(port)


async def _agent_ready(host: str, port: int, base: str, devices: list[str], since: float) -> None:
    """Until the agent's retained status says every device is UP (statuses from a former
    agent, published before ``since``, do not count)."""
    from edge.devtools.subscriber import Subscriber

    subscriber = None
    said = False
    while subscriber is None:
        try:
            subscriber = await asyncio.to_thread(
                Subscriber, host, port, [f"{base}/device/+/status"]
            )
        except OSError as exc:
            if not said:
                print(f"# waiting for the broker at {host}:{port} ({exc})", flush=True)
                said = True
            await asyncio.sleep(1.0)
    up: dict[str, bool] = {}
    try:
        while not all(up.get(d) for d in devices):
            try:
                message = await asyncio.to_thread(subscriber.messages.get, True, 0.5)
            except queue.Empty:
                continue
            try:
                body = json.loads(message.payload)
                produced = datetime.fromisoformat(str(body["produced"]).replace("Z", "+00:00"))
                device, state = str(body["device"]), str(body["state"])
            except (ValueError, KeyError, TypeError):
                continue
            if produced.timestamp() >= since:
                up[device] = state == "UP"
    finally:
        subscriber.close()


async def _enter_pressed() -> None:
    """Until Enter is pressed on a terminal on stdin (never, without one)."""
    if not sys.stdin.isatty():
        await asyncio.Event().wait()
    loop = asyncio.get_running_loop()
    pressed = asyncio.Event()
    loop.add_reader(sys.stdin.fileno(), pressed.set)
    try:
        await pressed.wait()
    finally:
        loop.remove_reader(sys.stdin.fileno())
    sys.stdin.readline()  # the line is there: no wait


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


async def _wait_for_agent(
    lane: Any, config: dict[str, Any], broker: tuple[str, int], since: float, stop: asyncio.Event
) -> None:
    """Begin the timeline once the agent's devices are UP, or on Enter, or not at all (stop)."""
    from edge.config import MqttConfig

    prefix = MqttConfig().topic_prefix
    base = f"{prefix}/{config['checkpoint']}/{config['lane']}"
    devices = [d["id"] for d in config["devices"]]
    print(
        f"# waiting for the agent: start it with the config above (lane run -c ...); the "
        f"vehicles start when {base}/device/+/status says all {len(devices)} devices are UP "
        f"on {broker[0]}:{broker[1]}, or press Enter",
        flush=True,
    )
    ready = asyncio.create_task(_agent_ready(*broker, base, devices, since - 1.0))
    enter = asyncio.create_task(_enter_pressed())
    stopped = asyncio.create_task(stop.wait())
    await asyncio.wait([ready, enter, stopped], return_when=asyncio.FIRST_COMPLETED)
    for task in (ready, enter, stopped):
        task.cancel()
    if stop.is_set():
        return
    why = "the agent's devices are UP" if ready.done() and not ready.cancelled() else "Enter"
    print(f"# {why}: the vehicles start now", flush=True)
    lane.begin()


def cmd_sim(args: argparse.Namespace) -> int:
    from simulators.scenario import Scenario, ScenarioError, SimulatedLane, plan, plan_summary

    try:
        scenario = Scenario.load(args.scenario)
    except ScenarioError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.speedup:
        scenario = scenario.model_copy(update={"speedup": args.speedup})
    try:
        broker = _broker(args.broker)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if args.plan:
        for vehicle in plan_summary(plan(scenario)):
            print(json.dumps(vehicle, ensure_ascii=False))
        return 0
    args.truth.unlink(missing_ok=True)

    out = args.config_out or args.truth
    run_dir = out.parent / f"{out.stem}.run"

    async def main() -> None:
        lane = SimulatedLane(scenario, truth_path=args.truth, run_dir=run_dir)
        endpoints = await lane.start(begin=not args.wait_for_agent)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        secrets_dir = (args.config_out or args.truth).parent / "sim-secrets"
        config = _config_with_secret_refs(lane.lane_config(), secrets_dir)
        config["mqtt"] = {"host": broker[0], "port": broker[1]}
        text = yaml.safe_dump(config, sort_keys=False, allow_unicode=True)
        if args.config_out:
            args.config_out.write_text(text)
        print("# endpoints")
        for name, url in endpoints.items():
            print(f"#   {name:18} {url}")
        print(f"# {len(lane.vehicles)} vehicles, speedup {scenario.speedup}, truth -> {args.truth}")
        print("# lane config:")
        print(text, flush=True)
        waiting = time.time()
        done = asyncio.create_task(lane.wait())
        waiters = [done, asyncio.create_task(stop.wait())]
        try:
            if args.wait_for_agent:
                await _wait_for_agent(lane, config, broker, waiting, stop)
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
