"""The register in PostgreSQL: storing messages, gaps and their replay (the schema is
``schema.py``, the operator's queries ``queries.py``, evidence files ``evidence.py``).

Only the ingest's writer thread calls ``Register.store`` and the replay methods; it owns the
connection. A batch is stored in one transaction, set-based (``batch.py``: a few statements
for the whole batch, not a few per event); when that fails, the transaction is rolled back
and the batch stored again one message at a time, each inside its own savepoint, so a
message PostgreSQL refuses (a NUL in a JSON string, say) is quarantined alone and the rest of
the batch commits. The caller acknowledges the batch to the broker after the commit.

Gaps: ``lane_seq`` is contiguous per lane. An event above ``last_lane_seq + 1`` opens a gap
for the seqs in between; events inside it fill it; a replay reply's ``not_kept`` ranges are
recorded as losses. A gap closes when nothing in it is missing: ``repaired`` (all arrived),
``lost`` (none) or ``partly_lost``. A lane that goes back to a lane_seq outside any gap has
reset its sequence: flagged in ``lane_flags``, and its tracking starts a new epoch.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import psycopg
from psycopg.types.json import Jsonb

from edge.site.batch import CROSSING_UPSERT, BatchWriter, NotBatchable, as_sent, segments
from edge.site.config import IngestConfig
from edge.site.evidence import EvidenceFiles
from edge.site.intake import (
    CrossingItem,
    DeviceStatusItem,
    EvidenceItem,
    Item,
    LaneAddress,
    LaneStatusItem,
    Rejected,
    ReplyItem,
    not_kept_spans,
    spans,
)
from edge.site.schema import connect, migrate

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class ReplayRequest:
    gap_id: int
    lane: LaneAddress
    from_seq: int
    to_seq: int

    def correlation(self, client_id: str) -> bytes:
        """MQTT 5 Correlation Data: which register, which gap, which range."""
        return f"{client_id}:gap:{self.gap_id}:{self.from_seq}:{self.to_seq}".encode()


def parse_correlation(data: bytes, client_id: str) -> tuple[int, int, int] | None:
    try:
        owner, kind, gap, first, last = data.decode("ascii").rsplit(":", 4)
        if owner == client_id and kind == "gap":
            return int(gap), int(first), int(last)
    except ValueError:
        pass
    return None


@dataclass(slots=True)
class StoreCounts:
    """What one ``store`` call did, for logs and metrics."""

    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    gaps_opened: int = 0
    gaps_closed: int = 0
    one_by_one: int = 0  # batches the set-based write gave back to the per-event path


class Register:
    def __init__(self, config: IngestConfig, conn: psycopg.Connection[Any]) -> None:
        self.config = config
        self.conn = conn
        self.evidence = EvidenceFiles(config.evidence.dir)
        self.keep = config.limits.quarantine_keep_bytes
        self.replay = config.replay

    def add_lanes(self, lanes: list[tuple[str, str]]) -> None:
        with self.conn.transaction():
            for checkpoint, lane in lanes:
                self.conn.execute(
                    "INSERT INTO lanes (checkpoint, lane) VALUES (%s, %s) ON CONFLICT DO NOTHING",
                    (checkpoint, lane),
                )

    # --- storing --------------------------------------------------------------------------

    def store(self, items: list[Item]) -> StoreCounts:
        """Store a batch in one transaction: set-based first (``edge.site.batch``), and when
        that fails, one message at a time, each in a savepoint. Raises
        psycopg.OperationalError when the database is unreachable and OSError when the
        evidence directory cannot be written: then nothing was committed."""
        counts = StoreCounts()
        try:
            with self.conn.transaction():
                for segment in segments(items):
                    BatchWriter(self, counts).store(segment)
                self._seen(items)
            return counts
        except (psycopg.OperationalError, psycopg.InterfaceError, OSError):
            raise  # the database or the evidence disk, not the messages: retried
        except NotBatchable as exc:
            log.info("batch of %d stored one by one: %s", len(items), exc)
        except psycopg.Error as exc:
            log.warning("batch of %d refused (%s); storing it one by one", len(items), exc)
        except Exception:
            log.exception("storing a batch of %d failed; storing it one by one", len(items))
        counts = self.store_each(items)
        counts.one_by_one += 1
        return counts

    def store_each(self, items: list[Item]) -> StoreCounts:
        """The batch in one transaction, each item in a savepoint: a message PostgreSQL
        refuses is quarantined alone."""
        counts = StoreCounts()
        with self.conn.transaction():
            for item in items:
                try:
                    with self.conn.transaction():
                        self._store_one(item, counts)
                except (psycopg.OperationalError, psycopg.InterfaceError, OSError):
                    raise  # the database or the evidence disk, not the message: retried
                except psycopg.Error as exc:
                    # The message, not the database, is at fault: keep it aside with why.
                    log.warning("message on %s refused by PostgreSQL: %s", _topic(item), exc)
                    with self.conn.transaction():
                        self._quarantine_refused(item, "unstorable", exc)
                    counts.quarantined += 1
                except Exception as exc:
                    # A bug met by this message must not stop the stream behind it.
                    log.exception("storing a message on %s failed", _topic(item))
                    with self.conn.transaction():
                        self._quarantine_refused(item, "internal", exc)
                    counts.quarantined += 1
            self._seen(items)
        return counts

    def _seen(self, items: list[Item]) -> None:
        lanes = list(dict.fromkeys(item.lane for item in items if item.lane is not None))
        if lanes:
            self.conn.execute(
                "UPDATE lanes SET last_seen = now() FROM unnest(%s::text[], %s::text[])"
                " AS u(cp, ln) WHERE checkpoint = u.cp AND lane = u.ln",
                ([lane.checkpoint for lane in lanes], [lane.lane for lane in lanes]),
            )

    def _store_one(self, item: Item, counts: StoreCounts) -> None:
        if isinstance(item, CrossingItem):
            self._crossing(item, counts)
        elif isinstance(item, Rejected):
            self._quarantine(item)
            counts.quarantined += 1
        elif isinstance(item, EvidenceItem):
            self._evidence(item)
        elif isinstance(item, LaneStatusItem):
            self._lane_status(item)
        elif isinstance(item, DeviceStatusItem):
            self._device_status(item)
        elif isinstance(item, ReplyItem):
            self._reply(item, counts)
        # Ignored: another client's reply, nothing to store

    def _repeated(
        self,
        item: CrossingItem,
        stored: tuple[str, str, str],
        this_sha256: str,
        counts: StoreCounts,
    ) -> None:
        """An event whose event_id is stored already (content hash, checkpoint, lane): the
        same event again is a no-op; other content is flagged and never overwrites."""
        lane = item.lane
        if stored == (this_sha256, lane.checkpoint, lane.lane):
            counts.duplicates += 1
            return
        self._quarantine(
            Rejected(
                f"{self.config.topic_prefix}/{lane.checkpoint}/{lane.lane}/crossing",
                lane,
                "event_id_conflict",
                f"event_id {item.header.event_id} was stored before with other content"
                f" (stored sha256 {stored[0]}, this {this_sha256}); kept the first",
                item.payload,
                item.header.event_id,
                this_sha256,
            )
        )
        counts.quarantined += 1

    def _quarantine(self, item: Rejected) -> None:
        self.conn.execute(
            "INSERT INTO quarantine (topic, checkpoint, lane, reason_code, reason, event_id,"
            " size, sha256, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)",
            (
                item.topic,
                item.lane.checkpoint if item.lane else None,
                item.lane.lane if item.lane else None,
                item.reason_code,
                item.reason,
                item.event_id,
                len(item.payload),
                item.sha256,
                item.payload[: self.keep],
            ),
        )

    def _quarantine_refused(self, item: Item, code: str, exc: Exception) -> None:
        import hashlib

        if isinstance(item, CrossingItem):
            payload = item.payload
            event_id: str | None = item.header.event_id
        elif isinstance(item, Rejected):
            payload, event_id = item.payload, item.event_id
        else:
            payload, event_id = repr(item).encode()[: self.keep], None
        lane = item.lane
        self._quarantine(
            Rejected(
                _topic(item),
                lane,
                code,
                f"{'PostgreSQL refused it' if code == 'unstorable' else 'failed'}:"
                f" {(str(exc).strip() or repr(exc))[:300]}",
                payload,
                event_id,
                hashlib.sha256(payload).hexdigest(),
            )
        )

    def _crossing(self, item: CrossingItem, counts: StoreCounts) -> None:
        h, lane = item.header, item.lane
        row = self.conn.execute(
            "SELECT epoch, boot_seq, first_lane_seq, last_lane_seq FROM lanes"
            " WHERE checkpoint = %s AND lane = %s FOR UPDATE",
            (lane.checkpoint, lane.lane),
        ).fetchone()
        if row is None:  # a lane added to the config while running: add_lanes ran before
            self.conn.execute(
                "INSERT INTO lanes (checkpoint, lane) VALUES (%s, %s)",
                (lane.checkpoint, lane.lane),
            )
            row = (1, None, None, None)
        epoch, boot_seq, first_seq, last_seq = row
        inserted = self.conn.execute(
            "INSERT INTO events (event_id, crossing_id, checkpoint, lane, type, lane_seq,"
            " boot_seq, epoch, produced, historical, content_sha256, body)"
            " SELECT %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, event_content_sha256(b), b"
            " FROM (SELECT %s::jsonb) AS u(b)"
            " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            (
                h.event_id,
                h.crossing_id,
                lane.checkpoint,
                lane.lane,
                h.type,
                h.lane_seq,
                h.boot_seq,
                epoch,
                h.produced,
                h.historical,
                as_sent(item),
            ),
        ).fetchone()
        if inserted is None:
            stored = self.conn.execute(
                "SELECT content_sha256, checkpoint, lane, event_content_sha256(%s::jsonb)"
                " FROM events WHERE event_id = %s",
                (as_sent(item), h.event_id),
            ).fetchone()
            assert stored is not None
            self._repeated(item, (stored[0], stored[1], stored[2]), stored[3], counts)
            return
        counts.events += 1
        epoch, first_seq, last_seq = self._track(
            item, counts, epoch=epoch, boot_seq=boot_seq, first_seq=first_seq, last_seq=last_seq
        )
        self.conn.execute(
            "UPDATE lanes SET epoch = %s, boot_seq = GREATEST(boot_seq, %s),"
            " first_lane_seq = %s, last_lane_seq = %s, events = events + 1,"
            " last_event_at = now() WHERE checkpoint = %s AND lane = %s",
            (epoch, h.boot_seq, first_seq, last_seq, lane.checkpoint, lane.lane),
        )
        self._upsert_crossing(item)
        if h.type == "end":
            for ref in item.evidence:
                self.conn.execute(
                    "INSERT INTO evidence (crossing_id, file, checkpoint, lane, kind,"
                    " expected_sha256) VALUES (%s, %s, %s, %s, %s, %s)"
                    " ON CONFLICT (crossing_id, file) DO UPDATE"
                    " SET expected_sha256 = EXCLUDED.expected_sha256, kind = EXCLUDED.kind",
                    (h.crossing_id, ref.file, lane.checkpoint, lane.lane, ref.kind, ref.sha256),
                )

    def _track(
        self,
        item: CrossingItem,
        counts: StoreCounts,
        *,
        epoch: int,
        boot_seq: int | None,
        first_seq: int | None,
        last_seq: int | None,
    ) -> tuple[int, int, int]:
        """Follow lane_seq: open, fill or supersede gaps. Returns (epoch, first, last)."""
        h, lane = item.header, item.lane
        seq = h.lane_seq
        if last_seq is None:
            return epoch, seq, seq  # the register's first event of this lane: its baseline
        assert first_seq is not None
        if seq == last_seq + 1:
            return epoch, first_seq, seq
        if seq > last_seq + 1:
            self._open_gap(lane, epoch, last_seq + 1, seq - 1)
            counts.gaps_opened += 1
            return epoch, first_seq, seq
        if seq < first_seq:
            return epoch, first_seq, last_seq  # older than the register's baseline: kept, no gap
        twin = self.conn.execute(
            "SELECT event_id FROM events WHERE checkpoint = %s AND lane = %s AND epoch = %s"
            " AND lane_seq = %s AND event_id <> %s LIMIT 1",
            (lane.checkpoint, lane.lane, epoch, seq, h.event_id),
        ).fetchone()
        gap = self.conn.execute(
            "SELECT id, state FROM gaps WHERE checkpoint = %s AND lane = %s AND epoch = %s"
            " AND %s BETWEEN from_seq AND to_seq ORDER BY id DESC LIMIT 1",
            (lane.checkpoint, lane.lane, epoch, seq),
        ).fetchone()
        if gap is not None and twin is None:
            gap_id, state = gap
            if state == "open":
                lost = self.conn.execute(
                    "SELECT 1 FROM losses WHERE gap_id = %s AND %s BETWEEN from_seq AND to_seq",
                    (gap_id, seq),
                ).fetchone()
                if lost is None:
                    self.conn.execute(
                        "UPDATE gaps SET missing = missing - 1 WHERE id = %s", (gap_id,)
                    )
                else:
                    self._unlose(gap_id, seq)
                if self._close_if_complete(gap_id):
                    counts.gaps_closed += 1
            else:
                self._unlose(gap_id, seq)  # late, after the lane said it no longer had it
            return epoch, first_seq, last_seq
        # Back to a lane_seq the register already has (or that never was missing): the lane
        # restarted its numbering. With the same boot_seq that breaks the contract.
        kind = (
            "lane_seq_restarted"
            if boot_seq is not None and h.boot_seq > boot_seq
            else "lane_seq_reset"
        )
        log.warning(
            "lane %s/%s went back from lane_seq %d to %d (boot_seq %s -> %d): %s",
            lane.checkpoint,
            lane.lane,
            last_seq,
            seq,
            boot_seq,
            h.boot_seq,
            kind,
        )
        self.conn.execute(
            "INSERT INTO lane_flags (checkpoint, lane, kind, detail) VALUES (%s, %s, %s, %s)",
            (
                lane.checkpoint,
                lane.lane,
                kind,
                Jsonb(
                    {
                        "last_lane_seq": last_seq,
                        "lane_seq": seq,
                        "boot_seq_before": boot_seq,
                        "boot_seq": h.boot_seq,
                        "event_id": h.event_id,
                        "epoch": epoch + 1,
                    }
                ),
            ),
        )
        self.conn.execute(
            "UPDATE gaps SET state = 'superseded', closed_at = now()"
            " WHERE checkpoint = %s AND lane = %s AND state = 'open'",
            (lane.checkpoint, lane.lane),
        )
        self.conn.execute(
            "UPDATE events SET epoch = %s WHERE event_id = %s", (epoch + 1, h.event_id)
        )
        return epoch + 1, seq, seq

    def _open_gap(self, lane: LaneAddress, epoch: int, first: int, last: int) -> int:
        log.info(
            "lane %s/%s: lane_seq %d..%d missing (gap opened)",
            lane.checkpoint,
            lane.lane,
            first,
            last,
        )
        row = self.conn.execute(
            "INSERT INTO gaps (checkpoint, lane, epoch, from_seq, to_seq, missing, next_request_at)"
            " VALUES (%s, %s, %s, %s, %s, %s, now() + %s) RETURNING id",
            (
                lane.checkpoint,
                lane.lane,
                epoch,
                first,
                last,
                last - first + 1,
                timedelta(seconds=self.replay.grace_s),
            ),
        ).fetchone()
        assert row is not None
        return int(row[0])

    def _unlose(self, gap_id: int, seq: int) -> None:
        """An event recorded as lost arrived after all: one fewer lost."""
        self.conn.execute(
            "UPDATE losses SET count = count - 1 WHERE gap_id = %s AND %s BETWEEN from_seq AND"
            " to_seq AND count > 0",
            (gap_id, seq),
        )

    def _close_if_complete(self, gap_id: int) -> bool:
        row = self.conn.execute(
            "SELECT g.missing, g.to_seq - g.from_seq + 1, COALESCE(SUM(l.count), 0)"
            " FROM gaps g LEFT JOIN losses l ON l.gap_id = g.id WHERE g.id = %s"
            " AND g.state = 'open' GROUP BY g.id",
            (gap_id,),
        ).fetchone()
        if row is None or row[0] > 0:
            return False
        _missing, size, lost = row
        state = "repaired" if lost == 0 else "lost" if lost >= size else "partly_lost"
        self.conn.execute(
            "UPDATE gaps SET state = %s, closed_at = now() WHERE id = %s", (state, gap_id)
        )
        log.info("gap %d closed: %s (%d of %d lost)", gap_id, state, lost, size)
        return True

    def _upsert_crossing(self, item: CrossingItem) -> None:
        h, lane = item.header, item.lane
        ended = h.type == "end"
        # The row shows the crossing's latest event by lane_seq, and once an `end` is stored
        # only a later `end` replaces it: a `new` or `update` replayed late changes nothing.
        self.conn.execute(
            "INSERT INTO crossings AS c (crossing_id, checkpoint, lane, direction, start_at,"
            " end_at, ended, end_reason, event_id, lane_seq, identified, plates, gross_kg,"
            " alarms, body)"
            " VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)"
            + CROSSING_UPSERT,
            (
                h.crossing_id,
                lane.checkpoint,
                lane.lane,
                h.direction,
                h.start,
                h.end,
                ended,
                h.end_reason,
                h.event_id,
                h.lane_seq,
                h.identified,
                item.plates,
                h.weight.gross_kg if h.weight else None,
                [a.code for a in h.alarms],
                as_sent(item),
            ),
        )

    def _evidence(self, item: EvidenceItem) -> None:
        self.evidence.put(item.sha256, item.data)  # before the commit: a file without a row
        # is harmless (content-addressed), a row without its file would not be
        self.conn.execute(
            "INSERT INTO evidence (crossing_id, file, checkpoint, lane, received_sha256, size,"
            " received_at) VALUES (%s, %s, %s, %s, %s, %s, now())"
            " ON CONFLICT (crossing_id, file) DO UPDATE SET received_sha256 ="
            " EXCLUDED.received_sha256, size = EXCLUDED.size, received_at = now()",
            (
                item.crossing_id,
                item.file,
                item.lane.checkpoint,
                item.lane.lane,
                item.sha256,
                len(item.data),
            ),
        )

    def _lane_status(self, item: LaneStatusItem) -> None:
        h = item.header
        self.conn.execute(
            "INSERT INTO lane_status AS s (checkpoint, lane, state, boot_seq, alarms, produced,"
            " body) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (checkpoint, lane) DO UPDATE"
            " SET state = EXCLUDED.state, boot_seq = EXCLUDED.boot_seq, alarms = EXCLUDED.alarms,"
            " produced = EXCLUDED.produced, body = EXCLUDED.body, received_at = now()"
            " WHERE s.produced IS NULL OR EXCLUDED.produced >= s.produced",
            (
                item.lane.checkpoint,
                item.lane.lane,
                h.state,
                h.boot_seq,
                h.alarms,
                h.produced,
                Jsonb(item.body),
            ),
        )

    def _device_status(self, item: DeviceStatusItem) -> None:
        h = item.header
        self.conn.execute(
            "INSERT INTO device_status AS s (checkpoint, lane, device, kind, state, last_error,"
            " since, produced, body) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)"
            " ON CONFLICT (checkpoint, lane, device) DO UPDATE SET kind = EXCLUDED.kind,"
            " state = EXCLUDED.state, last_error = EXCLUDED.last_error, since = EXCLUDED.since,"
            " produced = EXCLUDED.produced, body = EXCLUDED.body, received_at = now()"
            " WHERE s.produced IS NULL OR EXCLUDED.produced >= s.produced",
            (
                item.lane.checkpoint,
                item.lane.lane,
                item.device,
                h.kind,
                h.state,
                h.last_error,
                h.since,
                h.produced,
                Jsonb(item.body),
            ),
        )

    def _reply(self, item: ReplyItem, counts: StoreCounts) -> None:
        parsed = parse_correlation(item.correlation, self.config.broker.client_id)
        if parsed is None:
            return  # not one of ours
        gap_id, first, last = parsed
        gap = self.conn.execute(
            "SELECT checkpoint, lane, epoch, from_seq, to_seq, state FROM gaps WHERE id = %s"
            " FOR UPDATE",
            (gap_id,),
        ).fetchone()
        if gap is None or (gap[0], gap[1]) != (item.lane.checkpoint, item.lane.lane):
            return
        checkpoint, lane, epoch, from_seq, to_seq, state = gap
        reply = item.header
        self.conn.execute(
            "UPDATE gaps SET last_reply = %s WHERE id = %s",
            (Jsonb({"ok": reply.ok, "result": reply.result, "error": reply.error}), gap_id),
        )
        if not reply.ok:
            log.warning(
                "lane %s/%s refused replay of gap %d: %s", checkpoint, lane, gap_id, reply.error
            )
            return
        if state != "open":
            return
        first, last = max(first, from_seq), min(last, to_seq)
        for low, high in not_kept_spans(reply.result, first, last):
            missing = self.conn.execute(
                "SELECT count(*) FROM generate_series(%s::bigint, %s::bigint) s WHERE NOT EXISTS"
                " (SELECT 1 FROM events e WHERE e.checkpoint = %s AND e.lane = %s AND e.epoch = %s"
                " AND e.lane_seq = s) AND NOT EXISTS (SELECT 1 FROM losses l WHERE l.gap_id = %s"
                " AND s BETWEEN l.from_seq AND l.to_seq)",
                (low, high, checkpoint, lane, epoch, gap_id),
            ).fetchone()
            lost = int(missing[0]) if missing else 0
            if lost == 0:
                continue
            self.conn.execute(
                "INSERT INTO losses (gap_id, checkpoint, lane, from_seq, to_seq, count)"
                " VALUES (%s, %s, %s, %s, %s, %s)",
                (gap_id, checkpoint, lane, low, high, lost),
            )
            self.conn.execute(
                "UPDATE gaps SET missing = missing - %s WHERE id = %s", (lost, gap_id)
            )
            log.warning(
                "lane %s/%s no longer keeps lane_seq %d..%d: %d events lost for good",
                checkpoint,
                lane,
                low,
                high,
                lost,
            )
        if self._close_if_complete(gap_id):
            counts.gaps_closed += 1

    # --- replay requests ------------------------------------------------------------------

    def due_replays(self) -> list[ReplayRequest]:
        """Open gaps whose next request is due: their missing spans, and the backoff moved on.

        At most ``replay.max_requests_per_round`` requests per lane, each at most
        ``replay.max_span`` lane_seq; the caller publishes them.
        """
        cfg = self.replay
        requests: list[ReplayRequest] = []
        per_lane: dict[LaneAddress, int] = {}
        with self.conn.transaction():
            gaps = self.conn.execute(
                "SELECT id, checkpoint, lane, epoch, from_seq, to_seq, requests FROM gaps"
                " WHERE state = 'open' AND next_request_at <= now() ORDER BY id LIMIT 1000"
                " FOR UPDATE SKIP LOCKED"
            ).fetchall()
            for gap_id, checkpoint, lane_id, epoch, from_seq, to_seq, sent in gaps:
                lane = LaneAddress(checkpoint, lane_id)
                room = cfg.max_requests_per_round - per_lane.get(lane, 0)
                if room <= 0:
                    continue
                window_end = min(to_seq, from_seq + room * cfg.max_span * 4 - 1)
                rows = self.conn.execute(
                    "SELECT s FROM generate_series(%s::bigint, %s::bigint) s WHERE NOT EXISTS"
                    " (SELECT 1 FROM events e WHERE e.checkpoint = %s AND e.lane = %s"
                    " AND e.epoch = %s AND e.lane_seq = s) AND NOT EXISTS (SELECT 1 FROM"
                    " losses l WHERE l.gap_id = %s AND s BETWEEN l.from_seq AND l.to_seq)",
                    (from_seq, window_end, checkpoint, lane_id, epoch, gap_id),
                ).fetchall()
                for low, high in spans([r[0] for r in rows]):
                    while low <= high and room > 0:
                        top = min(high, low + cfg.max_span - 1)
                        requests.append(ReplayRequest(gap_id, lane, low, top))
                        room -= 1
                        low = top + 1
                per_lane[lane] = cfg.max_requests_per_round - room
                backoff = min(cfg.max_interval_s, cfg.min_interval_s * 2 ** min(sent, 16))
                self.conn.execute(
                    "UPDATE gaps SET requests = requests + 1, last_request_at = now(),"
                    " next_request_at = now() + %s WHERE id = %s",
                    (timedelta(seconds=backoff), gap_id),
                )
        return requests


def _topic(item: Item) -> str:
    if isinstance(item, Rejected):
        return item.topic
    lane = item.lane
    return f"{lane.checkpoint}/{lane.lane}:{type(item).__name__}"


# --- reports: `lane ingest status` and `lane ingest query` -----------------------------------


def open_register(config: IngestConfig) -> tuple[psycopg.Connection[Any], Register]:
    """A connection with the schema migrated and the configured lanes known (the ingest's and
    the centre's writer); the connection is closed again when that fails."""
    conn = connect(config)
    try:
        applied = migrate(conn)
        if applied:
            log.info("register schema: applied %s", ", ".join(applied))
        register = Register(config, conn)
        register.add_lanes(config.lanes())
    except BaseException:
        conn.close()
        raise
    return conn, register
