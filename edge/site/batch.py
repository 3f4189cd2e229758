"""The register's set-based write: a batch's crossing events in a handful of statements.

``Register.store`` tries this first. For the batch's crossing events it sends: one statement
that locks their lanes, one ``INSERT ... SELECT FROM unnest(...) ON CONFLICT (event_id) DO
NOTHING RETURNING event_id`` for the events, one look-up of the event_ids that were there
already (duplicates and conflicts), one update of the lane rows, one upsert of the crossings
and one of the evidence references. The ``lane_seq`` bookkeeping runs in memory per lane
and touches the gap tables only where a gap opens, fills or closes.

The result is the same as storing the events one by one (``Register.store_each``):

- a crossing row shows the event with the greatest (``ended``, ``lane_seq``), the first of
  equals winning, which is what the per-event upsert's ``WHERE`` converges to; the batch
  folds its events for a crossing the same way and upserts the winner once;
- an event_id seen twice in a batch is a duplicate or a conflict of the copy that ended up
  stored (the earlier one of the batch, or the row that was there before);
- gaps open, fill and close in the order of the batch; a ``lane_seq`` that goes back outside
  every gap (a lane reset) leaves the fast path (``NotBatchable``), as does any error: the
  caller rolls the batch back and stores it one message at a time, each in its savepoint, so
  one bad message is quarantined alone;
- a replay reply is applied between the events before and after it (the batch is cut there).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg.types.json import Jsonb

from edge.site.intake import CrossingItem, Item, LaneAddress, ReplyItem

if TYPE_CHECKING:
    from edge.site.register import Register, StoreCounts


class NotBatchable(Exception):
    """The batch needs the per-event path (a lane_seq reset): not an error."""


@dataclass(slots=True)
class LaneState:
    epoch: int
    boot_seq: int | None
    first_seq: int | None
    last_seq: int | None


@dataclass(slots=True)
class GapState:
    id: int
    from_seq: int
    to_seq: int
    missing: int
    open: bool
    losses: list[tuple[int, int]] = field(default_factory=list)
    filled: int = 0  # missing lane_seq that arrived in this batch, not yet written

    def holds(self, seq: int) -> bool:
        return self.from_seq <= seq <= self.to_seq


@dataclass(slots=True)
class LaneWalk:
    """One lane's events of a segment, walked in order."""

    state: LaneState
    gaps: dict[int, GapState] = field(default_factory=dict)
    loaded: bool = False
    stored_seqs: set[int] = field(default_factory=set)  # of this epoch, before the batch
    walked_seqs: set[int] = field(default_factory=set)  # of this batch, so far
    events: int = 0
    max_boot_seq: int = 0


EVENTS_SQL = (
    "INSERT INTO events (event_id, crossing_id, checkpoint, lane, type, lane_seq, boot_seq,"
    " epoch, produced, historical, content_sha256, body)"
    " SELECT e, c, cp, l, t, s, b, ep, p, h, event_content_sha256(body), body"
    " FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[], %b::bigint[],"
    " %b::bigint[], %b::int[], %b::timestamptz[], %b::bool[], %b::jsonb[]) WITH ORDINALITY"
    " AS u(e, c, cp, l, t, s, b, ep, p, h, body, n) ORDER BY n"
    " ON CONFLICT (event_id) DO NOTHING RETURNING event_id"
)

# For each event whose event_id was stored before (or came twice in the batch): what is
# stored under it, and this event's own content hash (migration 0003).
STORED_SQL = (
    "SELECT u.n, ev.content_sha256, ev.checkpoint, ev.lane, event_content_sha256(u.body)"
    " FROM unnest(%b::text[], %b::jsonb[]) WITH ORDINALITY AS u(e, body, n)"
    " JOIN events ev ON ev.event_id = u.e"
)

# How a crossing's row takes an event, for the batch and the per-message path alike: the
# latest by lane_seq, and once an `end` is stored only a later `end` replaces it (a `new` or
# `update` replayed late changes nothing).
CROSSING_UPSERT = (
    " ON CONFLICT (crossing_id) DO UPDATE SET direction = EXCLUDED.direction,"
    " start_at = EXCLUDED.start_at, end_at = EXCLUDED.end_at, ended = EXCLUDED.ended,"
    " end_reason = EXCLUDED.end_reason, event_id = EXCLUDED.event_id,"
    " lane_seq = EXCLUDED.lane_seq, identified = EXCLUDED.identified,"
    " plates = EXCLUDED.plates, gross_kg = EXCLUDED.gross_kg, alarms = EXCLUDED.alarms,"
    " body = EXCLUDED.body, updated_at = now()"
    " WHERE (NOT c.ended AND (EXCLUDED.ended OR EXCLUDED.lane_seq > c.lane_seq))"
    " OR (c.ended AND EXCLUDED.ended AND EXCLUDED.lane_seq > c.lane_seq)"
)

