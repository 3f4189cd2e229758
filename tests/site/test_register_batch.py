"""The register's set-based batch write against real PostgreSQL: duplicates, conflicts, a bad
message in the middle, gaps opened and closed within a batch, and the same end state as
storing one message at a time for random streams of every kind of fault."""

from __future__ import annotations

import json
import random
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from edge.devtools.localdb import LocalPostgres
from edge.site.config import IngestConfig, parse_ingest_config
from edge.site.intake import Intake, Item
from edge.site.register import Register, StoreCounts, open_register
from tests.site.support import CHECKPOINT, crossing_event, ingest_yaml

PREFIX = f"border/{CHECKPOINT}"


def make_config(tmp_path: Path, dsn: str) -> IngestConfig:
    return parse_ingest_config(
        ingest_yaml(port=1883, dsn=dsn, evidence_dir=tmp_path / "evidence", lanes=("T1", "T2"))
    )


@pytest.fixture
def register(tmp_path: Path, dsn: str) -> Iterator[Register]:
    conn, reg = open_register(make_config(tmp_path, dsn))
    yield reg
    conn.close()


def intake(config: IngestConfig) -> Intake:
    return Intake(
        config.topic_prefix,
        config.lanes(),
        client_id=config.broker.client_id,
        max_event_bytes=config.limits.max_event_bytes,
        max_evidence_bytes=config.evidence.max_file_bytes,
    )


def items(reg: Register, *messages: dict[str, Any] | bytes, lane: str = "T1") -> list[Item]:
    classify = intake(reg.config).classify
    return [
        classify(
            f"{PREFIX}/{lane}/crossing",
            m if isinstance(m, bytes) else json.dumps(m).encode(),
        )
        for m in messages
    ]


