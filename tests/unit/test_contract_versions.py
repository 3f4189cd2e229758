"""lane.crossing/2 = /1 plus optional cargo keys and plate country/layout keys; both stay
described and readable."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from edge.contract import crossing_v1_schema, wire_schema
from edge.crossing import CrossingRecord, LaneIdentity, make_event
from edge.events import (
    CROSSING_SCHEMAS,
    CROSSING_V2_KEYS,
    PLATE_V2_KEYS,
    Adr,
    ContainerRead,
    EventType,
    PlatePosition,
    PlateRead,
    Xray,
    parse_crossing,
)

ROOT = Path(__file__).resolve().parents[2]
LANE = LaneIdentity("KZ-1", "T3", "entry", 4)


def _event(**cargo: object) -> bytes:
    record = CrossingRecord.begin(datetime(2026, 12, 2, 3, 0, tzinfo=UTC))
    event = make_event(record, EventType.END, LANE, 9)
    return event.model_copy(update=cargo).to_json()


def _keys_allowed(schema: dict[str, object], body: dict[str, object]) -> bool:
    assert schema["additionalProperties"] is False
    props = schema["properties"]
    assert isinstance(props, dict)
    return set(body) <= set(props) and body["schema"] == props["schema"]["const"]


def test_v1_schema_is_v2_without_the_cargo_keys() -> None:
    v1, v2 = crossing_v1_schema(), wire_schema("crossing")
    assert v1["$id"] == "lane.crossing/1" and v2["$id"] == "lane.crossing/2"
    assert set(v2["properties"]) - set(v1["properties"]) == set(CROSSING_V2_KEYS)
    for key in CROSSING_V2_KEYS:
        assert key not in v2["required"]  # optional: a /2 consumer reads a /1 event
    # Definitions only the cargo keys use are gone, every one still referenced is kept.
    assert "Xray" in v2["$defs"] and "Xray" not in v1["$defs"]
    text = json.dumps(v1)
    for name in v1["$defs"]:
        assert f'"#/$defs/{name}"' in text
    for ref in {part.split('"')[0] for part in text.split('"#/$defs/')[1:]}:
        assert ref in v1["$defs"]


def test_committed_v1_schema_is_the_one_published_before() -> None:
    committed = json.loads((ROOT / "config/schemas/crossing-v1.schema.json").read_text())
    assert committed == crossing_v1_schema()


def test_a_crossing_without_cargo_differs_from_v1_only_in_the_schema_string() -> None:
    body = json.loads(_event())
    assert body["schema"] == "lane.crossing/2"
    assert not set(CROSSING_V2_KEYS) & set(body)
    assert _keys_allowed(crossing_v1_schema(), {**body, "schema": "lane.crossing/1"})


def test_a_strict_v1_consumer_refuses_cargo_so_cargo_is_v2() -> None:
    body = json.loads(
        _event(
            containers=[
                ContainerRead(
                    code="CSQU3054383",
                    position="whole",
                    confidence=0.9,
                    check_digit_ok=True,
                    verification="check_digit",
                )
            ],
            adr=Adr(present=True, kemler="33", un="1203"),
            xray=Xray(
                device="xray1",
                scan_id="S1",
                started=datetime(2026, 12, 2, 3, 0, tzinfo=UTC),
                finished=datetime(2026, 12, 2, 3, 0, 30, tzinfo=UTC),
            ),
        )
    )
    assert {"containers", "adr", "xray"} <= set(body)
    assert _keys_allowed(wire_schema("crossing"), body)
    assert not _keys_allowed(crossing_v1_schema(), {**body, "schema": "lane.crossing/1"})


@pytest.mark.parametrize("version", CROSSING_SCHEMAS)
def test_parse_crossing_reads_both_versions(version: str) -> None:
    body = json.loads(_event())
    body["schema"] = version
    event = parse_crossing(json.dumps(body))
    assert event.lane_seq == 9 and event.type == "end"


@pytest.mark.parametrize("version", ["lane.crossing/3", "lane.status/1", None])
def test_parse_crossing_refuses_other_schemas(version: str | None) -> None:
    body = json.loads(_event())
    body["schema"] = version
    with pytest.raises(ValueError):
        parse_crossing(json.dumps(body))


def test_asyncapi_describes_both_crossing_versions_and_the_xray_topic() -> None:
    import yaml

    doc = yaml.safe_load((ROOT / "docs/asyncapi.yaml").read_text())
    assert set(doc["channels"]["crossing"]["messages"]) == {"crossing", "crossing-v1"}
    assert doc["components"]["messages"]["crossing-v1"]["payload"]["$ref"].endswith(
        "crossing-v1.schema.json"
    )
    assert doc["channels"]["xray"]["address"] == "{prefix}/{checkpoint}/{lane}/xray"
    assert "lane.crossing/2" in doc["info"]["description"]


def _plate_read(**origin: object) -> PlateRead:
    return PlateRead(
        text="175YJD09",
        country="KZ",
        rows=2,
        confidence=0.97,
        camera="front",
        position=PlatePosition.FRONT,
        **origin,  # type: ignore[arg-type]
    )


def test_plate_country_and_layout_keys_are_optional_v2_keys_absent_from_v1() -> None:
    v1, v2 = crossing_v1_schema(), wire_schema("crossing")
    plate_v1, plate_v2 = v1["$defs"]["PlateRead"], v2["$defs"]["PlateRead"]
    assert set(plate_v2["properties"]) - set(plate_v1["properties"]) == set(PLATE_V2_KEYS)
    assert not set(PLATE_V2_KEYS) & set(plate_v2.get("required", []))
    assert plate_v1["additionalProperties"] is False
    layout = plate_v2["properties"]["layout"]["anyOf"][0]
    assert set(layout["enum"]) == {"one-row", "two-row", "trailer", "transit", "diplomatic"}


def test_a_plate_with_country_and_layout_is_v2_and_one_without_still_v1() -> None:
    plain = json.loads(_event(plates=[_plate_read()]))
    assert not set(PLATE_V2_KEYS) & set(plain["plates"][0])
    v1 = crossing_v1_schema()
    assert set(plain["plates"][0]) <= set(v1["$defs"]["PlateRead"]["properties"])
    full = json.loads(
        _event(
            plates=[
                _plate_read(
                    country_confidence=0.98,
                    layout="two-row",
                    layout_confidence=1.0,
                    row_texts=["175", "YJD09"],
                )
            ]
        )
    )
    plate = full["plates"][0]
    assert plate["row_texts"] == ["175", "YJD09"] and plate["layout"] == "two-row"
    assert set(plate) <= set(wire_schema("crossing")["$defs"]["PlateRead"]["properties"])
    assert not set(plate) <= set(v1["$defs"]["PlateRead"]["properties"])
    assert parse_crossing(json.dumps(full)).plates[0].row_texts == ["175", "YJD09"]