CROSSINGS_SQL = (
    "INSERT INTO crossings AS c (crossing_id, checkpoint, lane, direction, start_at, end_at,"
    " ended, end_reason, event_id, lane_seq, identified, plates, gross_kg, alarms, body)"
    " SELECT id, cp, l, d, sa, ea, en, er, e, s, i,"
    " ARRAY(SELECT jsonb_array_elements_text(pl)), g, ARRAY(SELECT jsonb_array_elements_text(al)),"
    " body FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::timestamptz[],"
    " %b::timestamptz[], %b::bool[], %b::text[], %b::text[], %b::bigint[], %b::bool[],"
    " %b::jsonb[], %b::float8[], %b::jsonb[], %b::jsonb[])"
    " AS u(id, cp, l, d, sa, ea, en, er, e, s, i, pl, g, al, body)" + CROSSING_UPSERT
)

EVIDENCE_SQL = (
    "INSERT INTO evidence (crossing_id, file, checkpoint, lane, kind, expected_sha256)"
    " SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::text[], %b::text[],"
    " %b::text[]) ON CONFLICT (crossing_id, file) DO UPDATE"
    " SET expected_sha256 = EXCLUDED.expected_sha256, kind = EXCLUDED.kind"
)

LANES_SQL = (
    "UPDATE lanes AS l SET boot_seq = GREATEST(l.boot_seq, u.b), first_lane_seq = u.f,"
    " last_lane_seq = u.s, events = l.events + u.n, last_event_at = now()"
    " FROM unnest(%b::text[], %b::text[], %b::bigint[], %b::bigint[], %b::bigint[],"
    " %b::bigint[]) AS u(cp, ln, b, f, s, n) WHERE l.checkpoint = u.cp AND l.lane = u.ln"
)


def segments(items: list[Item]) -> list[list[Item]]:
    """The batch cut at each replay reply: a reply sees the events before it, not after."""
    parts: list[list[Item]] = [[]]
    for item in items:
        if isinstance(item, ReplyItem):
            parts += [[item], []]
        else:
            parts[-1].append(item)
    return [part for part in parts if part]


def _rank(item: CrossingItem) -> tuple[bool, int]:
    return item.header.type == "end", item.header.lane_seq


