"""Lane config: valid examples pass; every error names file, line, column and key path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
    assert problems_of(text) == [
        "lane.yaml:7:3: mqtt.keepalive: unknown key; did you mean `keepalive_s`?"
    ]


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
    problems = problems_of(text)
    assert any(p.startswith("lane.yaml:10:5: devices.1.id:") for p in problems)
    # the other device's own problem comes in the same round
    assert "lane.yaml:8:5: devices.0.url: required key is missing" in problems


def test_duplicate_device_ids_are_an_error() -> None:
    text = (
        VALID
        + "devices:\n  - {id: scale, kind: rpm.rapiscan, host: h}\n"
        + (
            "  - id: rpm\n    kind: rpm.rapiscan\n    host: h\n"
            "  - id: scale\n    kind: rpm.rapiscan\n    host: h\n"
        )
    )
    # at the duplicate's own line, not the file's first line
    assert problems_of(text) == [
        "lane.yaml:12:5: devices.2.id: device id 'scale' is used twice (first by devices.0)"
    ]


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
    assert "lane.yaml:11:5: devices.0.baud: unknown key; did you mean `baudrate`?" in problems
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


# --- hostile files: located errors, exit 2, never a traceback (issue 22 finding 12) -------


def check_process(*args: str | Path, env: dict[str, str] | None = None) -> tuple[int, str]:
    """The real `lane config check` in its own process: stdout+stderr and the exit code."""
    done = subprocess.run(
        [sys.executable, "-m", "edge", "config", "check", *map(str, args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env if env is not None else clean_env(),
    )
    return done.returncode, done.stdout + done.stderr


def clean_env() -> dict[str, str]:
    """A fresh shell: none of the examples' secrets are set."""
    return {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("LANE_") and k != "CREDENTIALS_DIRECTORY"
    }


HOSTILE = {
    "nul": (VALID.replace("lane: T3", "lane: T\x003").encode(), "lane.yaml:2:8: lane: character"),
    "not-utf8": (VALID.replace("host: 127", "host: \udcff127").encode("utf-8", "surrogateescape"),
                 "lane.yaml:5:9: mqtt.host: not UTF-8: byte 0xff"),
    "deep": ((VALID + "devices: " + "[" * 10_000 + "\n").encode(),
             "lane.yaml:7:74: devices.0.0.0...: nested deeper than 64 levels"),
    "deep-mapping": ((VALID + "fusion: " + "{a: " * 100_000 + "\n").encode(),
                     "lane.yaml:7:262: fusion.a.a.a...: nested deeper than 64 levels"),
    "duplicate-block": ((VALID + "mqtt:\n  host: evil.example\n").encode(),
                        "lane.yaml:7:1: mqtt: duplicate key (first given at line 4)"),
    "duplicate-key": (VALID.replace("  port: 1883", "  port: 1883\n  host: evil").encode(),
                      "lane.yaml:7:3: mqtt.host: duplicate key (first given at line 5)"),
}  # fmt: skip


@pytest.mark.parametrize("name", HOSTILE)
def test_hostile_file_is_a_located_error_with_exit_2(name: str, tmp_path: Path) -> None:
    data, expected = HOSTILE[name]
    path = tmp_path / "lane.yaml"
    path.write_bytes(data)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert len(info.value.problems) == 1
    assert str(info.value.problems[0]).removeprefix(f"{tmp_path}/").startswith(expected)
    code, output = check_process(path)
    assert code == 2, output
    assert f"error: {tmp_path}/{expected}" in output
    assert "Traceback" not in output
    # `lane run` refuses it the same way, before it touches anything
    done = subprocess.run(
        [sys.executable, "-m", "edge", "run", "--config", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=clean_env(),
    )
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    assert f"{tmp_path}/{expected}" in done.stderr


def test_a_duplicate_mqtt_block_never_replaces_the_broker() -> None:
    problems = problems_of(VALID + "mqtt:\n  host: evil.example\n  port: 1883\n")
    assert problems == [
        "lane.yaml:7:1: mqtt: duplicate key (first given at line 4); a key appears once in its "
        "block"
    ]


def test_merge_keys_may_override_and_anchors_are_not_duplicates() -> None:
    text = VALID + (
        "devices:\n"
        "  - &rpm {id: rpm1, kind: rpm.rapiscan, host: 10.0.0.1, timeout_ms: 500}\n"
        "  - <<: *rpm\n    id: rpm2\n"
    )
    config = parse_config(text)
    assert [d.id for d in config.devices] == ["rpm1", "rpm2"]


def test_a_file_too_large_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "huge.yaml"
    path.write_bytes(VALID.encode() + b"#" * (2 << 20))
    with pytest.raises(ConfigError) as info:
        load_config(path)
    (problem,) = info.value.problems
    assert "larger than 1048576 bytes" in str(problem)


def test_alias_fan_out_is_checked_once_per_node() -> None:
    # billion laughs: each level refers to the one below nine times
    levels = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, 9):
        levels.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    problems = problems_of(VALID + "\n".join(levels) + "\n")
    assert len(problems) == 9 and all("unknown key" in p for p in problems)


