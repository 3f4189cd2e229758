"""What a SIGHUP reload reports: each applied key with its values, each restart key by name."""

from __future__ import annotations

from edge.config import parse_config
from edge.reload import ReloadReport, changes

BASE = "checkpoint: C\nlane: L1\ndirection: entry\n"


def test_changes_are_dotted_leaf_keys() -> None:
    old = parse_config(BASE + "telemetry:\n  interval_s: 60\nmqtt:\n  host: a\n")
    new = parse_config(BASE + "telemetry:\n  interval_s: 5\nmqtt:\n  host: b\n  port: 8883\n")
    found = {c.key: (c.old, c.new) for c in changes(old, new)}
    assert found["telemetry.interval_s"] == (60.0, 5.0)
    assert found["mqtt.host"] == ("a", "b")
    assert found["mqtt.port"] == (1883, 8883)
    assert "checkpoint" not in found and changes(old, old) == []


def test_the_report_line_names_values_only_for_what_it_applied() -> None:
    old = parse_config(BASE + "telemetry:\n  interval_s: 60\n")
    new = parse_config(BASE + "telemetry:\n  interval_s: 5\n")
    report = ReloadReport(
        "/etc/lane.yaml",
        applied=changes(old.telemetry, new.telemetry, "telemetry"),
        needs_restart=["mqtt.password"],
    )
    assert report.line("L1") == (
        "config reloaded from /etc/lane.yaml: applied telemetry.interval_s 60.0 -> 5.0; "
        "config changes that need a restart (systemctl restart lane@L1): mqtt.password"
    )
    assert report.as_dict()["needs_restart"] == ["mqtt.password"]
    failed = ReloadReport("/etc/lane.yaml", error="line 3: bad")
    assert not failed.ok and "keeping the running config" in failed.line("L1")
