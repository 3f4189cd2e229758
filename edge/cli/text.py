"""Crossing events as the `lane` command prints them: one human line, or compact JSON."""

from __future__ import annotations

import json
from typing import Any


def describe_event(event: dict[str, Any]) -> str:  # a decoded event: JSON values
    """One human line for a crossing event (events tail, demo)."""
    plates = event.get("plates") or []
    plate = (
        ", ".join(
            f"{p.get('text')} ({p.get('country', '?')}, {p.get('confidence', 0):.2f})"
            for p in plates
        )
        or "UNIDENTIFIED"
    )
    weight = event.get("weight") or {}
    kg = f"{weight.get('gross_kg'):,.0f} kg" if weight else "-"
    alarms = ", ".join(a["code"] for a in event.get("alarms") or [])
    return (
        f"#{event.get('lane_seq'):>6} {event.get('type'):<6} {plate:<28} {kg:>10}"
        f"{'  ALARM ' + alarms if alarms else ''}"
        f"{'  (historical)' if event.get('historical') else ''}"
    )


def dumps(obj: object) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"))