# --- lane config check: structure and secrets, all in one round (issue 24 item 4) ----------


def header_command(path: Path) -> list[str]:
    """The command written in the file's header (`# Check it with:  lane ...`)."""
    for line in path.read_text().splitlines():
        if line.startswith("# Check it with:"):
            return line.split(":", 1)[1].split()
    raise AssertionError(f"{path} has no 'Check it with:' line")


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_the_command_in_each_examples_header_passes_on_a_fresh_clone(path: Path) -> None:
    command = header_command(path)
    assert command[:3] == ["lane", "config", "check"]
    code, output = check_process(*command[3:])
    assert code == 0, output
    assert "secrets not checked" in output


def test_unresolved_secrets_are_named_apart_from_the_structure(tmp_path: Path) -> None:
    car = ROOT / "config" / "car-lane.yaml"
    code, output = check_process(car)
    assert code == 2
    lines = output.splitlines()
    assert (
        "error: config/car-lane.yaml:17:5: devices.0.password: environment variable "
        "LANE_CAMERA_PASSWORD is not set" in [line.replace(str(ROOT) + "/", "") for line in lines]
    )
    assert any(
        "structure OK; 3 secret(s) do not resolve here" in line
        and f"lane config check --secrets skip {car}" in line
        for line in lines
    ), output
    env = {**clean_env(), "LANE_CAMERA_PASSWORD": "x" * 8, "LANE_MQTT_PASSWORD": "y" * 8}
    code, output = check_process(car, env=env)
    assert code == 0 and "3 secret(s) resolve" in output, output


def test_structure_and_secret_problems_come_in_one_round(tmp_path: Path) -> None:
    text = (
        VALID.replace("port: 1883", "port: 99999")
        + "  keepalive: 10\n  username: lane\n  password:\n    env: NO_SUCH_SECRET_1\n"
        + "devices:\n"
        + "  - id: cam\n    kind: anpr.http\n    url: http://c/p\n"
        + "    password: {file: /nonexistent/secret}\n"
        + "  - id: scale\n    kind: weighbridge.toledo\n    url: /dev/ttyUSB0\n    stable: 3\n"
        + "  - id: cam\n    kind: anpr.http\n    url: http://d/p\n"
    )
    problems = problems_of(text)
    assert problems == [
        "lane.yaml:6:3: mqtt.port: Input should be less than or equal to 65535",
        "lane.yaml:7:3: mqtt.keepalive: unknown key; did you mean `keepalive_s`?",
        # the secret problem points at the password's own line, not the block or the file
        "lane.yaml:9:3: mqtt.password: environment variable NO_SUCH_SECRET_1 is not set",
        "lane.yaml:15:5: devices.0.password: secret file /nonexistent/secret does not exist",
        "lane.yaml:19:5: devices.1.stable: unknown key; did you mean `stable_frames`?",
        "lane.yaml:20:5: devices.2.id: device id 'cam' is used twice (first by devices.0)",
    ]
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="lane.yaml")
    assert [p.secret for p in info.value.problems] == [False, False, True, True, False, False]
    # --secrets skip: the same structure problems, no secret ones
    with pytest.raises(ConfigError) as info:
        parse_config(text, source="lane.yaml", secrets="skip")
    assert [str(p) for p in info.value.problems] == [
        p for p in problems if "NO_SUCH" not in p and "/nonexistent" not in p
    ]


def test_unknown_key_suggestions_reach_nested_sections() -> None:
    assert problems_of(VALID + "  tls:\n    ca_fle: /x\n") == [
        "lane.yaml:8:5: mqtt.tls.ca_fle: unknown key; did you mean `ca_file`?"
    ]
    assert problems_of(VALID + "storage:\n  max_row: 100\n") == [
        "lane.yaml:8:3: storage.max_row: unknown key; did you mean `max_rows`?"
    ]
    # a device key close to one of the device's own (not the driver's) keys
    (problem,) = problems_of(
        VALID + "devices:\n  - {id: rpm, kind: rpm.rapiscan, host: h, timeout_m: 5}\n"
    )
    assert problem.endswith("devices.0.timeout_m: unknown key; did you mean `timeout_ms`?")
