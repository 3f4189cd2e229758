"""`lane ingest forward`: committed crossing events from the register to NATS JetStream.

The national feed inherits the site's verification: only events the register committed go
out, in commit order (``events.commit_seq``), each published to
``<subject_prefix>.<checkpoint>.<lane>`` with the header ``Nats-Msg-Id: <event_id>``. The
cursor in ``forward_cursor`` moves only after JetStream acknowledged every event of a batch
(a PubAck means the stream's replicas stored it). After any fault the batch is sent again;
JetStream stores a message whose Nats-Msg-Id it saw within the stream's duplicate window once
(``duplicate: true`` in the PubAck), so a retry never doubles an event.

The whole module is async (one loop: nats-py and psycopg's async connection).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from dataclasses import dataclass
from typing import Any

import nats
import psycopg
from nats.js.api import StorageType, StreamConfig
from nats.js.errors import BadRequestError

from edge.site.config import ForwardConfig, IngestConfig

log = logging.getLogger(__name__)

POLL_S = 0.2
RETRY_MIN_S = 0.2
RETRY_MAX_S = 5.0


@dataclass(slots=True)
class ForwardStats:
    forwarded: int = 0
    duplicates: int = 0
    failures: int = 0


class Forwarder:
    def __init__(self, config: IngestConfig) -> None:
        if config.forward is None:
            raise ValueError("the config has no forward section")
        self.config = config
        self.forward: ForwardConfig = config.forward
        self.target = f"jetstream:{self.forward.stream}"
        self.stats = ForwardStats()
        self._db: psycopg.AsyncConnection[Any] | None = None
        self._nc: Any = None
        self._js: Any = None
        self._failed_since: float | None = None

    def subject(self, checkpoint: str, lane: str) -> str:
        return f"{self.forward.subject_prefix}.{checkpoint}.{lane}"

    async def run(self, stop: asyncio.Event) -> None:
        delay = RETRY_MIN_S
        try:
            while not stop.is_set():
                try:
                    sent = await self._round()
                except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                    self._failing(f"register unavailable: {str(exc).strip()}")
                    await self._close_db()
                except psycopg.Error as exc:  # e.g. the ingest has not migrated the schema yet
                    self._failing(f"register not ready: {str(exc).strip()}")
                    await self._close_db()
                except Exception as exc:  # NATS: timeout, no quorum, connection lost, ...
                    self._failing(f"JetStream did not take the batch: {type(exc).__name__} {exc}")
                else:
                    if self._failed_since is not None:
                        log.warning("forwarding again")
                        self._failed_since = None
                    delay = RETRY_MIN_S
                    if not sent:
                        await sleep_or_stop(stop, POLL_S)
                    continue
                await sleep_or_stop(stop, delay * random.uniform(0.5, 1.0))
                delay = min(RETRY_MAX_S, delay * 2)
        finally:
            await self._close_db()
            if self._nc is not None:
                await self._nc.close()

    def _failing(self, reason: str) -> None:
        """Counted every time, logged once an outage: the batch is sent again."""
        self.stats.failures += 1
        if self._failed_since is None:
            self._failed_since = time.monotonic()
            log.warning("%s; the batch waits and is sent again", reason)

    async def _database(self) -> psycopg.AsyncConnection[Any]:
        if self._db is None or self._db.closed:
            db = self.config.database
            extra: dict[str, Any] = {"connect_timeout": db.connect_timeout_s}
            if db.password is not None:
                extra["password"] = db.password.read()
            self._db = await psycopg.AsyncConnection.connect(db.dsn, autocommit=True, **extra)
            await self._db.execute(
                "INSERT INTO forward_cursor (target) VALUES (%s) ON CONFLICT DO NOTHING",
                (self.target,),
            )
        return self._db

    async def _close_db(self) -> None:
        if self._db is not None:
            try:
                await self._db.close()
            except Exception:  # a broken connection may fail to close: it is gone either way
                log.debug("closing the register connection failed", exc_info=True)
            self._db = None

    async def _jetstream(self) -> Any:
        if self._js is not None:
            return self._js
        if self._nc is None:
            options: dict[str, Any] = {
                "servers": self.forward.servers,
                "max_reconnect_attempts": -1,
                "reconnect_time_wait": 0.5,
                "connect_timeout": 5,
                "allow_reconnect": True,
            }
            if self.forward.username is not None:
                options["user"] = self.forward.username
                if self.forward.password is not None:
                    options["password"] = self.forward.password.read()
            self._nc = await nats.connect(**options)
        js = self._nc.jetstream(timeout=self.forward.ack_timeout_s)
        stream = StreamConfig(
            name=self.forward.stream,
            subjects=[f"{self.forward.subject_prefix}.>"],
            num_replicas=self.forward.replicas,
            duplicate_window=float(self.forward.duplicate_window_s),
            storage=StorageType.FILE,
        )
        try:
            await js.add_stream(stream)
        except BadRequestError as exc:
            if getattr(exc, "err_code", None) != 10058:  # exists with another config: keep it
                raise
            log.warning("stream %s exists with another config; using it", stream.name)
        log.info(
            "forwarding to JetStream stream %s (%d replicas) on %s",
            stream.name,
            self.forward.replicas,
            ", ".join(self.forward.servers),
        )
        self._js = js
        return js

    async def _round(self) -> int:
        """One batch: read after the cursor, publish, wait for every PubAck, move the cursor."""
        db = await self._database()
        js = await self._jetstream()
        cursor = await (
            await db.execute(
                "SELECT commit_seq FROM forward_cursor WHERE target = %s", (self.target,)
            )
        ).fetchone()
        after = int(cursor[0]) if cursor else 0
        rows = await (
            await db.execute(
                "SELECT commit_seq, event_id, checkpoint, lane, body::text FROM events"
                " WHERE commit_seq > %s ORDER BY commit_seq LIMIT %s",
                (after, self.forward.batch),
            )
        ).fetchall()
        if not rows:
            return 0
        acks = await asyncio.gather(
            *(
                js.publish(
                    self.subject(checkpoint, lane),
                    body.encode(),
                    headers={"Nats-Msg-Id": event_id},
                )
                for _seq, event_id, checkpoint, lane, body in rows
            )
        )
        duplicates = sum(1 for ack in acks if ack.duplicate)
        last = rows[-1][0]
        await db.execute(
            "UPDATE forward_cursor SET commit_seq = %s, forwarded = forwarded + %s,"
            " duplicates = duplicates + %s, updated_at = now() WHERE target = %s",
            (last, len(rows) - duplicates, duplicates, self.target),
        )
        self.stats.forwarded += len(rows) - duplicates
        self.stats.duplicates += duplicates
        return len(rows)


async def sleep_or_stop(stop: asyncio.Event, seconds: float) -> None:
    """Wait ``seconds``, or less when ``stop`` is set (the forwarder's and the centre's loops)."""
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()
