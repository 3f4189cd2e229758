"""`lane ingest`: the lanes' events from the site broker into the register, nothing lost.

Two threads, each the only user of what it owns:

- paho's network thread (``loop_start``) owns the MQTT connection. Its callbacks only put
  messages on a queue; MQTT 5 Receive Maximum bounds how many unacknowledged QoS 1 messages
  the broker sends, so the queue is bounded by the broker, not by luck.
- the writer thread owns the PostgreSQL connection: it classifies a batch of messages
  (``edge.site.intake``), stores it in one transaction (``edge.site.register``), and only after
  the commit acknowledges each message to the broker (``manual_ack``). It also sends the
  ``cmd/replay`` requests for open gaps, once a second.

PostgreSQL down: the batch is retried with capped backoff, nothing is acknowledged, the
broker keeps the rest in the persistent session (``clean_start=False``, session expiry), so
nothing is lost. Killed: the unacknowledged messages are sent again on the next connection;
events are idempotent on ``event_id``.

A PUBACK is sent only on the connection that delivered the message: after a reconnect the
broker sends unacknowledged messages again, and a PUBACK for an old packet id could otherwise
acknowledge a different message on the new connection.
"""

from __future__ import annotations

import logging
import queue
import random
import threading
import time
from dataclasses import dataclass
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.site.config import IngestConfig
from edge.site.intake import Intake, Item
from edge.site.register import Register, ReplayRequest, StoreCounts, open_register

log = logging.getLogger(__name__)

REPLAY_ROUND_S = 1.0


@dataclass(frozen=True, slots=True)
class Received:
    topic: str
    payload: bytes
    mid: int
    qos: int
    generation: int  # the connection it came on
    correlation: bytes | None


@dataclass(slots=True)
class IngestStats:
    received: int = 0
    committed: int = 0
    acked: int = 0
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    gaps_opened: int = 0
    gaps_closed: int = 0
    one_by_one: int = 0
    replay_requests: int = 0
    database_failures: int = 0
    evidence_failures: int = 0
    connections: int = 0

    def add(self, counts: StoreCounts) -> None:
        self.events += counts.events
        self.duplicates += counts.duplicates
        self.quarantined += counts.quarantined
        self.gaps_opened += counts.gaps_opened
        self.gaps_closed += counts.gaps_closed
        self.one_by_one += counts.one_by_one


