"""No configured secret in any output of a real agent (issue 22 finding 6).

A real `lane run` with a real Mosquitto and the HTTP camera simulator. Its config holds a
secret of every kind: resolved references (the MQTT password, a camera's digest password, both
from files), a URL's userinfo password and secret query parameters (``password=``, ``pwd=``,
``token=``). Two cameras fail on purpose, so their errors, which name their URLs, go into the
agent's log, the *retained* ``device/<id>/status`` (``last_error``) and the diag tools.
Every output channel is then searched for every secret, also percent-encoded:

* the agent's log (stdout and stderr of `lane run`);
* every MQTT message the lane published, live and retained (read again after it stopped);
* `lane diag status --json`, answered by the running agent over its control socket, and
  again after it stopped (diag then opens the devices itself);
* every file of `lane diag bundle` (status.json, config.redacted.yaml, device probes, logs),
  including a log line written in the clear by an older agent that the bundle picks up.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import pytest

from edge.devtools.localbroker import LocalBroker, free_port
from edge.devtools.subscriber import Received, Subscriber
from simulators.camera import CameraSimulator
from tests.conftest import lane_yaml
from tests.integration.support import Agent, wait_until

ROOT = Path(__file__).resolve().parents[2]
CAMERA_PASSWORD = "cam-digest-s3cret-4471"  # {file: ...}: the simulator checks it (digest)
MQTT_PASSWORD = "mqtt-file-s3cret-8812"  # {file: ...}
USERINFO_PASSWORD = "url-userinfo-s3cret-5523"  # http://admin:<this>@host/...
QUERY_PASSWORD = "query-password-s3cret-6634"  # ?password=<this>
QUERY_PWD = "query-pwd-s3cret-7745"  # &pwd=<this>
QUERY_TOKEN = "query-token-s3cret-8856"  # ?token=<this>
SECRETS = (
    CAMERA_PASSWORD,
    MQTT_PASSWORD,
    USERINFO_PASSWORD,
    QUERY_PASSWORD,
    QUERY_PWD,
    QUERY_TOKEN,
)
FAILING = ("cam-userinfo", "cam-query")


@pytest.fixture
def camera() -> Iterator[CameraSimulator]:
    sim = CameraSimulator(password=CAMERA_PASSWORD)
    sim.start()
    yield sim
    sim.stop()


def lane_with_secrets(tmp_path: Path, broker_port: int, sim: CameraSimulator) -> Path:
    (tmp_path / "cam.password").write_text(CAMERA_PASSWORD + "\n")
    (tmp_path / "mqtt.password").write_text(MQTT_PASSWORD + "\n")
    dead = free_port()  # nobody listens: a camera that is down, its error names its URL
    devices = (
        "devices:\n"
        # UP: digest auth with the file password; the query secrets ride along unused
        f"  - id: cam-front\n    kind: anpr.http\n    role: front\n"
        f"    url: '{sim.snapshot_url}?password={QUERY_PASSWORD}&pwd={QUERY_PWD}'\n"
        f"    username: admin\n    password: {{file: {tmp_path}/cam.password}}\n"
        "    interval_ms: 1000\n"
        # DOWN: credentials in the URL's userinfo
        f"  - id: cam-userinfo\n    kind: anpr.http\n    role: rear\n"
        f"    url: 'http://admin:{USERINFO_PASSWORD}@127.0.0.1:{dead}/ISAPI/Streaming/"
        "channels/101/picture'\n    interval_ms: 500\n    timeout_ms: 500\n"
        # DOWN: a token in the query string
        f"  - id: cam-query\n    kind: anpr.http\n"
        f"    url: 'http://127.0.0.1:{dead}/cgi-bin/snapshot.cgi?channel=1&token={QUERY_TOKEN}'\n"
        "    interval_ms: 500\n    timeout_ms: 500\n"
    )
    config = tmp_path / "lane.yaml"
    config.write_text(
        lane_yaml(
            tmp_path / "state",
            broker_port,
            mqtt_extra=f"  username: lane\n  password: {{file: {tmp_path}/mqtt.password}}\n",
            extra=devices,
        )
    )
    return config


def lane_command(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "edge", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )


def leaks(channel: str, text: str) -> list[str]:
    found = []
    for secret in SECRETS:
        for form in {secret, quote(secret, safe="")}:
            if form in text:
                found.append(f"{channel}: {secret}")
    return found


def drain(subscriber: Subscriber, into: list[Received]) -> list[Received]:
    while not subscriber.messages.empty():
        into.append(subscriber.messages.get())
    return into


def test_no_configured_secret_reaches_any_output(
    broker: LocalBroker, camera: CameraSimulator, tmp_path: Path
) -> None:
    config = lane_with_secrets(tmp_path, broker.port, camera)
    state = tmp_path / "state"
    state.mkdir()
    # An older agent's log line, written in the clear: the bundle takes *.log from state_dir.
    (state / "agent.log").write_text(
        f"12:00:01 WARNING edge.lane: device cam-userinfo (anpr.http) is DOWN: connection: "
        f"http://admin:{USERINFO_PASSWORD}@127.0.0.1/ISAPI?password={QUERY_PASSWORD} "
        f"digest {CAMERA_PASSWORD} mqtt {MQTT_PASSWORD}\n"
    )
    live = Subscriber("127.0.0.1", broker.port, ["border/#"])
    assert live.wait_ready()
    published: list[Received] = []

    def status_of(device: str) -> dict[str, object] | None:
        drain(live, published)
        found = [
            json.loads(m.payload) for m in published if m.topic.endswith(f"/device/{device}/status")
        ]
        return found[-1] if found else None

    with Agent(config) as agent:
        for device in FAILING:
            wait_until(
                lambda d=device: (s := status_of(d)) is not None and s["state"] == "DOWN",  # type: ignore[misc]
                90,
                f"{device} DOWN in its retained status",
            )
        wait_until(
            lambda: (s := status_of("cam-front")) is not None and s["state"] == "UP",
            90,
            "cam-front UP",
        )
        status = lane_command("diag", "status", "-c", config, "--json")
        bundle_path = tmp_path / "support.tar.gz"
        bundle = lane_command("diag", "bundle", "--out", bundle_path, "-c", config, "--json")
        assert bundle.returncode == 0, bundle.stderr
        assert agent.stop() == 0, agent.output()[-4000:]
        log = agent.output()
    direct = lane_command("diag", "status", "-c", config, "--json")
    assert '"source":"direct probe"' in direct.stdout and "cam-userinfo" in direct.stdout
    assert "<redacted>" in direct.stdout, direct.stdout  # its own drivers' errors name URLs
    live.close()
    drain(live, published)
    retained_subscriber = Subscriber("127.0.0.1", broker.port, ["border/#"])
    assert retained_subscriber.wait_ready()
    retained: list[Received] = []
    wait_until(
        lambda: any(
            m.topic.endswith("/cam-query/status") for m in drain(retained_subscriber, retained)
        ),
        20,
        "the retained device status",
    )
    retained_subscriber.close()
    with tarfile.open(bundle_path) as tar:
        files = {
            m.name.split("/", 1)[1]: tar.extractfile(m).read()  # type: ignore[union-attr]
            for m in tar.getmembers()
            if m.isfile()
        }

    # The failing cameras' errors did reach every channel: with their URLs redacted.
    for device in FAILING:
        assert f"device {device} (anpr.http) is DOWN" in log
    down = [
        json.loads(m.payload)
        for m in retained
        if m.retain and m.topic.endswith(("/cam-userinfo/status", "/cam-query/status"))
    ]
    assert len(down) == 2 and all(s["state"] == "DOWN" and s["last_error"] for s in down)
    assert all("<redacted>" in str(s["last_error"]) for s in down), down  # the URL was there
    assert "<redacted>" in log
    assert "status.json" in files and b"cam-userinfo" in files["status.json"]
    redacted_config = files["config.redacted.yaml"].decode()
    assert "password=<redacted>&pwd=<redacted>" in redacted_config
    assert (
        "token=<redacted>" in redacted_config and "http://<redacted>@127.0.0.1" in redacted_config
    )
    assert b"<redacted>" in files["logs/agent.log"]

    found = leaks("agent log", log)
    for message in [*published, *retained]:
        found += leaks(f"MQTT {message.topic}", message.payload.decode("utf-8", "replace"))
    found += leaks("lane diag status", status.stdout + status.stderr)
    found += leaks("lane diag status, agent stopped", direct.stdout + direct.stderr)
    found += leaks("lane diag bundle output", bundle.stdout + bundle.stderr)
    for name, data in files.items():
        found += leaks(f"bundle {name}", data.decode("utf-8", "replace"))
    assert not found, "\n".join(found)
