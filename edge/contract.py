"""Generate the committed contract files from code: JSON Schemas and the AsyncAPI document.

``lane contract export`` writes them; ``lane contract export --check`` (and the test suite)
fails when the committed files differ from what the code produces.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import yaml

from edge.config import config_json_schema
from edge.events import CROSSING_V2_KEYS, PLATE_V2_KEYS, WIRE_MODELS, agent_version
from edge.topics import contract_topics

SCHEMA_DIR = Path("config/schemas")
ASYNCAPI_FILE = Path("docs/asyncapi.yaml")

COMMAND_SCHEMA: dict[str, Any] = {
    "title": "Command",
    "description": "Optional JSON arguments of a command; most commands take none.",
    "type": "object",
}


# Older versions still on the wire, described beside the current one (a consumer accepts
# both): schema file stem -> the current payload it is an older version of.
LEGACY_PAYLOADS = {"crossing-v1": "crossing"}


def wire_schema(name: str) -> dict[str, Any]:
    if name in LEGACY_PAYLOADS:
        return crossing_v1_schema()
    schema = WIRE_MODELS[name].model_json_schema(by_alias=True, mode="serialization")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = schema["properties"]["schema"]["const"]  # e.g. lane.crossing/2
    return schema


def crossing_v1_schema() -> dict[str, Any]:
    """``lane.crossing/1``: the /2 schema without the keys /2 added (and their definitions),
    the plate read's country and layout keys included.

    /2 only added optional keys, so this is exactly what /1 agents published; it is kept so
    that a consumer validating strictly can accept events of both versions.
    """
    schema = wire_schema("crossing")
    for key in CROSSING_V2_KEYS:
        del schema["properties"][key]
    for key in PLATE_V2_KEYS:
        del schema["$defs"]["PlateRead"]["properties"][key]
    schema["properties"]["schema"]["const"] = "lane.crossing/1"
    schema["properties"]["schema"]["default"] = "lane.crossing/1"
    schema["$id"] = "lane.crossing/1"
    schema["description"] = (
        "lane.crossing/1, as published before the cargo keys (containers, adr, xray) came in "
        "lane.crossing/2. " + schema.get("description", "")
    )
    defs = schema.get("$defs", {})
    reachable: set[str] = set()
    todo = [json.dumps(schema["properties"])]
    while todo:  # keep the definitions still referenced, directly or through others
        text = todo.pop()
        for name in defs:
            if name not in reachable and f'"#/$defs/{name}"' in text:
                reachable.add(name)
                todo.append(json.dumps(defs[name]))
    schema["$defs"] = {name: body for name, body in defs.items() if name in reachable}
    return schema


def asyncapi() -> dict[str, Any]:
    channels: dict[str, Any] = {}
    operations: dict[str, Any] = {}
    messages: dict[str, Any] = {}
    for spec in contract_topics():
        if spec.payload == "binary":
            message = {
                "name": spec.name,
                "contentType": "image/jpeg",
                "payload": {"type": "string", "format": "binary"},
            }
        else:
            payload = (
                COMMAND_SCHEMA
                if spec.payload == "command"
                else {"$ref": f"../config/schemas/{spec.payload}.schema.json"}
            )
            message = {"name": spec.name, "contentType": "application/json", "payload": payload}
        message["bindings"] = {"mqtt": {"qos": spec.qos, "retain": spec.retain}}
        messages[spec.name] = message
        legacy = [old for old, current in LEGACY_PAYLOADS.items() if current == spec.payload]
        for old in legacy:
            messages[old] = {
                "name": old,
                "contentType": "application/json",
                "summary": f"The previous version of {spec.name}, still accepted by consumers.",
                "payload": {"$ref": f"../config/schemas/{old}.schema.json"},
                "bindings": message["bindings"],
            }
        params = [p.split("}")[0] for p in spec.pattern.split("{")[1:]]
        channels[spec.name] = {
            "address": spec.pattern,
            "description": spec.description,
            "parameters": {p: {"description": _PARAMETERS[p]} for p in params},
            "messages": {m: {"$ref": f"#/components/messages/{m}"} for m in [spec.name, *legacy]},
        }
        operations[f"{spec.direction}-{spec.name}"] = {
            "action": "send" if spec.direction == "publish" else "receive",
            "channel": {"$ref": f"#/channels/{spec.name}"},
            "bindings": {"mqtt": {"qos": spec.qos, "retain": spec.retain}},
        }
    return {
        "asyncapi": "3.0.0",
        "info": {
            "title": "Border lane agent",
            "version": agent_version().split("+")[0],
            "description": (
                "Events of one checkpoint lane. Delivery is at least once (QoS 1): dedupe on "
                "event_id; lane_seq is contiguous per lane and boot_seq counts agent starts. "
                "Crossings are lane.crossing/2: /1 plus the optional cargo keys containers, "
                "adr and xray, and in each plate the optional country_confidence, layout, "
                "layout_confidence and row_texts. The schemas forbid unknown keys, so adding "
                "them needed a new version; an agent's outbox may still drain /1 events after "
                "an upgrade, and a consumer accepts both (crossing-v1). X-ray scans that come "
                "after their crossing's end go out on the xray topic (lane.xray-scan/1)."
            ),
        },
        "defaultContentType": "application/json",
        "channels": channels,
        "operations": operations,
        "components": {"messages": messages},
    }


_PARAMETERS = {
    "prefix": "Topic prefix from mqtt.topic_prefix (default 'border').",
    "checkpoint": "Checkpoint id from the lane config.",
    "lane": "Lane id from the lane config.",
    "device": "Device id from the lane config.",
    "crossing_id": "crossing_id of the crossing event.",
    "file": "Evidence file name given in the crossing event.",
    "command": "Command name: ping, status, outbox_stats, replay.",
}


def rendered(root: Path) -> dict[Path, str]:
    """Every contract file, path -> exact content."""
    files: dict[Path, str] = {}
    files[root / SCHEMA_DIR / "lane-config.schema.json"] = _json(config_json_schema())
    for name in [*WIRE_MODELS, *LEGACY_PAYLOADS]:
        files[root / SCHEMA_DIR / f"{name}.schema.json"] = _json(wire_schema(name))
    files[root / ASYNCAPI_FILE] = (
        "# Generated by `lane contract export`; do not edit by hand.\n"
        + yaml.safe_dump(asyncapi(), sort_keys=False, allow_unicode=True, width=100)
    )
    return files


def _json(obj: Any) -> str:
    return json.dumps(obj, indent=2, ensure_ascii=False) + "\n"


def export(root: Path, *, check: bool = False) -> list[Path]:
    """Write the files (or, with ``check``, list those that differ). Returns changed paths."""
    changed = []
    for path, text in rendered(root).items():
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current != text:
            changed.append(path)
            if not check:
                path.parent.mkdir(parents=True, exist_ok=True)
                path.write_text(text, encoding="utf-8")
    return changed
