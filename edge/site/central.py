"""`lane ingest` at the centre: the same register, fed by a JetStream durable pull consumer.

The national register runs the code a checkpoint runs (edge.site.intake classifies,
edge.site.register stores), but its source is the stream ``CROSSINGS`` that every site's
`lane ingest forward` fills, instead of a site broker. A message is acknowledged to JetStream
only after the transaction that stored it committed; one not acknowledged within the
consumer's ``ack_wait`` is delivered again, and events are idempotent on ``event_id``, so a
crash, a PostgreSQL outage or a lost JetStream node loses nothing.

The subject ``<prefix>.<checkpoint>.<lane>`` names the lane; the intake sees it as the lane's
MQTT crossing topic, so a body that names another lane is refused as on a site. The centre
cannot reach the lanes: it sends no ``cmd/replay``. A gap here fills when the forwarder's
next batch arrives (a batch is published concurrently); one that stays open is an event the
site never committed (see that site's `lane ingest status`).

Threads: the asyncio loop owns the NATS connection; one writer thread (a single-worker
executor) owns the PostgreSQL connection.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import nats
import psycopg
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy

from edge.site.config import IngestConfig, JetStreamSourceConfig
from edge.site.forward import sleep_or_stop
from edge.site.intake import Intake, Item
from edge.site.register import Register, StoreCounts, open_register

log = logging.getLogger(__name__)


class CentralIngest:
    def __init__(self, config: IngestConfig) -> None:
        if config.jetstream is None:
            raise ValueError("the config has no jetstream section")
        self.config = config
        self.source: JetStreamSourceConfig = config.jetstream
        self.intake = Intake(
            config.topic_prefix,
            config.lanes(),
            client_id=self.source.durable,
            max_event_bytes=config.limits.max_event_bytes,
            max_evidence_bytes=config.evidence.max_file_bytes,
        )
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="central-writer")
        self._conn: psycopg.Connection[Any] | None = None
        self._register: Register | None = None
        self._held_since: float | None = None
        self.committed = 0

    def topic(self, subject: str) -> str:
        """``crossings.KZ-01.T1`` -> ``border/KZ-01/T1/crossing``; another shape gives a topic
        the intake refuses (quarantined as not a lane's)."""
        tokens = subject.split(".")
        prefix = self.config.topic_prefix
        if len(tokens) == 3 and tokens[0] == self.source.subject_prefix:
            return f"{prefix}/{tokens[1]}/{tokens[2]}/crossing"
        return f"{prefix}/{subject.replace('.', '/')}"

    # --- writer thread --------------------------------------------------------------------

    def _database(self) -> Register:
        if self._register is not None and self._conn is not None and not self._conn.closed:
            return self._register
        conn, register = open_register(self.config)
        self._conn, self._register = conn, register
        return register

    def _store(self, items: list[Item]) -> StoreCounts | None:
        """One try; None when PostgreSQL is unavailable (then nothing was committed)."""
        try:
            return self._database().store(items)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            if self._held_since is None:
                self._held_since = time.monotonic()
                log.error("PostgreSQL unavailable: %s; holding acknowledgements", exc)
            if self._conn is not None:
                try:
                    self._conn.close()
                except Exception:  # a broken connection may fail to close: gone either way
                    log.debug("closing the broken connection failed", exc_info=True)
            self._conn = self._register = None
            return None

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()

    # --- the loop -------------------------------------------------------------------------

    async def _subscription(self) -> tuple[Any, Any]:
        source = self.source
        options: dict[str, Any] = {
            "servers": source.servers,
            "max_reconnect_attempts": -1,
            "reconnect_time_wait": 0.5,
            "connect_timeout": 5,
        }
        if source.username is not None:
            options["user"] = source.username
            if source.password is not None:
                options["password"] = source.password.read()
        nc = await nats.connect(**options)
        js = nc.jetstream(timeout=source.request_timeout_s)
        subscription = await js.pull_subscribe(
            f"{source.subject_prefix}.>",
            durable=source.durable,
            stream=source.stream,
            config=ConsumerConfig(
                ack_policy=AckPolicy.EXPLICIT,
                deliver_policy=DeliverPolicy.ALL,
                ack_wait=float(source.ack_wait_s),
                max_ack_pending=source.batch * 4,
            ),
        )
        log.info(
            "consuming JetStream stream %s as durable %s on %s",
            source.stream,
            source.durable,
            ", ".join(source.servers),
        )
        return nc, subscription

    async def run(self, stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._writer, self._open_or_hold)
        nc = subscription = None
        failing_since: float | None = None
        try:
            while not stop.is_set():
                try:
                    if subscription is None:
                        nc, subscription = await self._subscription()
                    messages = await subscription.fetch(self.source.batch, timeout=1.0)
                except nats.errors.TimeoutError:
                    continue  # nothing new
                except Exception as exc:  # no quorum, leader election, connection lost ...
                    if failing_since is None:
                        failing_since = time.monotonic()
                        log.warning(
                            "JetStream unavailable: %s %s; retrying", type(exc).__name__, exc
                        )
                    await sleep_or_stop(stop, random.uniform(0.2, 1.0))
                    continue
                if failing_since is not None:
                    log.warning("JetStream back after %.1f s", time.monotonic() - failing_since)
                    failing_since = None
                await self._commit(messages, stop)
        finally:
            if nc is not None:
                await nc.close()
            await loop.run_in_executor(self._writer, self._close)
            self._writer.shutdown(wait=True)

    def _open_or_hold(self) -> None:
        try:
            self._database()
            log.info("register open: %d lanes", len(self.config.lanes()))
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._held_since = time.monotonic()
            log.error("PostgreSQL unavailable at start: %s; holding acknowledgements", exc)

    async def _commit(self, messages: list[Any], stop: asyncio.Event) -> None:
        loop = asyncio.get_running_loop()
        items = [self.intake.classify(self.topic(m.subject), m.data) for m in messages]
        delay = self.config.database.reconnect_min_s
        while True:
            counts = await loop.run_in_executor(self._writer, self._store, items)
            if counts is not None:
                break
            if stop.is_set():
                return  # unacknowledged: delivered again after ack_wait
            await sleep_or_stop(stop, delay * random.uniform(0.5, 1.0))
            delay = min(self.config.database.reconnect_max_s, delay * 2)
        if self._held_since is not None:
            log.warning("storing again after %.1f s", time.monotonic() - self._held_since)
            self._held_since = None
        self.committed += len(messages)
        for message in messages:
            try:
                await message.ack()
            except Exception as exc:  # the connection dropped: redelivered, a duplicate no-op
                log.debug("ack not sent: %s", exc)
