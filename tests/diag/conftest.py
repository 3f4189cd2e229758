"""A simulated lane for the diag tests: a pty weighbridge, a Modbus lane I/O module and a
radiation monitor whose port nobody listens on (the device that is down)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from simulators.modbus import LaneIoSimulator
from simulators.weighbridge import WeighbridgeSimulator
from tests.diag.support import SimLoop, dead_port


@pytest.fixture
def lane_sims() -> Iterator[dict[str, Any]]:
    loop = SimLoop()
    scale = WeighbridgeSimulator("toledo", transport="pty", rate_hz=20)
    io = LaneIoSimulator()
    urls = {"scale": loop.run(scale.start()), "io": loop.run(io.start())}
    devices = (
        "devices:\n"
        f"  - {{id: scale, kind: weighbridge.toledo, url: '{urls['scale']}', stable_frames: 3,"
        " commands: true}\n"
        f"  - {{id: io, kind: laneio.modbus, host: 127.0.0.1, port: {urls['io']}, poll_ms: 50,"
        " inputs: {entry_loop: 0, exit_loop: 1, light_curtain: 2}, outputs: {barrier: 0}}\n"
        f"  - {{id: rpm, kind: rpm.rapiscan, host: 127.0.0.1, port: {dead_port()},"
        " timeout_ms: 500}\n"
    )
    yield {"loop": loop, "scale": scale, "io": io, "devices": devices}
    for sim in (scale, io):
        loop.run(sim.stop())
    loop.close()
