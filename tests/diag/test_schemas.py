"""The --json outputs have schemas; the committed files match the models."""

from __future__ import annotations

import json
from pathlib import Path

from edge.diag.models import SCHEMAS, write_schemas

ROOT = Path(__file__).resolve().parents[2]


def test_schema_files_are_in_step_with_the_models() -> None:
    stale = write_schemas(ROOT / "config" / "schemas", check=True)
    assert not stale, f"regenerate with `python -m edge.diag.models`: {stale}"


def test_every_schema_is_an_object_with_its_required_facts() -> None:
    status = json.loads((ROOT / "config/schemas/diag-status.schema.json").read_text())
    assert {"agent", "broker", "outbox", "devices", "disk", "problems"} <= set(status["required"])
    for name in SCHEMAS:
        schema = json.loads((ROOT / f"config/schemas/diag-{name}.schema.json").read_text())
        assert schema["type"] == "object" and schema["properties"]
