"""Chaos (issue 21 acceptance): a simulated lane on its real wire protocols, the agent and the
broker SIGKILLed at random moments, a consumer with a persistent session.

What must hold: every crossing that got a `new` gets exactly one `end` (one the restarted
agent makes with `end_reason: interrupted` when the kill left it open), and after one
`cmd/replay` round no `lane_seq` is missing. Vehicles that pass while the agent is down have no
crossing at all: that is counted, not asserted away.
"""

from __future__ import annotations

import json
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest

from edge.config import load_config
from edge.devtools.harness import DEFAULT_SCENARIO, LaneHarness
from edge.lane import open_outbox
from simulators.scenario import RandomVehicles, Scenario
from tests.integration.support import Consumer, send_command, wait_until

pytestmark = pytest.mark.slow

VEHICLES = 20
MAX_FAULTS = 3


def pending_crossings(config: Path) -> int:
    outbox = open_outbox(load_config(config), read_only=True)
    try:
        return outbox.stats().pending_crossings
    finally:
        outbox.close()


def missing(events: list[dict[str, object]]) -> list[int]:
    seqs = {int(e["lane_seq"]) for e in events}  # type: ignore[call-overload]
    return [s for s in range(1, max(seqs) + 1) if s not in seqs] if seqs else []


@pytest.mark.parametrize("seed", [11, 29])
def test_agent_and_broker_killed_at_random_every_new_gets_one_end(
    tmp_path: Path, seed: int
) -> None:
    rng = random.Random(seed)
    scenario = Scenario.load(DEFAULT_SCENARIO)
    scenario = scenario.model_copy(
        update={
            "speedup": 4,
            "vehicles": scenario.vehicles[:VEHICLES],
            "random_vehicles": RandomVehicles(count=0),
            "faults": [],
        }
    )
    harness = LaneHarness(scenario, tmp_path, settle_s=1.0, persistent_broker=True)
    harness.start()
    port = harness.broker.port
    topic = f"{harness.topic_base}/crossing"
    consumer = Consumer(port, topic=topic, client_id="chaos-consumer", persistent=True)
    consumer.wait_subscribed()
    faults: list[str] = []
    gaps: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while not any("/device/" in d.topic for d in harness.delivered):
            assert time.monotonic() < deadline, "no device came up"
            harness.poll(0.2)
        while not harness.vehicles_done():
            harness.poll(rng.uniform(6.0, 12.0))
            if harness.vehicles_done() or len(faults) >= MAX_FAULTS:
                continue
            if rng.random() < 0.5:
                harness.kill_agent()
                faults.append("agent SIGKILL")
                time.sleep(rng.uniform(0.5, 2.0))
                harness.start_agent()
            else:
                harness.broker.kill()
                faults.append("broker SIGKILL")
                time.sleep(rng.uniform(0.5, 2.0))
                harness.broker.start()
        assert harness.agent_alive(), harness.agent_log.read_text()[-3000:]
        wait_until(lambda: pending_crossings(harness.config_path) == 0, 90, "outbox drained")
        time.sleep(1.0)
        gaps = missing(consumer.crossings())
        if gaps:  # one replay round, as a consumer would ask
            request = json.dumps({"from_seq": gaps[0], "to_seq": gaps[-1]}).encode()
            send_command(port, "replay", b"chaos", payload=request, cmd=f"{harness.topic_base}/cmd")
            wait_until(lambda: not missing(consumer.crossings()), 60, f"the gaps {gaps} filled")
    finally:
        harness.stop()
        consumer.close()

    assert faults, "no fault was injected"
    events = {str(e["event_id"]): e for e in consumer.crossings()}.values()  # dedupe
    assert not missing(list(events))
    by_crossing: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for event in events:
        by_crossing[str(event["crossing_id"])][str(event["type"])] += 1
    news = [c for c, types in by_crossing.items() if types["new"]]
    interrupted = sum(e.get("end_reason") == "interrupted" for e in events)
    print(f"faults {faults}: {len(news)} crossings for {VEHICLES} vehicles, "
          f"{interrupted} ended as interrupted, replayed gaps {gaps}")  # fmt: skip
    assert news, "no crossing was made"
    wrong = {c: dict(t) for c, t in by_crossing.items() if t["new"] and t["end"] != 1}
    assert not wrong, f"faults {faults}: crossings without exactly one end: {wrong}"
    orphans = {c: dict(t) for c, t in by_crossing.items() if t["end"] and not t["new"]}
    assert not orphans, f"an end without its new: {orphans}"
