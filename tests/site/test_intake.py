"""The message classifier and the ingest config: no I/O."""

from __future__ import annotations

import json

import pytest

from edge.errors import ConfigError
from edge.site.config import parse_ingest_config
from edge.site.intake import (
    CrossingItem,
    EvidenceItem,
    Ignored,
    Intake,
    Rejected,
    ReplyItem,
    not_kept_spans,
    spans,
)
from edge.site.register import parse_correlation
from tests.site.support import crossing_event


def intake() -> Intake:
    return Intake(
        "border",
        [("KZ-TEST", "T1")],
        client_id="reg",
        max_event_bytes=4096,
        max_evidence_bytes=100,
    )


def test_a_valid_event_is_read_and_kept_as_sent() -> None:
    event = crossing_event(7, kind="end", plate="01 a-123 bc", gross_kg=1000)
    payload = json.dumps(event).encode()
    item = intake().classify("border/KZ-TEST/T1/crossing", payload)
    assert isinstance(item, CrossingItem)
    assert (item.header.lane_seq, item.header.type, item.plates) == (7, "end", ["01A123BC"])
    assert item.payload == payload


@pytest.mark.parametrize("version", ["lane.crossing/1", "lane.crossing/2"])
def test_both_crossing_versions_are_read_and_cargo_keys_kept(version: str) -> None:
    event = {**crossing_event(3, kind="end", plate="01A123BC"), "schema": version}
    if version == "lane.crossing/2":
        event["containers"] = [
            {
                "code": "CSQU3054383",
                "position": "whole",
                "confidence": 0.9,
                "check_digit_ok": True,
                "verification": "check_digit",
            }
        ]
        event["adr"] = {"present": True, "kemler": "33", "un": "1203"}
    item = intake().classify("border/KZ-TEST/T1/crossing", json.dumps(event).encode())
    assert isinstance(item, CrossingItem)
    assert item.header.lane_seq == 3
    assert json.loads(item.payload).get("adr") == event.get("adr")  # stored as sent


@pytest.mark.parametrize(
    ("topic", "payload", "code"),
    [
        ("border/KZ-TEST/T9/crossing", b"{}", "unknown_topic"),
        ("other/KZ-TEST/T1/crossing", b"{}", "unknown_topic"),
        ("border/KZ-TEST/T1/telemetry", b"{}", "unknown_topic"),
        ("border/KZ-TEST/T1/crossing", b"x" * 5000, "oversized"),
        ("border/KZ-TEST/T1/crossing", b"{", "not_json"),
        ("border/KZ-TEST/T1/crossing", b"[" * 4000, "not_json"),
        ("border/KZ-TEST/T1/crossing", b'{"lane_seq": NaN}', "not_json"),
        ("border/KZ-TEST/T1/crossing", b'{"lane_seq": -Infinity}', "not_json"),
        ("border/KZ-TEST/T1/crossing", '{"lane_seq": 1}'.encode("utf-16"), "not_json"),
        ("border/KZ-TEST/T1/crossing", b'{"plate": "\xff"}', "not_json"),
        ("border/KZ-TEST/T1/crossing", b'"text"', "invalid"),
        ("border/KZ-TEST/T1/crossing", b'{"schema": "lane.crossing/3"}', "wrong_schema"),
        ("border/KZ-TEST/T1/status", b'{"schema": "lane.status/1"}', "invalid"),
        ("border/KZ-TEST/T1/evidence/c1/..", b"jpeg", "invalid"),
        ("border/KZ-TEST/T1/evidence/c1/f.jpg", b"j" * 101, "oversized"),
        ("border/KZ-TEST/T1/cmd/replay/reply", b'{"command": "replay"}', "invalid"),
    ],
)
def test_bad_messages_are_rejected_with_a_reason(topic: str, payload: bytes, code: str) -> None:
    item = intake().classify(topic, payload, b"reg:gap:1:1:1")
    assert isinstance(item, Rejected)
    assert item.reason_code == code, item.reason
    assert item.reason


