"""`lane diag` with the agent stopped: diag opens the devices itself."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from edge.devtools.localbroker import LocalBroker
from edge.diag.models import ActionOutput, ProbeOutput, StatusOutput, WatchSample
from tests.diag.support import diag, write_lane


def test_status_probes_devices_directly(
    capsys: pytest.CaptureFixture[str],
    broker: LocalBroker,
    lane_sims: dict[str, Any],
    tmp_path: Path,
) -> None:
    lane_sims["loop"].call(lambda: lane_sims["scale"].set_weight(12_340))
    config = write_lane(tmp_path, broker.port, lane_sims["devices"])
    result = diag(capsys, "status", "-c", config, "--json", "--seconds", "2")
    assert result.code == 10, result.err  # problems: agent stopped, rpm down
    status = StatusOutput.model_validate_json(result.out)
    assert status.agent.running is False and status.agent.source == "direct probe"
    states = {d.id: d for d in status.devices}
    assert states["scale"].state == "UP" and states["scale"].readings > 0
    assert states["io"].state == "UP"
    assert states["rpm"].state == "DOWN" and "connection" in (states["rpm"].last_error or "")
    assert status.broker is not None and status.broker.connected
    assert status.outbox is None  # the agent never ran here
    assert status.disk is not None and status.disk.free_bytes > 0
    assert any("rpm is DOWN" in p for p in status.problems)
    assert any("not running" in p for p in status.problems)

    human = diag(capsys, "status", "-c", config, "--seconds", "1.5")
    assert human.code == 10
    assert "NOT RUNNING" in human.out and "rpm is DOWN" in human.out
    assert "\033[" not in human.out  # no colour when stdout is not a terminal


def test_status_broker_down_and_refusing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with LocalBroker(passwords={"lane": "right"}, workdir=tmp_path / "b") as broker:
        secret = tmp_path / "mqtt.password"
        secret.write_text("wrong\n")
        config = write_lane(
            tmp_path,
            broker.port,
            "",
            mqtt_extra=f"  username: lane\n  password: {{file: {secret}}}\n",
        )
        status = StatusOutput.model_validate_json(
            diag(capsys, "status", "-c", config, "--json").out
        )
    assert status.broker is not None and not status.broker.connected
    assert "refused the lane's credentials" in (status.broker.last_error or "")
    assert any("no broker connection" in p for p in status.problems)


def test_probe_reads_identity_values_and_raw_frames(
    capsys: pytest.CaptureFixture[str],
    broker: LocalBroker,
    lane_sims: dict[str, Any],
    tmp_path: Path,
) -> None:
    lane_sims["loop"].call(lambda: lane_sims["scale"].set_weight(8_000))
    config = write_lane(tmp_path, broker.port, lane_sims["devices"])
    result = diag(capsys, "probe", "scale", "-c", config, "--json", "--seconds", "1.5")
    assert result.code == 0, result.err
    probe = ProbeOutput.model_validate_json(result.out)
    assert probe.source == "direct probe" and probe.device.state == "UP"
    assert probe.values and "gross_kg 8,000" in probe.values[-1]
    assert probe.first_reading_s is not None and probe.first_reading_s < 1.5
    assert probe.reading_interval_ms is not None and 20 <= probe.reading_interval_ms <= 200
    assert probe.raw_frames and probe.raw_frames[-1].hex  # what the indicator really sent
    assert "8000" in probe.raw_frames[-1].ascii

    human = diag(capsys, "probe", "scale", "-c", config, "--seconds", "1")
    assert "last raw frames" in human.out and "8000" in human.out

    down = diag(capsys, "probe", "rpm", "-c", config, "--json", "--seconds", "1")
    assert down.code == 5
    report = ProbeOutput.model_validate_json(down.out)
    assert report.device.state == "DOWN" and report.device.faults.get("connection", 0) >= 1

    assert probe.round_trip_ms is None  # a continuous-output scale has no request/response
    io = ProbeOutput.model_validate_json(
        diag(capsys, "probe", "io", "-c", config, "--json", "--seconds", "1").out
    )
    assert io.round_trip_ms is not None and 0 < io.round_trip_ms < 500

    unknown = diag(capsys, "probe", "nope", "-c", config)
    assert unknown.code == 11 and "no device 'nope'" in unknown.err


def test_watch_shows_weight_and_loops(
    capsys: pytest.CaptureFixture[str],
    broker: LocalBroker,
    lane_sims: dict[str, Any],
    tmp_path: Path,
) -> None:
    sims = lane_sims
    sims["loop"].call(lambda: sims["scale"].set_weight(21_000))
    sims["loop"].call(lambda: sims["io"].set_input("entry_loop", True))
    config = write_lane(tmp_path, broker.port, sims["devices"])
    result = diag(
        capsys, "watch", "scale", "-c", config, "--count", "3", "--json", "--interval", "0.3"
    )
    assert result.code == 0, result.err
    samples = [WatchSample.model_validate(s) for s in result.lines()]
    assert len(samples) == 3
    weighed = [s for s in samples if s.fields]
    assert weighed and weighed[-1].fields["gross_kg"] == 21_000
    assert weighed[-1].fields["stable"] is True and weighed[-1].fields["motion"] is False

    io = diag(capsys, "watch", "io", "-c", config, "--count", "2", "--interval", "0.3")
    assert io.code == 0 and "entry_loop" in io.out  # the loop that is occupied

    rpm = diag(capsys, "watch", "rpm", "-c", config, "--count", "1", "--json", "--interval", "0.5")
    (sample,) = rpm.lines()
    assert sample["state"] == "DOWN" and "no reading" in sample["summary"]


def test_actions_need_confirmation_then_act(
    capsys: pytest.CaptureFixture[str],
    broker: LocalBroker,
    lane_sims: dict[str, Any],
    tmp_path: Path,
) -> None:
    sims = lane_sims
    config = write_lane(tmp_path, broker.port, sims["devices"])
    refused = diag(capsys, "barrier", "open", "-c", config)
    assert refused.code == 12 and "--yes" in refused.err
    assert sims["io"].output("barrier") is False

    opened = diag(capsys, "barrier", "open", "-c", config, "--yes", "--json")
    assert opened.code == 0, opened.err
    assert ActionOutput.model_validate_json(opened.out).via == "direct"
    assert sims["io"].output("barrier") is True
    assert diag(capsys, "barrier", "close", "-c", config, "--yes").code == 0
    assert sims["io"].output("barrier") is False

    sims["loop"].call(lambda: sims["scale"].set_weight(500))
    zeroed = diag(capsys, "scale", "zero", "-c", config, "--yes")
    assert zeroed.code == 0, zeroed.err
    assert sims["scale"].zero_offset_kg == 500

    not_a_scale = diag(capsys, "scale", "tare", "--device", "io", "-c", config, "--yes")
    assert not_a_scale.code == 11 and "not a weighbridge" in not_a_scale.err


def test_probe_and_watch_a_radiation_monitor(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    from simulators.rpm import RapiscanSimulator
    from tests.diag.support import SimLoop

    loop = SimLoop()
    rpm = RapiscanSimulator(speedup=10.0, background_interval_s=0.5, firmware="1.20.1A")
    try:
        loop.run(rpm.start())
        devices = (
            "devices:\n"
            f"  - {{id: rpm, kind: rpm.rapiscan, host: 127.0.0.1, port: {rpm.port},"
            " timeout_ms: 2000}\n"
        )
        config = write_lane(tmp_path, 1883, devices)
        result = diag(capsys, "probe", "rpm", "-c", config, "--json", "--seconds", "2")
        assert result.code == 0, result.err
        probe = ProbeOutput.model_validate_json(result.out)
        assert probe.device.state == "UP"
        assert probe.identity, "the monitor's setup lines"
        assert any("1.20.1A" in str(v) for v in probe.identity.values())
        assert probe.raw_frames and probe.raw_frames[-1].ascii

        watched = diag(
            capsys, "watch", "rpm", "-c", config, "--count", "3", "--json", "--interval", "0.3"
        )
        lines = [s for s in watched.lines() if s["fields"]]
        assert lines and "counts" in lines[-1]["fields"]  # counts per panel
        assert any("gamma background" in s["summary"] for s in lines)
    finally:
        loop.run(rpm.stop())
        loop.close()


def test_watch_thermal_region_maxima(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from simulators.modbus import ThermalSimulator
    from tests.diag.support import SimLoop

    loop = SimLoop()
    thermal = ThermalSimulator(regions=3)
    try:
        port = loop.run(thermal.start())
        thermal.set_regions([(95.5, 20.0, 40.0), (30.0, 10.0, 20.0)])
        devices = (
            "devices:\n"
            f"  - {{id: thermal, kind: thermal.modbus, host: 127.0.0.1, port: {port},"
            " regions: 3, poll_ms: 100}\n"
        )
        config = write_lane(tmp_path, 1883, devices)
        result = diag(capsys, "watch", "thermal", "-c", config, "--count", "2", "--interval", "0.3")
        assert result.code == 0, result.err
        assert "max 95.5" in result.out and "r1 30.0C" in result.out
    finally:
        loop.run(thermal.stop())
        loop.close()
