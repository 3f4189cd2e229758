"""`lane diag explain CROSSING_ID`: the story of one crossing, from the local store.

Prefers the correlator's trace (``OutboxReader.crossing_trace``: every reading, plate vote and
decision, kept for finished crossings), and always shows the events that were published.
A crossing whose trace is gone (pruned, or from an agent without traces) is explained from
its events alone, and says so.
"""

from __future__ import annotations

from typing import Any

from drivers import text
from edge.config import LaneConfig
from edge.diag.errors import NotFoundError
from edge.diag.models import ExplainOutput
from edge.diag.outbox import read_existing
from edge.outbox_read import OutboxReader

PREFIX_MIN = 6


def explain(config: LaneConfig, crossing_id: str) -> ExplainOutput:
    with read_existing(config) as reader:
        crossing_id = _resolve(reader, crossing_id, config.storage.keep_crossings)
        trace = reader.crossing_trace(crossing_id)
        events = reader.crossing_events(crossing_id)
    if trace is None and not events:
        raise NotFoundError(
            f"no crossing {crossing_id!r} in the local store (it keeps the last "
            f"{config.storage.keep_crossings} events; `lane events tail` lists recent ones)"
        )
    summary = [_trace_line(step) for step in trace or []]
    if trace:
        summary.append("published events:")
    summary += [_event_line(event) for event in events]
    return ExplainOutput(
        crossing_id=crossing_id,
        source="trace" if trace else "events",
        events=events,
        trace=trace or [],
        summary=summary,
    )


def _resolve(reader: OutboxReader, wanted: str, keep: int) -> str:
    """A whole crossing id, or a unique start or end of one (ids are uuid7: their start is a
    timestamp shared by nearby crossings, so the end is what a technician types)."""
    if reader.crossing_events(wanted) or len(wanted) < PREFIX_MIN:
        return wanted
    found = sorted(
        {
            str(e["crossing_id"])
            for e in reader.latest_crossings(keep)
            if str(e.get("crossing_id", "")).startswith(wanted)
            or str(e.get("crossing_id", "")).endswith(wanted)
        }
    )
    if len(found) > 1:
        raise NotFoundError(f"{wanted!r} matches {len(found)} crossings: {', '.join(found[:5])}")
    return found[0] if found else wanted


def _trace_line(step: dict[str, Any]) -> str:
    detail = text.fields({k: v for k, v in step.items() if k not in ("t", "what")})
    return f"+{float(step.get('t', 0.0)):7.3f} s  {step.get('what')}" + (
        f": {detail}" if detail else ""
    )


def _event_line(event: dict[str, Any]) -> str:
    parts = [f"#{event.get('lane_seq')} {event.get('type')}"]
    if event.get("end_reason"):
        parts.append(f"end_reason {event['end_reason']}")
    plates = event.get("plates") or []
    if plates:
        parts.append(
            "plates "
            + ", ".join(
                f"{p.get('text')} ({p.get('confidence', 0):.2f}, {p.get('camera')})" for p in plates
            )
        )
    weight = event.get("weight")
    if weight:
        parts.append(
            f"weight {text.plain(weight.get('gross_kg'))} kg"
            f"{' stable' if weight.get('stable') else ''}"
        )
    radiation = event.get("radiation")
    if radiation:
        alarm = radiation.get("gamma_alarm") or radiation.get("neutron_alarm")
        parts.append("radiation ALARM" if alarm else "radiation clear")
    alarms = [a.get("code") for a in event.get("alarms") or []]
    if alarms:
        parts.append("alarms " + ", ".join(str(a) for a in alarms))
    notes = (event.get("coverage") or {}).get("notes") or []
    if notes:
        parts.append("notes: " + "; ".join(notes))
    return "; ".join(parts)
