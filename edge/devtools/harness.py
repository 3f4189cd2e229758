"""A whole simulated lane on this machine: scenario simulators, a Mosquitto, the agent.

Used by `lane demo` (show the crossings live) and `lane score` (compare them with the
scenario's ground truth). The simulators run on their own event loop in a thread, like
separate devices; the agent is a real `lane run` process; a consumer records what the
broker delivers, with its arrival time.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from edge.devtools.localbroker import LocalBroker
from edge.devtools.subscriber import Subscriber

AGENT_START_S = 8.0
DEFAULT_SCENARIO = Path(__file__).resolve().parents[2] / "simulators/scenarios/default.yaml"


@dataclass(frozen=True, slots=True)
class Delivered:
    topic: str
    body: dict[str, Any]
    received: datetime


class LaneHarness:
    def __init__(
        self,
        scenario: Any,
        workdir: Path,
        *,
        settle_s: float = 2.0,
        fusion: dict[str, Any] | None = None,
        persistent_broker: bool = False,
    ) -> None:
        from simulators.scenario import SimulatedLane

        # The agent needs a few seconds to start (models, device connections): the first
        # vehicle must not arrive before it is listening.
        delay = max(scenario.start_delay_s, AGENT_START_S * scenario.speedup)
        scenario = scenario.model_copy(update={"start_delay_s": delay})
        self.scenario = scenario
        self.workdir = workdir
        self.settle_s = settle_s
        self.fusion = fusion or {}
        self.lane = SimulatedLane(scenario, truth_path=workdir / "truth.jsonl")
        # persistent: the broker keeps sessions and queues on disk across a kill (chaos tests).
        self.broker = LocalBroker(workdir=workdir / "broker", persistent=persistent_broker)
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.agent: subprocess.Popen[bytes] | None = None
        self._vehicles: Any = None
        self.subscriber: Subscriber | None = None
        self.delivered: list[Delivered] = []
        self.duplicates = 0
        self.evidence: dict[str, bytes] = {}
        self._seen: set[str] = set()
        self.config_path = workdir / "lane.yaml"
        self.agent_log = workdir / "agent.log"

    def _run(self, coro: Any, timeout: float | None = 60) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def start(self) -> LaneHarness:
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.broker.start()
        self._thread.start()
        self._run(self.lane.start())
        self._vehicles = asyncio.run_coroutine_threadsafe(self.lane.wait(), self.loop)
        config = self.lane.lane_config()
        config["devices"] = [self._secret_refs(d) for d in config["devices"]]
        config["mqtt"] = {"host": "127.0.0.1", "port": self.broker.port}
        config["storage"] = {"state_dir": str(self.workdir / "state")}
        config["fusion"] = {"settle_s": self.settle_s, "min_gap_s": 0.3, **self.fusion}
        config["telemetry"] = {"interval_s": 10}
        self.config_path.write_text(yaml.safe_dump(config, sort_keys=False, allow_unicode=True))
        self.topic_base = f"border/{config['checkpoint']}/{config['lane']}"
        self.subscriber = Subscriber("127.0.0.1", self.broker.port, [f"{self.topic_base}/#"])
        self.subscriber.wait_ready()
        self.start_agent()
        return self

    def start_agent(self) -> None:
        """`lane run` on the lane's config (again, after a kill: the log is appended to)."""
        self.agent = subprocess.Popen(
            [sys.executable, "-m", "edge", "run", "--config", str(self.config_path)],
            stdout=self.agent_log.open("ab"),
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )

    def kill_agent(self) -> None:
        if self.agent is not None and self.agent.poll() is None:
            self.agent.send_signal(signal.SIGKILL)
            self.agent.wait(10)

    def _secret_refs(self, device: dict[str, Any]) -> dict[str, Any]:
        """Lane configs never hold secrets inline: a camera password goes into a file."""
        if "password" not in device:
            return device
        path = self.workdir / "secrets" / f"{device['id']}.password"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(str(device["password"]))
        path.chmod(0o600)
        return device | {"password": {"file": str(path)}}

    def poll(self, timeout_s: float = 0.2) -> list[Delivered]:
        """Messages delivered since the last poll."""
        assert self.subscriber is not None
        out = []
        try:
            msg = self.subscriber.messages.get(timeout=timeout_s)
            while True:
                if msg.topic.startswith(f"{self.topic_base}/evidence/"):
                    name = msg.topic.removeprefix(f"{self.topic_base}/evidence/")
                    self.evidence[name] = msg.payload  # "<crossing_id>/<file>"
                elif msg.payload:
                    body = json.loads(msg.payload)
                    event_id = body.get("event_id")
                    if event_id is not None and event_id in self._seen:
                        self.duplicates += 1  # at-least-once: consumers dedupe on event_id
                    else:
                        if event_id is not None:
                            self._seen.add(event_id)
                        out.append(Delivered(msg.topic, body, datetime.now(UTC)))
                msg = self.subscriber.messages.get_nowait()
        except queue.Empty:
            pass
        self.delivered += out
        return out

    def vehicles_done(self) -> bool:
        """Every planned vehicle has passed and its ground truth is recorded."""
        return self._vehicles is not None and self._vehicles.done()

    def agent_alive(self) -> bool:
        return self.agent is not None and self.agent.poll() is None

    def stop(self) -> None:
        if self.agent is not None:
            stop_process(self.agent, grace_s=60)
        time.sleep(0.3)
        self.poll(0.1)
        if self.subscriber is not None:
            self.subscriber.close()
        try:
            self._run(self.lane.stop(), 30)
        finally:
            self.loop.call_soon_threadsafe(self.loop.stop)
            self._thread.join(5)
            self.broker.stop()

    @property
    def truth(self) -> list[dict[str, Any]]:
        return list(self.lane.truth)

    def crossings(self, event_type: str | None = None) -> list[Delivered]:
        return [
            d
            for d in self.delivered
            if d.topic.endswith("/crossing")
            and (event_type is None or d.body["type"] == event_type)
        ]


def stop_process(proc: subprocess.Popen[bytes], *, grace_s: float) -> None:
    """SIGTERM, ``grace_s`` to stop in order (a lane ends its crossing, flushes), then KILL."""
    if proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(grace_s)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
