"""Lane config: valid examples pass; every error names file, line, column and key path."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from edge.cli import main
from edge.config import load_config, parse_config
from edge.errors import ConfigError

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = sorted((ROOT / "config").glob("*.yaml"))

VALID = """\
checkpoint: KZ-KHORGOS
lane: T3
direction: entry
mqtt:
  host: 127.0.0.1
  port: 1883
"""


@pytest.fixture
def secrets_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt-password").write_text("s3cret\n")
    (creds / "cam-password").write_text("s3cret\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    monkeypatch.setenv("LANE_MQTT_PASSWORD", "s3cret")
    monkeypatch.setenv("LANE_CAMERA_PASSWORD", "s3cret")


def test_examples_exist_for_each_lane_type() -> None:
    types = {load_yaml_type(p) for p in EXAMPLES}
    assert {"truck", "car"} <= types


def load_yaml_type(path: Path) -> str:
    import yaml

    return yaml.safe_load(path.read_text())["lane_type"]


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_example_configs_are_valid(path: Path, secrets_env: None) -> None:
    assert main(["config", "check", str(path)]) == 0


def test_defaults_and_client_id() -> None:
    config = parse_config(VALID)
    assert config.client_id == "lane-KZ-KHORGOS-T3"
    assert config.mqtt.protocol == "mqtt5"
    assert config.storage.live_window_s == 5.0


def problems_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="lane.yaml")
    return [str(p) for p in info.value.problems]


def test_unknown_key_names_line_column_and_path() -> None:
    text = VALID + "  keepalive: 10\n"
    assert problems_of(text) == ["lane.yaml:7:3: mqtt.keepalive: unknown key"]


def test_wrong_type_names_the_line() -> None:
    text = VALID.replace("port: 1883", "port: eighteen")
    (problem,) = problems_of(text)
    assert problem.startswith("lane.yaml:6:3: mqtt.port:")
    assert "integer" in problem


def test_every_error_is_reported_not_just_the_first() -> None:
    text = VALID.replace("direction: entry", "direction: sideways") + "colour: red\n"
    problems = problems_of(text)
    assert any(p.startswith("lane.yaml:3:1: direction:") for p in problems)
    assert "lane.yaml:7:1: colour: unknown key" in problems


def test_error_inside_a_list_names_the_index() -> None:
    text = (
        VALID + "devices:\n  - id: cam-front\n    kind: anpr.http\n  - id: bad id!\n    kind: x\n"
    )
    (problem,) = problems_of(text)
    assert problem.startswith("lane.yaml:10:5: devices.1.id:")


def test_duplicate_device_ids_are_an_error() -> None:
    text = VALID + "devices:\n  - {id: scale, kind: a}\n  - {id: scale, kind: b}\n"
    (problem,) = problems_of(text)
    assert "device id 'scale' is used twice" in problem


def test_a_lane_is_not_its_own_neighbour() -> None:
    (problem,) = problems_of(VALID + "fusion:\n  neighbour_lanes: [T4, T3]\n")
    assert "neighbour_lanes names this lane itself ('T3')" in problem
    assert problems_of(VALID + "fusion:\n  neighbour_lanes: [T4, 'bad lane']\n")


def test_inline_secret_is_refused() -> None:
    text = VALID + "  username: lane\n  password: hunter2\n"
    (problem,) = problems_of(text)
    assert problem.startswith("lane.yaml:8:3: mqtt.password:")
    assert "never inline" in problem


def test_missing_secret_file_names_the_line(tmp_path: Path) -> None:
    text = VALID + f"  username: lane\n  password:\n    file: {tmp_path}/nope\n"
    (problem,) = problems_of(text)
    assert problem.startswith("lane.yaml:8:3: mqtt.password:")
    assert f"{tmp_path}/nope does not exist" in problem


def test_secret_from_env_file_and_credential(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "pw").write_text("from-file\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    monkeypatch.setenv("PW", "from-env")
    for ref, expected in (
        ("env: PW", "from-env"),
        (f"file: {tmp_path}/pw", "from-file"),
        ("credential: pw", "from-file"),
    ):
        config = parse_config(VALID + f"  username: lane\n  password:\n    {ref}\n")
        assert config.mqtt.password is not None
        assert config.mqtt.password.read() == expected


def test_broken_yaml_is_located() -> None:
    (problem,) = problems_of("checkpoint: [unclosed\nlane: T1\n")
    assert problem.startswith("lane.yaml:2:")
    assert "not valid YAML" in problem


def test_cli_check_exits_2_and_prints_each_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(VALID.replace("port: 1883", "port: 99999") + "  bogus: 1\n")
    assert main(["config", "check", str(bad)]) == 2
    out = capsys.readouterr().out
    assert f"{bad}:6:3: mqtt.port:" in out
    assert f"{bad}:7:3: mqtt.bogus: unknown key" in out


def test_cli_check_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "check", str(tmp_path / "absent.yaml")]) == 2
    assert "cannot read" in capsys.readouterr().out


def test_cli_schema_is_json_schema(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["config", "schema"]) == 0
    schema = json.loads(capsys.readouterr().out)
    assert schema["additionalProperties"] is False
    assert {"checkpoint", "lane", "direction"} <= set(schema["required"])


def test_load_config_records_source(tmp_path: Path) -> None:
    path = tmp_path / "lane.yaml"
    path.write_text(VALID)
    assert load_config(path).source == str(path)


def test_device_options_are_checked_by_their_driver() -> None:
    text = (
        VALID
        + "devices:\n"
        + "  - id: scale\n    kind: weighbridge.toledo\n    url: /dev/ttyUSB0\n    baud: 9600\n"
        + "  - id: rpm\n    kind: rpm.rapiscan\n    port: 70000\n"
        + "  - id: x\n    kind: teleporter\n"
    )
    problems = problems_of(text)
    assert "lane.yaml:11:5: devices.0.baud: unknown key" in problems
    assert any(p.startswith("lane.yaml:12:5: devices.1.host:") for p in problems)  # required
    assert any(p.startswith("lane.yaml:14:5: devices.1.port:") for p in problems)
    assert any(
        p.startswith("lane.yaml:16:5: devices.2.kind: unknown device kind 'teleporter'")
        for p in problems
    )


def test_device_password_is_a_reference_never_inline() -> None:
    text = VALID + "devices:\n  - id: cam\n    kind: anpr.http\n    url: http://c/p\n"
    (problem,) = problems_of(text + "    password: admin123\n")
    assert problem.startswith("lane.yaml:11:5: devices.0.password:") and "never inline" in problem
    (problem,) = problems_of(text + "    password: {env: NO_SUCH_VAR_XYZ}\n")
    assert "environment variable NO_SUCH_VAR_XYZ is not set" in problem


def test_camera_role_is_one_of_the_positions_or_overview() -> None:
    cameras = (
        VALID
        + "devices:\n"
        + "".join(
            f"  - {{id: cam-{role}, kind: anpr.http, url: 'http://c/{role}', role: {role}}}\n"
            for role in ("front", "rear", "trailer", "overview")
        )
    )
    config = parse_config(cameras)
    assert [d.role for d in config.devices] == ["front", "rear", "trailer", "overview"]
    text = VALID + "devices:\n  - id: cam\n    kind: anpr.http\n    url: http://c/p\n"
    (problem,) = problems_of(text + "    role: Front\n")
    assert problem.startswith("lane.yaml:11:5: devices.0.role:") and "'overview'" in problem
