"""The committed JSON Schemas and AsyncAPI document match what the code produces."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from pathlib import Path

import yaml

from edge.contract import export
from edge.crossing import CrossingRecord, LaneIdentity, make_event
from edge.events import CrossingEvent, EventType, uuid7
from edge.topics import contract_topics

ROOT = Path(__file__).resolve().parents[2]


def test_committed_contract_files_match_the_code() -> None:
    changed = export(ROOT, check=True)
    assert changed == [], f"run `lane contract export`: {changed} drifted from the code"


def test_drift_is_detected(tmp_path: Path) -> None:
    export(tmp_path)
    schema = tmp_path / "config/schemas/crossing.schema.json"
    schema.write_text(schema.read_text().replace('"lane_seq"', '"seq"'))
    assert export(tmp_path, check=True) == [schema]


def test_asyncapi_lists_every_topic_with_qos_and_retain() -> None:
    doc = yaml.safe_load((ROOT / "docs/asyncapi.yaml").read_text())
    assert doc["asyncapi"] == "3.0.0"
    for spec in contract_topics():
        channel = doc["channels"][spec.name]
        assert channel["address"] == spec.pattern
        binding = doc["components"]["messages"][spec.name]["bindings"]["mqtt"]
        assert binding == {"qos": spec.qos, "retain": spec.retain}
    assert doc["components"]["messages"]["status"]["bindings"]["mqtt"]["retain"] is True
    assert doc["components"]["messages"]["command"]["bindings"]["mqtt"]["retain"] is False


def test_uuid7_is_version_7_and_time_ordered() -> None:
    ids = [uuid7() for _ in range(50)]
    assert all(u.version == 7 and u.variant == uuid.RFC_4122 for u in ids)
    stamps = [u.int >> 80 for u in ids]
    assert stamps == sorted(stamps)
    assert len(set(ids)) == 50


def test_crossing_event_wire_form() -> None:
    record = CrossingRecord.begin(datetime(2026, 11, 23, 8, 0, tzinfo=UTC))
    event = make_event(record, EventType.NEW, LaneIdentity("KZ-1", "T3", "entry", 4), 17)
    body = json.loads(event.to_json())
    assert body["schema"] == "lane.crossing/2"
    assert body["type"] == "new"
    assert body["lane_seq"] == 17 and body["boot_seq"] == 4
    assert body["start"] == "2026-11-23T08:00:00.000Z"
    assert body["identified"] is False and body["historical"] is False
    assert uuid.UUID(body["event_id"]).version == 7
    assert CrossingEvent.model_validate_json(event.to_json()).to_json() == event.to_json()
