"""`lane diag camera snapshot` on the HTTP camera simulator (digest auth), and the support
bundle: everything a support engineer needs, and no secret."""

from __future__ import annotations

import json
import random
import tarfile
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import cv2
import pytest

from edge.devtools.localbroker import LocalBroker
from edge.diag.models import BundleOutput, OverlayOutput, SnapshotOutput
from simulators.camera import CameraSimulator
from simulators.render import SceneVehicle, make_plate, render_scene
from tests.diag.support import diag, write_lane
from tests.integration.support import Agent, wait_until

CAMERA_PASSWORD = "cam-s3cret-9431"
MQTT_PASSWORD = "mqtt-s3cret-7720"


@pytest.fixture
def camera() -> Iterator[tuple[CameraSimulator, str]]:
    rng = random.Random(7)
    plate = make_plate("KZ", rng)
    scene = render_scene(SceneVehicle(plate, (40, 90, 160), 0.9), now=datetime.now(UTC), rng=rng)
    sim = CameraSimulator(password=CAMERA_PASSWORD, frame_source=lambda: scene)
    sim.start()
    yield sim, plate.text
    sim.stop()


def camera_lane(tmp_path: Path, port: int, sim: CameraSimulator, devices: str = "") -> Path:
    secret = tmp_path / "cam.password"
    secret.write_text(CAMERA_PASSWORD)
    mqtt_secret = tmp_path / "mqtt.password"
    mqtt_secret.write_text(MQTT_PASSWORD)
    devices = devices or "devices:\n"
    devices += (
        f"  - {{id: cam-front, kind: anpr.http, role: front, url: '{sim.snapshot_url}',"
        f" username: admin, password: {{file: {secret}}}, interval_ms: 100}}\n"
    )
    return write_lane(
        tmp_path,
        port,
        devices,
        mqtt_extra=f"  username: lane\n  password: {{file: {mqtt_secret}}}\n",
    )


def test_snapshot_reads_and_annotates_the_plate(
    capsys: pytest.CaptureFixture[str], camera: tuple[CameraSimulator, str], tmp_path: Path
) -> None:
    sim, text = camera
    config = camera_lane(tmp_path, 1883, sim)
    out = tmp_path / "snap.jpg"
    result = diag(capsys, "camera", "snapshot", "cam-front", "--out", out, "-c", config, "--json")
    assert result.code == 0, result.err
    report = SnapshotOutput.model_validate_json(result.out)
    assert (report.width, report.height) == (960, 540)
    assert text in [p.text for p in report.plates]
    image = cv2.imread(str(out))
    assert image is not None and image.shape == (540, 960, 3)
    x, y, w, _h = next(p.box for p in report.plates if p.text == text)
    # the box is drawn: green pixels on its top edge
    edge = image[y, x : x + w]
    assert ((edge[:, 1] > 150) & (edge[:, 0] < 100) & (edge[:, 2] < 100)).mean() > 0.5

    not_a_camera = diag(capsys, "camera", "snapshot", "nope", "--out", out, "-c", config)
    assert not_a_camera.code == 11
    sim.stop()
    gone = diag(
        capsys, "camera", "snapshot", "cam-front", "--out", tmp_path / "x.jpg", "-c", config
    )
    assert gone.code == 5 and "gave no frame" in gone.err


def test_bundle_has_the_facts_and_no_secrets(
    capsys: pytest.CaptureFixture[str],
    broker: LocalBroker,
    lane_sims: dict[str, Any],
    camera: tuple[CameraSimulator, str],
    tmp_path: Path,
) -> None:
    sim, _text = camera
    config = camera_lane(tmp_path, broker.port, sim, lane_sims["devices"])
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "agent.log").write_text(
        "12:00:01 WARNING edge.lane: device rpm is DOWN\n"
    )
    out = tmp_path / "support.tar.gz"
    result = diag(capsys, "bundle", "--out", out, "-c", config, "--json")
    assert result.code == 0, result.err
    report = BundleOutput.model_validate_json(result.out)
    for name in (
        "config.redacted.yaml",
        "versions.json",
        "status.json",
        "crossings.jsonl",
        "devices/scale.json",
        "devices/rpm.json",
        "devices/cam-front.json",
    ):
        assert name in report.files
    assert "mqtt.password" in report.redacted and "devices.3.password" in report.redacted
    with tarfile.open(out) as tar:
        members = {m.name.split("/", 1)[1]: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    everything = b"".join(members.values())
    assert CAMERA_PASSWORD.encode() not in everything and MQTT_PASSWORD.encode() not in everything
    assert b"weighbridge.toledo" in members["config.redacted.yaml"]
    assert (
        b'"raw_frames"' in members["devices/scale.json"] and b"hex" in members["devices/scale.json"]
    )
    assert b"paho-mqtt" in members["versions.json"]
    assert b"device rpm is DOWN" in members["logs/agent.log"]
    status = json.loads(members["status.json"])
    assert {d["id"]: d["state"] for d in status["devices"]}["rpm"] == "DOWN"
    assert oct(out.stat().st_mode & 0o777) == "0o600"


def test_overlay_is_asked_of_the_running_agent(
    capsys: pytest.CaptureFixture[str],
    broker: LocalBroker,
    camera: tuple[CameraSimulator, str],
    tmp_path: Path,
) -> None:
    sim, _text = camera
    config = camera_lane(tmp_path, broker.port, sim)
    stopped = diag(capsys, "camera", "overlay", "-c", config)
    assert stopped.code == 1 and "no agent runs" in stopped.err
    assert diag(capsys, "camera", "overlay", "nope", "-c", config).code == 11
    with Agent(config):
        wait_until((tmp_path / "state" / "control.sock").exists, 30, "the control socket")

        answers = []

        def answered() -> bool:
            answers.append(diag(capsys, "camera", "overlay", "cam-front", "-c", config, "--json"))
            assert answers[-1].code == 0 or "still opening" in answers[-1].err, answers[-1].err
            return answers[-1].code == 0

        wait_until(answered, 60, "the agent's devices open")
        result = answers[-1]
        (report,) = OverlayOutput.model_validate_json(result.out).cameras
        assert report.camera == "cam-front" and report.plate_area is None
        human = diag(capsys, "camera", "overlay", "-c", config)
        assert human.code == 0 and "cam-front:" in human.out and "frames read" in human.out