class BatchWriter:
    """One segment of a batch, inside the caller's transaction."""

    def __init__(self, register: Register, counts: StoreCounts) -> None:
        self.reg = register
        self.conn = register.conn
        self.counts = counts

    def store(self, items: list[Item]) -> None:
        crossings = [item for item in items if isinstance(item, CrossingItem)]
        if crossings:
            self._crossings(crossings)
        for item in items:
            if not isinstance(item, CrossingItem):
                self.reg._store_one(item, self.counts)

    # --- crossing events ------------------------------------------------------------------

    def _crossings(self, items: list[CrossingItem]) -> None:
        states = self._lock_lanes(list(dict.fromkeys(item.lane for item in items)))
        first: dict[str, CrossingItem] = {}
        repeats: list[CrossingItem] = []
        for item in items:
            if item.header.event_id in first:
                repeats.append(item)
            else:
                first[item.header.event_id] = item
        candidates = list(first.values())
        inserted_ids = self._insert_events(candidates, states)
        inserted = [item for item in candidates if item.header.event_id in inserted_ids]
        again = [item for item in candidates if item.header.event_id not in inserted_ids]
        again += repeats
        if again:
            rows = self.conn.execute(
                STORED_SQL,
                ([item.header.event_id for item in again], [as_sent(item) for item in again]),
            ).fetchall()
            if len(rows) != len(again):  # each was stored, now or before: never skip one
                raise RuntimeError(f"{len(again) - len(rows)} repeated events not found stored")
            for n, stored_sha, checkpoint, lane, this_sha in rows:
                self.reg._repeated(
                    again[n - 1], (stored_sha, checkpoint, lane), this_sha, self.counts
                )
        self.counts.events += len(inserted)
        walks = {lane: LaneWalk(state) for lane, state in states.items()}
        by_lane: dict[LaneAddress, list[CrossingItem]] = {}
        for item in inserted:
            by_lane.setdefault(item.lane, []).append(item)
        for lane, events in by_lane.items():
            self._walk(lane, walks[lane], events)
        self._update_lanes({lane: walks[lane] for lane in by_lane})
        self._upsert_crossings(inserted)
        self._evidence_refs(inserted)

    def _lock_lanes(self, lanes: list[LaneAddress]) -> dict[LaneAddress, LaneState]:
        cps, ids = [lane.checkpoint for lane in lanes], [lane.lane for lane in lanes]
        select = (
            "SELECT checkpoint, lane, epoch, boot_seq, first_lane_seq, last_lane_seq FROM lanes"
            " WHERE (checkpoint, lane) IN (SELECT * FROM unnest(%s::text[], %s::text[]))"
            " ORDER BY checkpoint, lane FOR UPDATE"
        )
        rows = self.conn.execute(select, (cps, ids)).fetchall()
        if len(rows) < len(lanes):
            # A lane added to the config while running: add_lanes ran before, this is a backstop.
            self.conn.execute(
                "INSERT INTO lanes (checkpoint, lane) SELECT * FROM unnest(%s::text[],"
                " %s::text[]) ON CONFLICT DO NOTHING",
                (cps, ids),
            )
            rows = self.conn.execute(select, (cps, ids)).fetchall()
        return {LaneAddress(r[0], r[1]): LaneState(r[2], r[3], r[4], r[5]) for r in rows}

    def _insert_events(
        self, items: list[CrossingItem], states: dict[LaneAddress, LaneState]
    ) -> set[str]:
        rows = [
            (
                item.header.event_id,
                item.header.crossing_id,
                item.lane.checkpoint,
                item.lane.lane,
                item.header.type,
                item.header.lane_seq,
                item.header.boot_seq,
                states[item.lane].epoch,
                item.header.produced,
                item.header.historical,
                as_sent(item),
            )
            for item in items
        ]
        returned = self.conn.execute(EVENTS_SQL, _columns(rows, 11)).fetchall()
        return {row[0] for row in returned}

    # --- lane_seq, in memory --------------------------------------------------------------

    def _walk(self, lane: LaneAddress, walk: LaneWalk, events: list[CrossingItem]) -> None:
        """``Register._track`` for each event in order, without its per-event queries."""
        state = walk.state
        for item in events:
            seq = item.header.lane_seq
            walk.events += 1
            walk.max_boot_seq = max(walk.max_boot_seq, item.header.boot_seq)
            try:
                if state.last_seq is None:
                    state.first_seq = state.last_seq = seq  # the register's baseline
                elif seq == state.last_seq + 1:
                    state.last_seq = seq
                elif seq > state.last_seq + 1:
                    gap_id = self.reg._open_gap(lane, state.epoch, state.last_seq + 1, seq - 1)
                    walk.gaps[gap_id] = GapState(
                        gap_id, state.last_seq + 1, seq - 1, seq - 1 - state.last_seq, True
                    )
                    self.counts.gaps_opened += 1
                    state.last_seq = seq
                elif state.first_seq is not None and seq < state.first_seq:
                    pass  # older than the register's baseline: kept, no gap
                else:
                    self._fill(lane, walk, seq, events)
            finally:
                walk.walked_seqs.add(seq)
        for gap in walk.gaps.values():
            self._write_filled(gap)

    def _fill(
        self, lane: LaneAddress, walk: LaneWalk, seq: int, events: list[CrossingItem]
    ) -> None:
        """A lane_seq at or below the last one: fills a gap, or the lane reset its numbering."""
        if not walk.loaded:
            self._load(lane, walk, events)
        twin = seq in walk.stored_seqs or seq in walk.walked_seqs
        holding = [gap for gap in walk.gaps.values() if gap.holds(seq)]
        if twin or not holding:
            raise NotBatchable(f"lane {lane.checkpoint}/{lane.lane} went back to lane_seq {seq}")
        gap = max(holding, key=lambda g: g.id)
        if not gap.open:
            self.reg._unlose(gap.id, seq)  # late, after the lane said it no longer had it
            return
        if any(low <= seq <= high for low, high in gap.losses):
            self.reg._unlose(gap.id, seq)
        else:
            gap.filled += 1
            gap.missing -= 1
        if gap.missing <= 0:
            self._write_filled(gap)
            if self.reg._close_if_complete(gap.id):
                self.counts.gaps_closed += 1
            gap.open = False

    def _load(self, lane: LaneAddress, walk: LaneWalk, events: list[CrossingItem]) -> None:
        """The lane's gaps and stored lane_seq around this batch's, once."""
        walk.loaded = True
        epoch = walk.state.epoch
        seqs = [item.header.lane_seq for item in events]
        ids = [item.header.event_id for item in events]
        rows = self.conn.execute(
            "SELECT id, from_seq, to_seq, missing, state = 'open' FROM gaps WHERE checkpoint = %s"
            " AND lane = %s AND epoch = %s AND to_seq >= %s AND from_seq <= %s",
            (lane.checkpoint, lane.lane, epoch, min(seqs), max(seqs)),
        ).fetchall()
        for gap_id, low, high, missing, is_open in rows:
            if gap_id not in walk.gaps:  # those opened in this batch are already here
                walk.gaps[gap_id] = GapState(gap_id, low, high, missing, is_open)
        if walk.gaps:
            for gap_id, low, high in self.conn.execute(
                "SELECT gap_id, from_seq, to_seq FROM losses WHERE gap_id = ANY(%s)",
                (list(walk.gaps),),
            ).fetchall():
                walk.gaps[gap_id].losses.append((low, high))
        walk.stored_seqs = {
            row[0]
            for row in self.conn.execute(
                "SELECT DISTINCT lane_seq FROM events WHERE checkpoint = %s AND lane = %s"
                " AND epoch = %s AND lane_seq = ANY(%s) AND NOT event_id = ANY(%s)",
                (lane.checkpoint, lane.lane, epoch, seqs, ids),
            ).fetchall()
        }

    def _write_filled(self, gap: GapState) -> None:
        if gap.filled:
            self.conn.execute(
                "UPDATE gaps SET missing = missing - %s WHERE id = %s", (gap.filled, gap.id)
            )
            gap.filled = 0

    def _update_lanes(self, walks: dict[LaneAddress, LaneWalk]) -> None:
        rows = [
            (
                lane.checkpoint,
                lane.lane,
                walk.max_boot_seq,
                walk.state.first_seq,
                walk.state.last_seq,
                walk.events,
            )
            for lane, walk in walks.items()
        ]
        self.conn.execute(LANES_SQL, _columns(rows, 6))

    # --- crossing rows and evidence references --------------------------------------------

    def _upsert_crossings(self, items: list[CrossingItem]) -> None:
        latest: dict[str, CrossingItem] = {}
        for item in items:
            held = latest.get(item.header.crossing_id)
            if held is None or _rank(item) > _rank(held):
                latest[item.header.crossing_id] = item
        rows = []
        for item in latest.values():
            h = item.header
            rows.append(
                (
                    h.crossing_id,
                    item.lane.checkpoint,
                    item.lane.lane,
                    h.direction,
                    h.start,
                    h.end,
                    h.type == "end",
                    h.end_reason,
                    h.event_id,
                    h.lane_seq,
                    h.identified,
                    Jsonb(item.plates),
                    h.weight.gross_kg if h.weight else None,
                    Jsonb([a.code for a in h.alarms]),
                    as_sent(item),
                )
            )
        if rows:
            self.conn.execute(CROSSINGS_SQL, _columns(rows, 15))

    def _evidence_refs(self, items: list[CrossingItem]) -> None:
        refs: dict[tuple[str, str], list[str | None]] = {}
        for item in items:
            if item.header.type != "end":
                continue
            for ref in item.evidence:
                key = (item.header.crossing_id, ref.file)
                if key in refs:  # the first row's lane, the last reference's content
                    refs[key][4:] = [ref.kind, ref.sha256]
                else:
                    refs[key] = [*key, item.lane.checkpoint, item.lane.lane, ref.kind, ref.sha256]
        if refs:
            self.conn.execute(EVIDENCE_SQL, _columns([tuple(r) for r in refs.values()], 6))


def as_sent(item: CrossingItem) -> Jsonb:
    """An event for a jsonb column, the bytes the lane sent: PostgreSQL parses them, so the
    register does not encode the decoded event again (twice per event: events, crossings)."""
    return Jsonb(item.payload, _verbatim)


def _verbatim(payload: bytes) -> bytes:
    return payload


def _columns(rows: list[tuple[Any, ...]], width: int) -> list[list[Any]]:
    """Rows as the column arrays ``unnest`` takes."""
    return [list(column) for column in zip(*rows, strict=True)] if rows else [[]] * width
