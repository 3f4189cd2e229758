"""The systemd unit files: `systemd-analyze verify` is clean, the security score is OK or better."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from edge.cli import STOP_DEADLINE_S
from tests.ops.support import REPO

UNIT = REPO / "systemd" / "lane@.service"
GOOD_ENOUGH = {"PERFECT", "SAFE", "OK"}


def analyze() -> str:
    tool = shutil.which("systemd-analyze")
    if tool is None:
        pytest.fail("systemd-analyze is not installed; `make system-deps` installs it")
    return tool


def instance(tmp_path: Path, lane: str = "T3") -> Path:
    """The template as instance lane@T3, ExecStart pointing at this checkout's interpreter.

    verify checks that ExecStart's binary exists; /opt/lane-agent does not exist here.
    """
    text = UNIT.read_text()
    assert "ExecStart=/opt/lane-agent/venv/bin/lane run" in text
    text = text.replace("/opt/lane-agent/venv/bin/lane", f"{sys.executable} -m edge")
    unit = tmp_path / f"lane@{lane}.service"
    unit.write_text(text)
    return unit


def test_unit_verifies_cleanly(tmp_path: Path) -> None:
    unit = instance(tmp_path)
    out = subprocess.run(
        [analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    # verify exits 0 on unknown keys too; any message at all is a defect.
    assert out.stdout.strip() == "" and out.stderr.strip() == "", out.stdout + out.stderr


def test_unit_security_exposure_is_ok_or_better(tmp_path: Path) -> None:
    unit = instance(tmp_path)
    out = subprocess.run(
        [analyze(), "security", "--offline=true", "--no-pager", str(unit)],
        capture_output=True,
        text=True,
        timeout=60,
    )
    match = re.search(r"Overall exposure level for \S+: ([\d.]+) (\w+)", out.stdout)
    assert match, out.stdout + out.stderr
    score, verdict = float(match.group(1)), match.group(2)
    assert verdict in GOOD_ENOUGH and score < 2.0, out.stdout


def test_unit_has_the_settings_the_agent_relies_on() -> None:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    assert settings["Type"] == ["notify"]
    assert int(settings["WatchdogSec"][0]) >= 10  # above paho's 5 s connect timeout
    assert settings["Restart"] == ["on-failure"]
    assert settings["StateDirectory"] == ["lane-agent/%i"]  # the outbox: $STATE_DIRECTORY
    assert settings["DynamicUser"] == ["yes"]
    assert settings["DevicePolicy"] == ["closed"]
    assert {"char-ttyUSB rw", "char-ttyACM rw", "char-video4linux rw"} <= set(
        settings["DeviceAllow"]
    )
    assert "dialout" in settings["SupplementaryGroups"][0].split()
    assert "PrivateDevices" not in settings  # it would hide the serial ports
    assert settings["RestrictAddressFamilies"] == ["AF_UNIX AF_INET AF_INET6"]
    assert settings["CapabilityBoundingSet"] == [""]
    assert any(v.startswith("mqtt-password:") for v in settings["LoadCredential"])
    assert settings["ExecReload"] == ["/bin/kill -HUP $MAINPID"]
    # SIGTERM flushes for up to 5 s and joins the publisher for up to 10 s; a stop that
    # passes the agent's own deadline logs its stacks before systemd's SIGKILL.
    assert int(settings["TimeoutStopSec"][0]) >= 20
    assert int(settings["TimeoutStopSec"][0]) > STOP_DEADLINE_S + 2


def test_backoff_drop_in_is_valid_where_systemd_knows_its_keys(tmp_path: Path) -> None:
    version = int(
        re.search(
            r"systemd (\d+)",
            subprocess.run(
                [analyze(), "--version"], capture_output=True, text=True, timeout=30
            ).stdout,
        ).group(1)  # type: ignore[union-attr]
    )
    unit = instance(tmp_path)
    drop_in = tmp_path / f"{unit.name}.d"
    drop_in.mkdir()
    shutil.copy(REPO / "systemd" / "lane@.service.d" / "backoff.conf", drop_in)
    out = subprocess.run(
        [analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    if version >= 254:
        assert out.stderr.strip() == "", out.stderr
    else:
        # Older systemd ignores the keys with a warning: why `lane install` skips the file.
        assert "Unknown key" in out.stderr and "RestartSteps" in out.stderr


def test_a_missing_credential_file_is_named_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """systemd hands over the SetCredential= placeholder when the LoadCredential= file is gone."""
    from edge.config import MISSING_CREDENTIAL, parse_config
    from edge.errors import ConfigError

    text = UNIT.read_text()
    assert f"SetCredential=mqtt-password:{MISSING_CREDENTIAL}" in text
    (tmp_path / "mqtt-password").write_text(MISSING_CREDENTIAL)
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path))
    config = (
        "checkpoint: C\nlane: T1\ndirection: entry\n"
        "mqtt:\n  username: lane\n  password: {credential: mqtt-password}\n"
    )
    with pytest.raises(ConfigError) as err:
        parse_config(config)
    assert "LoadCredential= file for it is missing" in str(err.value)
    assert "/etc/lane-agent/credentials/<LANE>/mqtt-password" in str(err.value)
    (tmp_path / "mqtt-password").write_text("s3cret\n")
    assert parse_config(config).mqtt.password.read() == "s3cret"  # type: ignore[union-attr]
