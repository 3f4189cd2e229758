"""What an operator asks the register (`lane ingest status` / `query`): read-only SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import psycopg
from psycopg.rows import dict_row


def lane_report(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Per lane: last seen, last lane_seq, open gaps, repairs, losses, quarantined, flags."""
    rows = (
        conn.cursor(row_factory=dict_row)
        .execute(
            "SELECT l.checkpoint, l.lane, l.boot_seq, l.last_lane_seq, l.events, l.last_seen,"
            " l.last_event_at, s.state AS status, s.alarms AS status_alarms,"
            " (SELECT count(*) FROM gaps g WHERE g.checkpoint = l.checkpoint AND g.lane = l.lane"
            "   AND g.state = 'open') AS open_gaps,"
            " (SELECT COALESCE(sum(g.missing), 0) FROM gaps g WHERE g.checkpoint = l.checkpoint"
            "   AND g.lane = l.lane AND g.state = 'open') AS missing,"
            " (SELECT count(*) FROM gaps g WHERE g.checkpoint = l.checkpoint AND g.lane = l.lane)"
            "   AS gaps_opened,"
            " (SELECT count(*) FROM gaps g WHERE g.checkpoint = l.checkpoint AND g.lane = l.lane"
            "   AND g.state = 'repaired') AS gaps_repaired,"
            " (SELECT count(*) FROM gaps g WHERE g.checkpoint = l.checkpoint AND g.lane = l.lane"
            "   AND g.state IN ('lost', 'partly_lost')) AS gaps_with_loss,"
            " (SELECT COALESCE(sum(x.count), 0) FROM losses x WHERE x.checkpoint = l.checkpoint"
            "   AND x.lane = l.lane) AS lost,"
            " (SELECT count(*) FROM quarantine q WHERE q.checkpoint = l.checkpoint"
            "   AND q.lane = l.lane) AS quarantined,"
            " (SELECT count(*) FROM lane_flags f WHERE f.checkpoint = l.checkpoint"
            "   AND f.lane = l.lane) AS flags,"
            " (SELECT count(*) FROM crossings c WHERE c.checkpoint = l.checkpoint"
            "   AND c.lane = l.lane) AS crossings"
            " FROM lanes l LEFT JOIN lane_status s"
            " ON s.checkpoint = l.checkpoint AND s.lane = l.lane"
            " ORDER BY l.checkpoint, l.lane"
        )
        .fetchall()
    )
    return [{k: _plain(v) for k, v in row.items()} for row in rows]


def find_crossings(
    conn: psycopg.Connection[Any],
    *,
    plate: str | None = None,
    since: datetime | None = None,
    lane: str | None = None,
    limit: int = 50,
) -> list[dict[str, Any]]:
    """Crossings, newest first: by plate, since a time, in a lane (``L`` or ``CP/L``)."""
    from edge.site.intake import normalise_plate

    where: list[str] = []
    params: list[object] = []
    if plate is not None:
        where.append("%s = ANY(c.plates)")
        params.append(normalise_plate(plate))
    if since is not None:
        where.append("c.start_at >= %s")
        params.append(since if since.tzinfo else since.replace(tzinfo=UTC))
    if lane is not None:
        if "/" in lane:
            checkpoint, lane_id = lane.split("/", 1)
            where.append("c.checkpoint = %s AND c.lane = %s")
            params += [checkpoint, lane_id]
        else:
            where.append("c.lane = %s")
            params.append(lane)
    sql = (
        "SELECT c.crossing_id, c.checkpoint, c.lane, c.direction, c.start_at, c.end_at, c.ended,"
        " c.end_reason, c.identified, c.plates, c.gross_kg, c.alarms, c.lane_seq,"
        " c.body -> 'coverage' -> 'notes' AS coverage_notes,"
        " (SELECT count(*) FROM evidence e WHERE e.crossing_id = c.crossing_id"
        "   AND e.state = 'verified') AS evidence_verified,"
        " (SELECT count(*) FROM evidence e WHERE e.crossing_id = c.crossing_id"
        "   AND e.state <> 'verified') AS evidence_unverified"
        " FROM crossings c"
        + (" WHERE " + " AND ".join(where) if where else "")
        + " ORDER BY c.start_at DESC LIMIT %s"
    )
    params.append(limit)
    rows = conn.cursor(row_factory=dict_row).execute(sql.encode(), params).fetchall()
    return [{k: _plain(v) for k, v in row.items()} for row in rows]


def forward_report(conn: psycopg.Connection[Any]) -> list[dict[str, Any]]:
    """Per forward target: where its cursor is and how many committed events wait."""
    rows = conn.execute(
        "SELECT f.target, f.commit_seq, f.forwarded, f.duplicates, f.updated_at,"
        " (SELECT count(*) FROM events e WHERE e.commit_seq > f.commit_seq) FROM forward_cursor f"
        " ORDER BY f.target"
    ).fetchall()
    return [
        {
            "target": target,
            "commit_seq": seq,
            "forwarded": forwarded,
            "duplicates": duplicates,
            "updated_at": _plain(updated),
            "behind": behind,
        }
        for target, seq, forwarded, duplicates, updated, behind in rows
    ]


def _plain(value: Any) -> Any:
    """JSON-ready: times as ISO 8601 UTC, decimals as numbers."""
    if isinstance(value, datetime):
        return value.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
    from decimal import Decimal

    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    return value