def rows(reg: Register, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    return reg.conn.execute(sql.encode(), params).fetchall()  # type: ignore[call-overload]


def test_a_batch_with_duplicates_and_a_conflict_is_stored_set_based(register: Register) -> None:
    crossing = "c-dup"
    first = crossing_event(1, crossing_id=crossing, gross_kg=18_250.0)
    end = crossing_event(2, kind="end", crossing_id=crossing, gross_kg=18_300.0)
    register.store(items(register, first))  # stored before: the batch repeats it
    conflicting = {**end, "weight": {**end["weight"], "gross_kg": 1.0}}
    counts = register.store(
        items(
            register,
            first,  # the same event again (stored before)
            {**first, "historical": True},  # re-sent as backlog: the same content
            end,
            end,  # twice in one batch
            conflicting,  # same event_id, other content: flagged, never overwrites
            crossing_event(3),
        )
    )
    assert counts == StoreCounts(events=2, duplicates=3, quarantined=1, one_by_one=0)
    assert rows(register, "SELECT reason_code, event_id FROM quarantine") == [
        ("event_id_conflict", end["event_id"])
    ]
    assert rows(
        register,
        "SELECT body->'weight'->>'gross_kg' FROM events WHERE event_id = %s",
        (end["event_id"],),
    ) == [("18300.0",)]
    assert rows(
        register,
        "SELECT ended, gross_kg, event_id FROM crossings WHERE crossing_id = %s",
        (crossing,),
    ) == [(True, 18_300.0, end["event_id"])]
    assert rows(register, "SELECT last_lane_seq, events FROM lanes WHERE lane = 'T1'") == [(3, 3)]
    assert rows(register, "SELECT count(*) FROM gaps") == [(0,)]


def test_a_bad_message_in_the_middle_is_quarantined_and_the_rest_stored(
    register: Register,
) -> None:
    good = [crossing_event(seq) for seq in range(1, 7)]
    refused = crossing_event(4)  # valid JSON, but PostgreSQL's jsonb refuses \u0000
    refused["plates"][0]["text"] = "12\u00003ABC"
    batch = items(register, *good[:3], b"{not json", refused, *good[3:])
    counts = register.store(batch)
    # The batch failed as a whole, was rolled back and stored one by one: the bad message
    # alone in quarantine, with its reason, everything else committed.
    assert counts.one_by_one == 1
    assert (counts.events, counts.quarantined) == (6, 2)
    assert sorted(r[0] for r in rows(register, "SELECT reason_code FROM quarantine")) == [
        "not_json",
        "unstorable",
    ]
    reason = rows(register, "SELECT reason FROM quarantine WHERE reason_code = 'unstorable'")
    assert "PostgreSQL refused it" in reason[0][0]
    assert rows(register, "SELECT count(*), max(lane_seq) FROM events") == [(6, 6)]
    assert rows(register, "SELECT count(*) FROM crossings") == [(6,)]
    assert rows(register, "SELECT count(*) FROM gaps") == [(0,)]


def test_a_gap_opened_and_closed_within_one_batch(register: Register) -> None:
    events = [crossing_event(seq) for seq in range(1, 8)]
    order = [0, 1, 5, 2, 3, 4, 6]  # lane_seq 1, 2, 6, 3, 4, 5, 7: 6 opens 3..5, 3-5 fill it
    counts = register.store(items(register, *(events[n] for n in order)))
    assert counts == StoreCounts(events=7, gaps_opened=1, gaps_closed=1)
    assert rows(register, "SELECT from_seq, to_seq, missing, state FROM gaps") == [
        (3, 5, 0, "repaired")
    ]
    assert rows(register, "SELECT first_lane_seq, last_lane_seq, events FROM lanes"
                " WHERE lane = 'T1'") == [(1, 7, 7)]  # fmt: skip


def test_live_first_then_the_backlog_fills_the_gap_across_batches(register: Register) -> None:
    events = [crossing_event(seq) for seq in range(1, 21)]
    register.store(items(register, *events[:5]))
    # A lane back from an outage sends its live events first, then the backlog.
    live = register.store(items(register, *events[15:]))
    assert live == StoreCounts(events=5, gaps_opened=1)
    backlog = [{**e, "historical": True} for e in events[5:15]]
    first_half = register.store(items(register, *backlog[:6]))
    assert first_half == StoreCounts(events=6)
    assert rows(register, "SELECT missing, state FROM gaps") == [(4, "open")]
    second_half = register.store(items(register, *backlog[6:]))
    assert second_half == StoreCounts(events=4, gaps_closed=1)
    assert rows(register, "SELECT from_seq, to_seq, missing, state FROM gaps") == [
        (6, 15, 0, "repaired")
    ]
    assert rows(register, "SELECT last_lane_seq, events FROM lanes WHERE lane = 'T1'") == [(20, 20)]


def test_a_lane_seq_reset_without_a_new_boot_seq_is_flagged(register: Register) -> None:
    register.store(items(register, *(crossing_event(seq) for seq in range(1, 6))))
    counts = register.store(items(register, crossing_event(6), crossing_event(2)))
    assert counts.one_by_one == 1  # the per-event path decides what a reset is
    assert [r[0] for r in rows(register, "SELECT kind FROM lane_flags")] == ["lane_seq_reset"]
    assert rows(register, "SELECT epoch, first_lane_seq, last_lane_seq FROM lanes"
                " WHERE lane = 'T1'") == [(2, 2, 2)]  # fmt: skip


# --- the same end state as one message at a time -----------------------------------------


def stream(rng: random.Random, lane: str, crossings: int) -> list[dict[str, Any]]:
    """A lane's crossings (new, maybe an update, end), each end with evidence references."""
    events: list[dict[str, Any]] = []
    for n in range(crossings):
        crossing = str(uuid.UUID(int=rng.getrandbits(128)))
        kinds = ["new"] + ["update"] * rng.randrange(0, 2) + ["end"]
        for kind in kinds:
            ref = {"kind": "plate_crop", "file": f"crop-{n}.jpg", "sha256": f"{n:064x}"}
            events.append(
                crossing_event(
                    len(events) + 1,
                    kind=kind,
                    crossing_id=crossing,
                    lane=lane,
                    gross_kg=1000.0 + len(events),
                    evidence=[ref] if kind == "end" else None,
                )
            )
    return events


def deliveries(rng: random.Random, events: list[dict[str, Any]]) -> list[dict[str, Any] | bytes]:
    """The events as a lossy, repeating, reordering hop delivers them, late ones at the end."""
    out: list[dict[str, Any] | bytes] = []
    late: list[dict[str, Any]] = []
    for event in events:
        roll = rng.random()
        if roll < 0.15:
            late.append({**event, "historical": True})  # lost now, replayed later
            continue
        out.append(event)
        if roll < 0.25:
            out.insert(rng.randrange(max(1, len(out) - 5), len(out) + 1), event)  # again
        elif roll < 0.28:
            out.append({**event, "weight": {"gross_kg": -1.0}})  # conflicting duplicate
        elif roll < 0.30:
            out.append(b'{"schema": "lane.crossing/2", "type": "new"}')  # malformed
    rng.shuffle(late)
    return out + late


TABLES = {
    "events": "SELECT event_id, epoch, lane_seq, historical, content_sha256 FROM events",
    "crossings": "SELECT crossing_id, event_id, ended, lane_seq, gross_kg, plates FROM crossings",
    "lanes": "SELECT lane, epoch, boot_seq, first_lane_seq, last_lane_seq, events FROM lanes",
    "gaps": "SELECT lane, epoch, from_seq, to_seq, missing, state FROM gaps",
    "losses": "SELECT g.from_seq, l.from_seq, l.to_seq, l.count FROM losses l JOIN gaps g"
    " ON g.id = l.gap_id",
    "quarantine": "SELECT lane, reason_code, event_id, sha256 FROM quarantine",
    "evidence": "SELECT crossing_id, file, lane, kind, expected_sha256 FROM evidence",
    "flags": "SELECT lane, kind FROM lane_flags",
}


def snapshot(reg: Register) -> dict[str, list[tuple[Any, ...]]]:
    return {name: sorted(rows(reg, sql), key=repr) for name, sql in TABLES.items()}


def not_kept_reply(reg: Register, rng: random.Random, lane: str) -> Item | None:
    """The lane answers the oldest open gap's replay: part of it no longer kept."""
    gap = rows(
        reg,
        "SELECT id, from_seq, to_seq FROM gaps WHERE lane = %s AND state = 'open'"
        " ORDER BY from_seq LIMIT 1",
        (lane,),
    )
    if not gap:
        return None
    gap_id, low, high = gap[0]
    top = rng.randrange(low, high + 1)
    body = {"command": "replay", "ok": True, "result": {"not_kept": [[low, top]]}}
    correlation = f"{reg.config.broker.client_id}:gap:{gap_id}:{low}:{high}".encode()
    return intake(reg.config).classify(
        f"{PREFIX}/{lane}/cmd/replay/reply", json.dumps(body).encode(), correlation
    )


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_batches_end_as_one_message_at_a_time_would(
    tmp_path: Path, pg_cluster: LocalPostgres, seed: int
) -> None:
    registers = []
    for name in ("batch", "each"):
        database = f"register_{name}_{uuid.uuid4().hex[:8]}"
        with psycopg.connect(pg_cluster.dsn, autocommit=True) as admin:
            admin.execute(f'CREATE DATABASE "{database}"'.encode())  # type: ignore[call-overload]
        dsn = pg_cluster.dsn.replace("dbname=postgres", f"dbname={database}")
        registers.append(open_register(make_config(tmp_path / name, dsn)))
    (conn_b, batch), (conn_e, each) = registers
    try:
        rng = random.Random(seed)
        messages: list[tuple[str, dict[str, Any] | bytes]] = []
        last_seq = 0
        for lane in ("T1", "T2"):
            events = stream(rng, lane, 25)
            messages += [(lane, m) for m in deliveries(rng, events)]
            last_seq = len(events)
        rng.shuffle(messages)  # the lanes interleave; each lane keeps roughly its order
        messages.sort(key=lambda m: (m[1].get("historical", False) if isinstance(m[1], dict)
                                     else False))  # fmt: skip
        if seed == 4:  # a lane that restarts its numbering without a new boot_seq
            messages.append(("T2", crossing_event(last_seq, lane="T2")))
        used = StoreCounts()
        at = 0
        while at < len(messages):
            size = rng.randrange(1, 40)
            chunk = messages[at : at + size]
            at += size
            reply_at = rng.randrange(len(chunk) + 1) if rng.random() < 0.3 else None
            reply_lane = rng.choice(("T1", "T2"))
            reply_rng = rng.getstate()
            stored = []
            for reg, store in ((batch, batch.store), (each, each.store_each)):
                part: list[Item] = []
                for lane, message in chunk:
                    part += items(reg, message, lane=lane)
                if reply_at is not None:
                    rng.setstate(reply_rng)  # the same reply to both registers
                    reply = not_kept_reply(reg, rng, reply_lane)
                    if reply is not None:
                        part.insert(reply_at, reply)
                stored.append(store(part))
            assert stored[0].events == stored[1].events
            assert stored[0].duplicates == stored[1].duplicates
            used.one_by_one += stored[0].one_by_one
            assert snapshot(batch) == snapshot(each)
        state = snapshot(batch)
        assert any(g[-1] == "repaired" for g in state["gaps"]), state["gaps"]
        assert state["quarantine"], "the streams include conflicts and malformed events"
        if seed != 4:
            assert used.one_by_one == 0  # every batch went the set-based way
        else:
            assert state["flags"] == [("T2", "lane_seq_reset")]
    finally:
        conn_b.close()
        conn_e.close()


def test_a_lane_without_a_row_gets_one(register: Register) -> None:
    register.conn.execute("DELETE FROM lanes WHERE lane = 'T2'")  # as if added while running
    t2 = [crossing_event(s, lane="T2") for s in (1, 2)]
    counts = register.store(items(register, *t2, lane="T2"))
    assert counts == StoreCounts(events=2)
    assert rows(register, "SELECT epoch, first_lane_seq, last_lane_seq, events FROM lanes"
                " WHERE lane = 'T2'") == [(1, 1, 2, 2)]  # fmt: skip


@pytest.mark.parametrize("path", ["batch", "one_by_one"])
def test_the_register_stores_each_event_as_the_lane_sent_it(register: Register, path: str) -> None:
    new = crossing_event(1, crossing_id="c-sent", plate="А123ВС02", gross_kg=18_250.5)
    end = crossing_event(2, kind="end", crossing_id="c-sent", plate="А123ВС02")
    sent = [  # not ASCII-escaped, indented, keys in another order: JSON all the same
        json.dumps(new, ensure_ascii=False).encode(),
        json.dumps(dict(reversed(end.items())), indent=2).encode(),
    ]
    batch = items(register, *sent)
    counts = register.store(batch) if path == "batch" else register.store_each(batch)
    assert counts.events == 2 and counts.quarantined == 0
    stored = dict(rows(register, "SELECT lane_seq, body FROM events ORDER BY lane_seq"))
    assert stored == {1: json.loads(sent[0]), 2: json.loads(sent[1])}
    assert rows(register, "SELECT body FROM crossings WHERE crossing_id = 'c-sent'") == [
        (json.loads(sent[1]),)
    ]


def test_an_event_stored_before_migration_3_is_a_duplicate_when_it_comes_again(
    tmp_path: Path, dsn: str
) -> None:
    """Migration 0003 rehashes the events stored with the old (Python) content hash, so a
    lane's replay of one after the upgrade is the same event, not an event_id conflict."""
    from edge.site.schema import migrations

    event = crossing_event(1, kind="end", gross_kg=18_300.0)
    with psycopg.connect(dsn) as conn:
        conn.execute(
            "CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for version, name, sql in migrations():
            if version < 3:
                conn.execute(sql.encode())
                conn.execute("INSERT INTO schema_migrations VALUES (%s, %s)", (version, name))
        conn.execute(
            "INSERT INTO events (event_id, crossing_id, checkpoint, lane, type, lane_seq,"
            " boot_seq, epoch, produced, historical, content_sha256, body)"
            " VALUES (%s, %s, %s, 'T1', 'end', 1, 1, 1, now(), false, %s, %s::jsonb)",
            (event["event_id"], event["crossing_id"], CHECKPOINT, "0" * 64, json.dumps(event)),
        )
    conn, reg = open_register(make_config(tmp_path, dsn))
    try:
        counts = reg.store(items(reg, {**event, "historical": True}))
        assert (counts.duplicates, counts.quarantined, counts.events) == (1, 0, 0)
        assert rows(reg, "SELECT count(*) FROM events WHERE content_sha256 = %s", ("0" * 64,)) == [
            (0,)
        ]
    finally:
        conn.close()
