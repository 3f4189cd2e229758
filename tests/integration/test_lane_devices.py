"""The agent on real simulated devices: pty weighbridge, TCP RPM, Modbus lane I/O.

One truck drives through; the crossing event carries its weight and radiation result, and a
dead RPM shows in the next crossing's coverage instead of silently missing.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable, Coroutine, Iterator
from pathlib import Path
from typing import Any

import pytest

from edge.devtools.localbroker import LocalBroker
from simulators.modbus import LaneIoSimulator
from simulators.rpm import RapiscanSimulator, RpmVehicle
from simulators.weighbridge import WeighbridgeSimulator
from tests.conftest import lane_yaml
from tests.integration.support import Agent, Consumer, wait_until


class SimLoop:
    """Simulators live on their own event loop in a thread, like separate devices."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()

    def run(self, coro: Coroutine[Any, Any, Any]) -> Any:
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(15)

    def call(self, fn: Callable[[], Any]) -> None:
        self.loop.call_soon_threadsafe(fn)

    def close(self) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def sims() -> Iterator[dict[str, Any]]:
    loop = SimLoop()
    scale = WeighbridgeSimulator("toledo", transport="pty", rate_hz=20)
    rpm = RapiscanSimulator(speedup=5.0, background_interval_s=1.0)
    io = LaneIoSimulator()
    urls = {
        "scale": loop.run(scale.start()),
        "rpm": loop.run(rpm.start()),
        "io": loop.run(io.start()),
    }
    yield {"loop": loop, "scale": scale, "rpm": rpm, "io": io, "urls": urls}
    for sim in (scale, rpm, io):
        loop.run(sim.stop())
    loop.close()


def devices_yaml(urls: dict[str, Any], rpm_port: int) -> str:
    return (
        "devices:\n"
        f"  - {{id: scale, kind: weighbridge.toledo, url: '{urls['scale']}', stable_frames: 3}}\n"
        f"  - {{id: rpm, kind: rpm.rapiscan, host: 127.0.0.1, port: {rpm_port},"
        " occupancy_timeout_s: 5, timeout_ms: 2000}\n"
        f"  - {{id: io, kind: laneio.modbus, host: 127.0.0.1, port: {urls['io']},"
        " poll_ms: 50, inputs: {entry_loop: 0, exit_loop: 1, light_curtain: 2}}\n"
    )


def drive_truck(sims: dict[str, Any], *, kg: float, gamma_cps: float) -> None:
    loop, scale, rpm, io = sims["loop"], sims["scale"], sims["rpm"], sims["io"]
    loop.call(lambda: io.set_input("entry_loop", True))
    loop.call(lambda: scale.set_weight(kg / 2, motion=True))
    time.sleep(0.5)
    loop.call(lambda: rpm.pass_vehicle(RpmVehicle(duration_s=3.0, gamma_cps=gamma_cps)))
    loop.call(lambda: scale.set_weight(kg))
    time.sleep(1.5)
    loop.call(lambda: io.set_input("entry_loop", False))
    loop.call(lambda: io.set_input("exit_loop", True))
    loop.call(lambda: scale.set_weight(0))
    time.sleep(0.4)
    loop.call(lambda: io.set_input("exit_loop", False))


def test_truck_crossing_on_simulated_devices(
    broker: LocalBroker, sims: dict[str, Any], tmp_path: Path
) -> None:
    config = tmp_path / "lane.yaml"
    config.write_text(
        lane_yaml(
            tmp_path / "state", broker.port, extra=devices_yaml(sims["urls"], sims["rpm"].port)
        )
    )
    consumer = Consumer(broker.port)
    consumer.wait_subscribed()
    try:
        with Agent(config) as agent:
            wait_until(
                lambda: all(
                    consumer.bodies(f"/device/{d}/status")
                    and consumer.bodies(f"/device/{d}/status")[-1]["state"] == "UP"
                    for d in ("scale", "rpm", "io")
                ),
                20,
                "every device UP",
            )
            drive_truck(sims, kg=38_650, gamma_cps=6000)
            wait_until(
                lambda: any(e["type"] == "end" for e in consumer.crossings()), 30, "end event"
            )
            (end,) = [e for e in consumer.crossings() if e["type"] == "end"]
            types = [e["type"] for e in consumer.crossings()]
            assert types[0] == "new" and types.count("end") == 1
            assert end["end_reason"] == "exit"
            assert abs(end["weight"]["gross_kg"] - 38_650) <= 10 and end["weight"]["stable"]
            assert end["radiation"]["gamma_alarm"] is True
            assert "radiation.gamma" in [a["code"] for a in end["alarms"]]
            assert end["identified"] is False  # no camera on this lane
            saw = {s["device"]: s["saw_vehicle"] for s in end["coverage"]["sensors"]}
            assert saw == {"scale": True, "rpm": True, "io": True}

            sims["loop"].run(sims["rpm"].stop())  # the RPM dies
            wait_until(
                lambda: consumer.bodies("/device/rpm/status")[-1]["state"] == "DOWN",
                20,
                "RPM reported DOWN",
            )
            drive_truck(sims, kg=12_000, gamma_cps=0)
            wait_until(
                lambda: [e["type"] for e in consumer.crossings()].count("end") == 2,
                30,
                "second end event",
            )
            second = [e for e in consumer.crossings() if e["type"] == "end"][-1]
            assert "radiation" not in second
            assert any(
                n.startswith("not radiation-screened: rpm DOWN")
                for n in second["coverage"]["notes"]
            )
            assert agent.stop() == 0, agent.output()[-8000:]
            assert agent.output().count("device rpm (rpm.rapiscan) is DOWN") == 1
    finally:
        consumer.close()
