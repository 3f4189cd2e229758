"""`lane diag outbox` on a full outbox, `lane diag mqtt check` against real brokers."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from edge.devtools.localbroker import LocalBroker, free_port
from edge.diag.models import MqttCheckOutput, OutboxActionOutput, OutboxListOutput, OutboxReport
from edge.outbox import Outbox
from edge.outbox_read import OutboxReader
from edge.topics import PRIORITY_CONTROL
from tests.diag.support import diag, write_lane


def fill(state_dir: Path, rows: int, rejected: int) -> None:
    """An outbox at its bound: control messages cannot be evicted."""
    outbox = Outbox(state_dir / "outbox.db", max_rows=100)
    ids = [
        outbox.add_message(
            kind="reply",
            topic=f"border/KZ-TEST/T1/reply/{i}",
            payload=json.dumps({"n": i}).encode(),
            priority=PRIORITY_CONTROL,
        )
        for i in range(rows)
    ]
    for row_id in ids[:rejected]:
        assert row_id is not None
        outbox.reject(row_id, 0x87, "broker rejected the publish: Not authorized (0x87)")
    outbox.close()


def test_full_outbox(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    config = write_lane(tmp_path, free_port(), "", extra="  max_rows: 100\n")
    missing = diag(capsys, "outbox", "stats", "-c", config)
    assert missing.code == 4 and "no outbox" in missing.err
    fill(tmp_path / "state", 120, rejected=3)

    stats = OutboxReport.model_validate_json(
        diag(capsys, "outbox", "stats", "-c", config, "--json").out
    )
    assert stats.pending == 117 and stats.rejected == 3
    assert "outbox_full" in stats.alarms and "outbox_rejected" in stats.alarms
    human = diag(capsys, "outbox", "stats", "-c", config)
    assert "outbox_full" in human.out and "117" in human.out

    status = diag(capsys, "status", "-c", config, "--json")
    assert status.code == 10
    problems = " ".join(json.loads(status.out)["problems"])
    assert "outbox FULL (117 pending)" in problems and "3 messages rejected" in problems

    rejected = OutboxListOutput.model_validate_json(
        diag(capsys, "outbox", "list", "--rejected", "-c", config, "--json").out
    )
    assert len(rejected.rows) == 3 and rejected.rows[0].reason_code == 0x87
    listed = diag(capsys, "outbox", "list", "--rejected", "-c", config)
    assert "Not authorized" in listed.out
    pending = diag(capsys, "outbox", "list", "-n", "5", "-c", config, "--json")
    assert len(json.loads(pending.out)["rows"]) == 5

    out = tmp_path / "export.jsonl"
    export = OutboxActionOutput.model_validate_json(
        diag(capsys, "outbox", "export", "--out", out, "-c", config, "--json").out
    )
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert export.rows == len(rows) == 120
    assert rows[0]["payload"] == {"n": 0} and rows[0]["state"] == "rejected"
    only = diag(capsys, "outbox", "export", "--out", "-", "--state", "rejected", "-c", config)
    assert len(only.out.splitlines()) == 3

    requeued = OutboxActionOutput.model_validate_json(
        diag(capsys, "outbox", "requeue", "-c", config, "--json").out
    )
    assert requeued.rows == 3
    after = OutboxReport.model_validate_json(
        diag(capsys, "outbox", "stats", "-c", config, "--json").out
    )
    assert after.rejected == 0 and after.pending == 120


def test_reading_never_writes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """An expired row is left for the agent to delete: diag's handle is read-only."""
    config = write_lane(tmp_path, free_port(), "")
    outbox = Outbox(tmp_path / "state" / "outbox.db")
    outbox.add_message(
        kind="reply",
        topic="border/KZ-TEST/T1/reply/x",
        payload=b"{}",
        priority=PRIORITY_CONTROL,
        expires_in_s=0.001,
    )
    outbox.close()
    time.sleep(1.1)
    stats = diag(capsys, "outbox", "stats", "-c", config, "--json")
    assert stats.code == 0, stats.err
    assert diag(capsys, "status", "-c", config, "--json").code == 10  # agent stopped
    with OutboxReader(tmp_path / "state" / "outbox.db") as reader:  # read-only: nothing deleted
        assert len(reader.pending()) == 1