def test_a_valid_event_with_a_non_json_number_anywhere_is_not_json() -> None:
    payload = json.dumps(crossing_event(3)).encode()
    for number in (b"NaN", b"Infinity", b"-Infinity"):
        bad = payload[:-1] + b', "extra": ' + number + b"}"  # a key the header ignores
        item = intake().classify("border/KZ-TEST/T1/crossing", bad)
        assert isinstance(item, Rejected) and item.reason_code == "not_json", number
    quoted = {**crossing_event(3), "note": "NaN Infinity"}  # words, not numbers: stored
    item = intake().classify("border/KZ-TEST/T1/crossing", json.dumps(quoted).encode())
    assert isinstance(item, CrossingItem)


def test_wrong_field_types_are_refused_not_coerced() -> None:
    event = crossing_event(3)
    for field, bad in (("lane_seq", "3"), ("lane_seq", 0), ("boot_seq", 1.5), ("type", "begin")):
        item = intake().classify(
            "border/KZ-TEST/T1/crossing", json.dumps({**event, field: bad}).encode()
        )
        assert isinstance(item, Rejected) and item.reason_code == "invalid", (field, bad)
        assert field in item.reason


def test_evidence_and_replies() -> None:
    item = intake().classify("border/KZ-TEST/T1/evidence/c1/front-frame.jpg", b"jpeg")
    assert isinstance(item, EvidenceItem) and item.file == "front-frame.jpg"
    body = b'{"command": "replay", "ok": true, "result": {"not_kept": [[1, 4], [9, 30], "x"]}}'
    reply = intake().classify("border/KZ-TEST/T1/cmd/replay/reply", body, b"reg:gap:1:3:20")
    assert isinstance(reply, ReplyItem)
    # Another client's replies share the lane's reply topic: not ours, not an error.
    for other in (None, b"operator-7", b"other-reg:gap:1:3:20"):
        item = intake().classify("border/KZ-TEST/T1/cmd/replay/reply", b"{", other)
        assert isinstance(item, Ignored)
    assert parse_correlation(b"reg:gap:1:3:20", "reg") == (1, 3, 20)
    assert parse_correlation(b"reg:gap:1:3:20", "other") is None
    assert not_kept_spans(reply.header.result, 3, 20) == [(3, 4), (9, 20)]
    assert spans([5, 1, 2, 3, 7]) == [(1, 3), (5, 5), (7, 7)]


def test_subscriptions_cover_every_lane_topic_and_the_reply() -> None:
    subs = Intake(
        "border", [("A", "1"), ("A", "2")], client_id="reg", max_event_bytes=1, max_evidence_bytes=1
    ).subscriptions()
    assert "border/A/2/crossing" in subs and "border/A/1/device/+/status" in subs
    assert "border/A/1/cmd/replay/reply" in subs and len(subs) == 10


CONFIG = """\
checkpoints:
  - id: KZ-TEST
    lanes: [T1, T2]
database:
  dsn: host=127.0.0.1 dbname=register user=ingest
  password: {env: REGISTER_TEST_PASSWORD}
evidence:
  dir: /tmp/evidence
"""


def test_config_secrets_are_references_and_errors_name_the_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("REGISTER_TEST_PASSWORD", "s3cret")
    config = parse_ingest_config(CONFIG)
    assert config.lanes() == [("KZ-TEST", "T1"), ("KZ-TEST", "T2")]
    assert config.database.password is not None and config.database.password.read() == "s3cret"

    with pytest.raises(ConfigError) as inline:
        parse_ingest_config(CONFIG.replace("user=ingest", "user=ingest password=x"))
    assert "never inline" in str(inline.value)
    with pytest.raises(ConfigError) as unknown:
        parse_ingest_config(CONFIG + "colour: red\n")
    assert str(unknown.value.problems[0]) == "<string>:9:1: colour: unknown key"
    monkeypatch.delenv("REGISTER_TEST_PASSWORD")
    with pytest.raises(ConfigError) as missing:
        parse_ingest_config(CONFIG, source="ingest.yaml")
    assert str(missing.value.problems[0]).startswith("ingest.yaml:6:")
    assert "REGISTER_TEST_PASSWORD is not set" in str(missing.value)
