"""`lane demo`: a whole simulated lane (default scenario), the agent and a local broker; the
crossings are shown live as a consumer receives them, then a summary."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from edge.harness import DEFAULT_SCENARIO, LaneHarness
from edge.lane import describe_event


def run_demo(*, scenario_path: Path, vehicles: int | None, speedup: float) -> int:
    from simulators.scenario import RandomVehicles, Scenario

    scenario = Scenario.load(scenario_path)
    updates: dict[str, Any] = {"speedup": speedup}
    if vehicles is not None:
        scripted = scenario.vehicles[:vehicles]
        updates |= {
            "vehicles": scripted,
            "random_vehicles": RandomVehicles(count=max(0, vehicles - len(scripted))),
        }
    scenario = scenario.model_copy(update=updates)
    workdir = Path(tempfile.mkdtemp(prefix="lane-demo-"))
    harness = LaneHarness(scenario, workdir).start()
    print(f"scenario {scenario_path} ({len(harness.lane.vehicles)} vehicles, x{speedup:g})")
    print(
        f"broker   mosquitto on 127.0.0.1:{harness.broker.port}  "
        f"(watch: mosquitto_sub -p {harness.broker.port} -t 'border/#' -v)"
    )
    print(f"config   {harness.config_path}\nagent    log in {harness.agent_log}\n")
    try:
        while not harness.vehicles_done() and harness.agent_alive():
            _show(harness.poll(0.5))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            _show(harness.poll(0.3))
    except KeyboardInterrupt:
        pass
    finally:
        harness.stop()
    ends = [d.body for d in harness.crossings("end")]
    identified = sum(bool(e.get("plates")) for e in ends)
    alarms = sum(bool(e.get("alarms")) for e in ends)
    statuses = [
        d.body.get("state")
        for d in harness.delivered
        if d.topic.endswith("/status") and "/device/" not in d.topic
    ]
    print(
        f"\nsummary: {len(harness.truth)} vehicles passed, {len(ends)} crossings published "
        f"({identified} with a plate, {alarms} with alarms); lane status now "
        f"{statuses[-1] if statuses else '?'}; files in {workdir}"
    )
    return 0 if ends else 1


def _show(delivered: list[Any]) -> None:
    for d in delivered:
        if d.topic.endswith("/crossing"):
            print(describe_event(d.body), flush=True)
        elif "/device/" in d.topic:
            b = d.body
            print(
                f"-- device {b['device']}: {b['state']}"
                f"{' (' + b['last_error'] + ')' if b.get('last_error') else ''}",
                flush=True,
            )
        elif d.topic.endswith("/status"):
            print(
                f"-- lane {d.body.get('state')}"
                f"{' alarms: ' + ', '.join(d.body['alarms']) if d.body.get('alarms') else ''}",
                flush=True,
            )


__all__ = ["DEFAULT_SCENARIO", "run_demo"]
