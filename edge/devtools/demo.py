"""`lane demo`: a whole simulated lane (default scenario), the agent and a local broker; the
crossings are shown live as a consumer receives them, then a summary against the scenario's
ground truth: which plates, weights and alarms were right, and what was wrong, by vehicle."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from edge.devtools.harness import DEFAULT_SCENARIO, LaneHarness
from edge.devtools.score import expected_plate, match_crossings, plate_right

WEIGHT_TOLERANCE = 0.02  # a weight within 2 % of the scenario's gross weight is right


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
    print(
        f"scenario {scenario_path}: {len(harness.lane.vehicles)} vehicles, devices run "
        f"{speedup:g}x faster than real time"
    )
    print(
        f"broker   mosquitto on 127.0.0.1:{harness.broker.port}  "
        f"(watch: mosquitto_sub -p {harness.broker.port} -t 'border/#' -v)"
    )
    print(f"config   {harness.config_path}\nagent    log in {harness.agent_log}\n")
    live = LiveView()
    died: int | None = None  # the agent's exit code when it ended by itself
    try:
        while not harness.vehicles_done() and harness.agent_alive():
            live.show(harness.poll(0.5))
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline and harness.agent_alive():
            live.show(harness.poll(0.3))
        if harness.agent is not None and not harness.agent_alive():
            died = harness.agent.returncode
    except KeyboardInterrupt:
        pass
    finally:
        harness.stop()
    ends = [(d.body, d.received.timestamp()) for d in harness.crossings("end")]
    for line in summary(harness.truth, ends, live):
        print(line)
    if died is not None:
        # Never a quiet "nothing wrong" for a lane that stopped: say so, with its last words.
        tail = harness.agent_log.read_text(errors="replace").splitlines()[-5:]
        print(f"the lane agent stopped by itself (exit {died}); the end of {harness.agent_log}:")
        print("\n".join(f"  {line}" for line in tail))
    print(f"files in {workdir}")
    return 0 if ends and died is None else 1


class LiveView:
    """Crossings numbered in the order they began; the lane's state when it changes."""

    def __init__(self) -> None:
        self.numbers: dict[str, int] = {}
        self.lane_state: str | None = None

    def number(self, crossing_id: str) -> int:
        return self.numbers.setdefault(crossing_id, len(self.numbers) + 1)

    def show(self, delivered: list[Any]) -> None:
        for d in delivered:
            body = d.body
            if d.topic.endswith("/crossing"):
                print(
                    f"crossing {self.number(body['crossing_id']):>3} {body['type']:<6} "
                    f"{_plates(body):<34} {_weight(body):>10}{_alarm_codes(body)}",
                    flush=True,
                )
            elif "/device/" in d.topic:
                error = f" ({body['last_error']})" if body.get("last_error") else ""
                print(f"-- device {body['device']}: {body['state']}{error}", flush=True)
            elif d.topic.endswith("/status"):
                # The lane repeats its status on every change of alarms or reconnect: show
                # what a person needs, the changes.
                state = str(body.get("state"))
                alarms = ", ".join(body.get("alarms") or ())
                shown = f"{state}{' alarms: ' + alarms if alarms else ''}"
                if shown != self.lane_state:
                    print(f"-- lane {shown}", flush=True)
                    self.lane_state = shown


def _plates(event: dict[str, Any]) -> str:
    plates = event.get("plates") or []
    return ", ".join(f"{p['position']} {p['text']}" for p in plates) or "no plate yet"


def _weight(event: dict[str, Any]) -> str:
    weight = event.get("weight")
    return f"{weight['gross_kg']:,.0f} kg" if weight else "-"


def _alarm_codes(event: dict[str, Any]) -> str:
    codes = [a["code"] for a in event.get("alarms") or ()]
    return f"  ALARM {', '.join(codes)}" if codes else ""


def summary(
    truth: list[dict[str, Any]], ends: list[tuple[dict[str, Any], float]], live: LiveView
) -> list[str]:
    """The demo's verdict: every vehicle against what the lane published for it."""
    matching = match_crossings(truth, ends)
    lines = ["", f"summary against the scenario's ground truth ({len(truth)} vehicles):"]
    plates_right = plates_total = weights_right = weights_total = 0
    alarms_right = alarms_total = 0
    wrong: list[str] = []
    for ti, vehicle in enumerate(truth):
        number = ti + 1
        cis = matching.matches.get(ti, [])
        if not cis:
            wrong.append(f"vehicle {number}: no crossing published")
            lines.append(f"  vehicle {number:>2} {vehicle['class']:<14} MISSED: no crossing")
            continue
        event = ends[cis[0]][0]
        if len(cis) > 1:
            wrong.append(f"vehicle {number}: split into {len(cis)} crossings")
        crossing = live.number(event["crossing_id"])
        read = {p["position"]: p["text"] for p in event.get("plates", [])}
        verdicts = []
        for position in ("front", "rear"):
            expected = expected_plate(vehicle, position)
            if expected is None or not expected.get("rendered", True):
                continue
            plates_total += 1
            if plate_right(read.get(position), expected):
                plates_right += 1
                verdicts.append(f"{position} {expected['text']} ok")
            else:
                got = read.get(position) or "(none)"
                verdicts.append(f"{position} {got} WRONG (is {expected['text']})")
                wrong.append(f"vehicle {number} {position} plate: {got}, is {expected['text']}")
        if "weight" in event:
            weights_total += 1
            kg, true_kg = event["weight"]["gross_kg"], vehicle["gross_kg"]
            if abs(kg - true_kg) <= WEIGHT_TOLERANCE * true_kg:
                weights_right += 1
                verdicts.append(f"{kg:,.0f} kg ok")
            else:
                verdicts.append(f"{kg:,.0f} kg WRONG (is {true_kg:,.0f})")
                wrong.append(f"vehicle {number} weight: {kg:,.0f} kg, is {true_kg:,.0f} kg")
        radiation = vehicle.get("radiation") or {}
        expected_alarm = bool(radiation.get("gamma_alarm") or radiation.get("neutron_alarm"))
        raised = [a for a in event.get("alarms") or () if a["code"].startswith("radiation.")]
        alarms_total += 1
        if bool(raised) == expected_alarm:
            alarms_right += 1
        else:
            what = "raised, none expected" if raised else f"missed ({radiation.get('profile')})"
            wrong.append(f"vehicle {number} radiation alarm {what}")
        lines.append(
            f"  vehicle {number:>2} {vehicle['class']:<14} crossing {crossing:>3}: "
            + "; ".join(verdicts)
        )
        for alarm in event.get("alarms") or ():
            lines.append(f"{'':>30}alarm {alarm['code']} ({alarm['severity']}): {alarm['message']}")
    extra = len(matching.phantoms)
    lines += [
        f"  plates   {plates_right} of {plates_total} read exactly",
        f"  weights  {weights_right} of {weights_total} weighed within {WEIGHT_TOLERANCE:.0%}",
        f"  alarms   radiation right for {alarms_right} of {alarms_total} vehicles",
        f"  crossings {len(ends)} published for {len(truth)} vehicles"
        + (f" ({extra} matching no vehicle)" if extra else ""),
    ]
    lines += ["  wrong:", *[f"    {w}" for w in wrong]] if wrong else ["  nothing wrong"]
    return lines


__all__ = ["DEFAULT_SCENARIO", "run_demo"]