class Ingest:
    def __init__(self, config: IngestConfig) -> None:
        self.config = config
        broker = config.broker
        self.intake = Intake(
            config.topic_prefix,
            config.lanes(),
            client_id=broker.client_id,
            max_event_bytes=config.limits.max_event_bytes,
            max_evidence_bytes=config.evidence.max_file_bytes,
        )
        # Bounded by Receive Maximum; the slack covers a reconnect's re-sends. A SimpleQueue
        # (C, one lock) with the bound checked on put: queue.Queue's conditions cost more per
        # message than the rest of the hand-over.
        self._queue: queue.SimpleQueue[Received] = queue.SimpleQueue()
        self._queue_bound = broker.receive_maximum * 4
        self._ack_lock = threading.Lock()
        self._generation = 0
        self._connected = threading.Event()
        self._stop = threading.Event()
        self.stats = IngestStats()
        self._writer: threading.Thread | None = None
        self._conn: psycopg.Connection[Any] | None = None
        self._register: Register | None = None
        self._held_since: float | None = None
        self.client = self._make_client()

    # --- MQTT (paho thread) ---------------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        broker = self.config.broker
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=broker.client_id,
            protocol=mqtt.MQTTv5,
            manual_ack=True,
        )
        if broker.username is not None:
            client.username_pw_set(
                broker.username, broker.password.read() if broker.password else None
            )
        if broker.tls is not None:
            tls = broker.tls
            client.tls_set(
                ca_certs=str(tls.ca_file) if tls.ca_file else None,
                certfile=str(tls.cert_file) if tls.cert_file else None,
                keyfile=str(tls.key_file) if tls.key_file else None,
                keyfile_password=tls.key_password.read() if tls.key_password else None,
            )
            if tls.insecure_skip_verify:
                client.tls_insecure_set(True)
        # paho annotates the delays int; its _reconnect_wait only adds them to a float clock
        client.reconnect_delay_set(broker.reconnect_min_s, broker.reconnect_max_s)  # type: ignore[arg-type]
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    def _on_connect(
        self, client: mqtt.Client, _u: object, flags: Any, reason: Any, _p: object
    ) -> None:
        if reason.is_failure:
            log.error("site broker refused the connection: %s", reason)
            return
        with self._ack_lock:
            self._generation += 1
        self.stats.connections += 1
        log.info(
            "connected to the site broker %s:%d (session %s)",
            self.config.broker.host,
            self.config.broker.port,
            "resumed" if flags.session_present else "new",
        )
        # Subscribing again is harmless when the session was kept, and needed when it was not.
        client.subscribe([(topic, 1) for topic in self.intake.subscriptions()])
        self._connected.set()

    def _on_subscribe(
        self, _c: object, _u: object, _mid: int, reasons: list[Any], _p: object
    ) -> None:
        refused = [r for r in reasons if r.is_failure]
        if refused:
            log.error(
                "the site broker refused %d of %d subscriptions: %s",
                len(refused),
                len(reasons),
                ", ".join(sorted({str(r) for r in refused})),
            )
        else:
            log.info("subscribed to %d topics of %d lanes", len(reasons), len(self.intake.lanes))

    def _on_disconnect(self, _c: object, _u: object, _f: object, reason: Any, _p: object) -> None:
        with self._ack_lock:
            self._generation += 1  # acks for what came on the old connection are void now
        self._connected.clear()
        if not self._stop.is_set():
            log.warning("lost the site broker (%s); reconnecting", reason)

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        props = getattr(msg, "properties", None)
        correlation = getattr(props, "CorrelationData", None) if props else None
        self.stats.received += 1
        # Waits only if the broker ignores Receive Maximum: back-pressure, not loss.
        while self._queue.qsize() >= self._queue_bound and not self._stop.is_set():
            self._stop.wait(0.01)
        self._queue.put(
            Received(
                msg.topic,
                bytes(msg.payload),
                msg.mid,
                msg.qos,
                self._generation,
                bytes(correlation) if correlation else None,
            )
        )

    def _ack(self, batch: list[Received]) -> None:
        with self._ack_lock:
            for message in batch:
                if message.qos > 0 and message.generation == self._generation:
                    self.client.ack(message.mid, message.qos)
                    self.stats.acked += 1

    # --- life cycle -----------------------------------------------------------------------

    def start(self) -> None:
        """Migrate, register the lanes, connect; returns once the writer runs.

        PostgreSQL down at start is not fatal: the writer keeps trying, and acknowledges nothing
        until it got through."""
        try:
            self._open_database(first=True)
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop_database(exc)
        broker = self.config.broker
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = broker.session_expiry_s
        props.ReceiveMaximum = broker.receive_maximum
        self.client.connect_async(
            broker.host,
            broker.port,
            keepalive=broker.keepalive_s,
            clean_start=False,
            properties=props,
        )
        self.client.loop_start()
        self._writer = threading.Thread(target=self._write_loop, name="ingest-writer", daemon=True)
        self._writer.start()

    def stop(self, timeout_s: float = 20.0) -> None:
        """Finish the batch in hand, disconnect (the session keeps the rest), close."""
        self._stop.set()
        if self._writer is not None:
            self._writer.join(timeout_s)
        self.client.disconnect()
        self.client.loop_stop()
        if self._conn is not None:
            self._conn.close()

    def run(self, stop: threading.Event) -> None:
        self.start()
        try:
            while not stop.wait(0.5):
                if self._writer is not None and not self._writer.is_alive():
                    raise RuntimeError("the ingest writer thread died; see the log")
        finally:
            self.stop()

    # --- writer thread --------------------------------------------------------------------

    def _open_database(self, *, first: bool = False) -> Register:
        conn, register = open_register(self.config)
        self._conn, self._register = conn, register
        if first:
            log.info("register open: %d lanes", len(self.config.lanes()))
        return register

    def _database(self) -> Register:
        if self._register is not None and self._conn is not None and not self._conn.closed:
            return self._register
        return self._open_database()

    def _hold(self, reason: str) -> None:
        """One error line when storing starts failing, not one per retry."""
        if self._held_since is None:
            self._held_since = time.monotonic()
            log.error("%s; holding acknowledgements, retrying", reason)

    def _drop_database(self, exc: Exception) -> None:
        self.stats.database_failures += 1
        self._hold(f"PostgreSQL unavailable: {str(exc).strip()}")
        if self._conn is not None:
            try:
                self._conn.close()
            except Exception:  # a broken connection may fail to close: it is gone either way
                log.debug("closing the broken connection failed", exc_info=True)
        self._conn = self._register = None

    def _resume(self) -> None:
        if self._held_since is not None:
            log.warning(
                "storing again after %.1f s; acknowledging again",
                time.monotonic() - self._held_since,
            )
            self._held_since = None

    def _write_loop(self) -> None:
        next_round = time.monotonic() + REPLAY_ROUND_S
        while not self._stop.is_set():
            batch = self._take(timeout_s=min(0.2, max(0.0, next_round - time.monotonic())))
            if batch:
                self._commit(batch)
            if time.monotonic() >= next_round:
                next_round = time.monotonic() + REPLAY_ROUND_S
                self._replay_round()

    def _take(self, *, timeout_s: float) -> list[Received]:
        try:
            first = self._queue.get(timeout=timeout_s)
        except queue.Empty:
            return []
        batch = [first]
        while len(batch) < self.config.limits.batch:
            try:
                batch.append(self._queue.get_nowait())
            except queue.Empty:
                break
        return batch

    def _commit(self, batch: list[Received]) -> None:
        items: list[Item] = [self.intake.classify(m.topic, m.payload, m.correlation) for m in batch]
        delay = self.config.database.reconnect_min_s
        while True:
            try:
                counts = self._database().store(items)
                break
            except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
                self._drop_database(exc)
            except OSError as exc:
                self.stats.evidence_failures += 1
                self._hold(f"evidence store {self.config.evidence.dir} unwritable: {exc}")
            if self._stop.wait(delay * random.uniform(0.5, 1.0)):
                return  # stopping with the database down: unacknowledged, sent again later
            delay = min(self.config.database.reconnect_max_s, delay * 2)
        self._resume()
        self.stats.committed += len(batch)
        self.stats.add(counts)
        self._ack(batch)

    def _replay_round(self) -> None:
        if not self._connected.is_set():
            return
        try:
            requests = self._database().due_replays()
        except (psycopg.OperationalError, psycopg.InterfaceError) as exc:
            self._drop_database(exc)
            return
        for request in requests:
            self._send_replay(request)

    def _send_replay(self, request: ReplayRequest) -> None:
        lane = request.lane
        props = Properties(PacketTypes.PUBLISH)
        props.ResponseTopic = self.intake.reply_topic(lane)
        props.CorrelationData = request.correlation(self.config.broker.client_id)
        # A request not delivered before the next one is due is stale: let the broker drop it.
        props.MessageExpiryInterval = max(1, int(self.config.replay.max_interval_s))
        body = f'{{"from_seq":{request.from_seq},"to_seq":{request.to_seq}}}'
        log.info(
            "asking %s/%s for lane_seq %d..%d (gap %d)",
            lane.checkpoint,
            lane.lane,
            request.from_seq,
            request.to_seq,
            request.gap_id,
        )
        self.client.publish(
            f"{self.intake.base(lane)}/cmd/replay", body.encode(), qos=1, properties=props
        )
        self.stats.replay_requests += 1
