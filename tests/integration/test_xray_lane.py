"""The agent with an X-ray drop folder: a scan rides on its truck's end; a late one goes alone.

Real broker, real Modbus lane I/O and weighbridge simulators, the scanner's export written
into a real directory by ``simulators.xray`` while the agent watches it.
"""

from __future__ import annotations

import hashlib
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from edge.devtools.localbroker import LocalBroker
from simulators.xray import ScanDrop, write_scan
from tests.conftest import lane_yaml
from tests.integration.support import Agent, Consumer, wait_until
from tests.integration.test_lane_devices import (  # noqa: F401
    SimLoop,
    drive_truck,
    sims,
)


def _config(tmp_path: Path, broker: LocalBroker, urls: dict[str, Any], drop: Path) -> Path:
    devices = (
        "fusion:\n"
        "  xray_wait_s: 15\n"  # generous: the export is seen within it on a loaded machine
        "devices:\n"
        f"  - {{id: scale, kind: weighbridge.toledo, url: '{urls['scale']}', stable_frames: 3}}\n"
        f"  - {{id: io, kind: laneio.modbus, host: 127.0.0.1, port: {urls['io']},"
        " poll_ms: 50, inputs: {entry_loop: 0, exit_loop: 1, light_curtain: 2}}\n"
        f"  - {{id: xray1, kind: xray.uff_dir, path: '{drop}', poll_ms: 100, settle_ms: 200}}\n"
    )
    config = tmp_path / "lane.yaml"
    config.write_text(lane_yaml(tmp_path / "state", broker.port, extra=devices))
    return config


def _ends(consumer: Consumer) -> list[dict[str, Any]]:
    return [e for e in consumer.crossings() if e["type"] == "end"]


def test_scans_join_their_trucks_or_go_out_alone(
    broker: LocalBroker,
    sims: dict[str, Any],  # noqa: F811
    tmp_path: Path,
) -> None:
    drop = tmp_path / "drop"
    drop.mkdir()
    config = _config(tmp_path, broker, sims["urls"], drop)
    consumer = Consumer(broker.port)
    consumer.wait_subscribed()
    try:
        with Agent(config) as agent:
            wait_until(
                lambda: all(
                    consumer.bodies(f"/device/{d}/status")
                    and consumer.bodies(f"/device/{d}/status")[-1]["state"] == "UP"
                    for d in ("scale", "io", "xray1")
                ),
                60,
                "every device UP",
            )
            # Truck 1: scanned while in the lane; the export lands after the lane is clear.
            began = datetime.now(UTC)
            drive_truck(sims, kg=30_000, gamma_cps=0)
            left = datetime.now(UTC)
            time.sleep(2.0)  # past settle_s: only the X-ray wait keeps the crossing open
            assert _ends(consumer) == [], "the end waits for the scan"
            scan = ScanDrop(
                "PORTAL-1",
                started=began + timedelta(seconds=0.3),
                finished=left - timedelta(seconds=0.3),
                files={"scan.img": 50_000, "preview.jpg": 2_000},
            )
            truth = write_scan(scan, drop)
            wait_until(lambda: len(_ends(consumer)) == 1, 30, "truck 1 ended with its scan")
            (end,) = _ends(consumer)
            assert end["schema"] == "lane.crossing/2"
            assert end["xray"]["scan_id"] == "PORTAL-1"
            assert {f["name"]: f["sha256"] for f in end["xray"]["files"]} == truth
            assert truth["scan.img"] == hashlib.sha256(scan.content("scan.img")).hexdigest()
            assert not any("unscanned" in n for n in end["coverage"]["notes"])

            # Truck 2: no scan within xray_wait_s; it arrives later and goes out alone.
            began = datetime.now(UTC)
            drive_truck(sims, kg=28_000, gamma_cps=0)
            left = datetime.now(UTC)
            wait_until(lambda: len(_ends(consumer)) == 2, 30, "truck 2 ended unscanned")
            second = _ends(consumer)[1]
            assert "xray" not in second
            assert "unscanned: no X-ray scan from xray1" in second["coverage"]["notes"]
            write_scan(
                ScanDrop(
                    "PORTAL-2",
                    started=began + timedelta(seconds=0.3),
                    finished=left - timedelta(seconds=0.3),
                    plate="999ZZZ99",
                ),
                drop,
            )
            wait_until(lambda: consumer.bodies("/xray"), 30, "the late scan on the xray topic")
            (late,) = consumer.bodies("/xray")
            assert late["schema"] == "lane.xray-scan/1"
            assert late["reason"] == "late"
            assert late["crossing_id"] == second["crossing_id"]
            assert late["xray"]["scan_id"] == "PORTAL-2"
            assert late["alarms"] == []  # no plate was read on this lane: nothing to compare
            assert agent.stop() == 0, agent.output()[-8000:]
            assert "X-ray scan PORTAL-2 from xray1 sent on its own (late)" in agent.output()
    finally:
        consumer.close()