def test_mqtt_check_round_trip(
    capsys: pytest.CaptureFixture[str], broker: LocalBroker, tmp_path: Path
) -> None:
    config = write_lane(tmp_path, broker.port, "")
    result = diag(capsys, "mqtt", "check", "-c", config, "--json")
    assert result.code == 0, result.err
    report = MqttCheckOutput.model_validate_json(result.out)
    assert report.connected and report.publish_ok and report.subscribe_ok and report.received
    assert report.command_subscribe_ok and report.tls is None
    assert report.round_trip_ms is not None and 0 < report.round_trip_ms < 2000
    assert report.test_topic.startswith("border/KZ-TEST/T1/diag/")
    assert report.client_id != "lane-KZ-TEST-T1"  # never the agent's own id
    human = diag(capsys, "mqtt", "check", "-c", config)
    assert "round trip" in human.out and "plain TCP" in human.out


def test_mqtt_check_failure_classes(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    nobody = write_lane(tmp_path, free_port(), "")
    unreachable = diag(capsys, "mqtt", "check", "-c", nobody, "--timeout", "2")
    assert unreachable.code == 6 and "cannot reach the broker" in unreachable.err

    secret = tmp_path / "mqtt.password"
    acl = "user lane\ntopic read border/#\n"  # may read, may not write
    with LocalBroker(passwords={"lane": "right"}, acl=acl, workdir=tmp_path / "b") as broker:
        mqtt_extra = f"  username: lane\n  password: {{file: {secret}}}\n"
        config = write_lane(tmp_path, broker.port, "", mqtt_extra=mqtt_extra)
        secret.write_text("wrong\n")
        refused = diag(capsys, "mqtt", "check", "-c", config, "--timeout", "3")
        assert refused.code == 8
        assert "refused the lane's credentials" in refused.err and "'lane'" in refused.err

        secret.write_text("right\n")
        denied = diag(capsys, "mqtt", "check", "-c", config, "--json", "--timeout", "2")
        assert denied.code == 9
        report = MqttCheckOutput.model_validate_json(denied.out)
        assert report.connected and report.subscribe_ok and not report.publish_ok
        assert "does not let lane publish" in json.loads(denied.err)["error"]
        human = diag(capsys, "mqtt", "check", "-c", config, "--timeout", "2")
        assert "may publish" in human.out and "allow `topic write" in human.err

    secret.unlink()
    no_secret = diag(capsys, "mqtt", "check", "-c", config)
    assert no_secret.code == 2 and "does not exist" in no_secret.err


def test_credentials_from_the_install_layout(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A technician's shell has no $CREDENTIALS_DIRECTORY: diag finds credentials/<lane>."""
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", "unset-after-the-test")
    monkeypatch.delenv("CREDENTIALS_DIRECTORY")
    with LocalBroker(passwords={"lane": "right"}, workdir=tmp_path / "b") as broker:
        config = write_lane(
            tmp_path,
            broker.port,
            "",
            mqtt_extra="  username: lane\n  password: {credential: mqtt-password}\n",
        )
        without = diag(capsys, "mqtt", "check", "-c", config)
        assert without.code == 2 and "CREDENTIALS_DIRECTORY is not set" in without.err
        assert "warning: " in without.err  # the config itself still loads
        assert diag(capsys, "outbox", "stats", "-c", config).code == 4  # no secret needed

        (tmp_path / "credentials" / "T1").mkdir(parents=True)
        (tmp_path / "credentials" / "T1" / "mqtt-password").write_text("right\n")
        found = diag(capsys, "mqtt", "check", "-c", config)
        assert found.code == 0, found.err
        assert "warning" not in found.err
