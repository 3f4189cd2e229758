"""The only module that talks to paho: outbox rows -> MQTT, PUBACKs -> outbox.

One thread owns the paho client and does everything with it: connect with capped, jittered
exponential backoff; run paho's network loop; fill a bounded in-flight window from the outbox
(control, then live crossings, then rate-limited backlog, then telemetry); turn PUBACK reason
codes into ``ack`` (success) or ``reject`` (>= 0x80) on the outbox; hand received commands to
the agent. paho callbacks only append to a deque that this same thread drains after
each network turn: no database access and no application lock inside a callback.

A message not acknowledged within ``mqtt.ack_timeout_s`` while connected ends the connection:
on the next one paho sends it again with DUP and its packet id; the outbox still holds it until
a PUBACK. Delivery is at least once, consumers dedupe on ``event_id``.

While the outbox cannot be written (disk full) the lane's retained status still goes out:
``send_unstored`` keeps the newest payload per topic in memory and sends it once, after the
outbox rows of the same turn. An ack or reject the store refuses is kept and tried again.
"""

from __future__ import annotations

import collections
import contextlib
import logging
import random
import select
import ssl
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import cast

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.config import LaneConfig, MqttConfig
from edge.errors import StorageError
from edge.logs import worth_logging
from edge.outbox import Outbox
from edge.outbox_send import OutboxRow
from edge.topics import Topics
from edge.writer import WriteThread

log = logging.getLogger(__name__)

CONNACK_TIMEOUT_S = 10.0
IDLE_LOOP_S = 0.02
ACK_FLUSH_S = 0.05
# Rows read ahead of the window, per read: one read per this many windows' worth of sends.
READ_AHEAD_WINDOWS = 10
# Rows read ahead are sent only this long after their read; a wake (a new row) drops them.
READ_AHEAD_MAX_AGE_S = 0.05


@dataclass(frozen=True, slots=True)
class Command:
    """A command received on ``<lane>/cmd/<name>``."""

    name: str
    payload: bytes
    response_topic: str | None
    correlation_data: bytes | None


@dataclass(slots=True)
class PublisherStats:
    connected: bool = False
    connects: int = 0
    connection_losses: int = 0
    published: int = 0
    rejected: int = 0
    resent_after_timeout: int = 0
    commands_ignored: int = 0
    messages_failed: int = 0  # received messages whose handler raised (counted, not fatal)
    last_error: str | None = None
    publish_latency_s: collections.deque[float] = field(
        default_factory=lambda: collections.deque(maxlen=1000)
    )


class Backoff:
    """Capped exponential backoff with full jitter."""

    def __init__(self, minimum: float, maximum: float, *, rng: random.Random | None = None):
        self.minimum = minimum
        self.maximum = maximum
        self.failures = 0
        self._rng = rng or random.Random()

    def next_delay(self) -> float:
        cap = min(self.maximum, self.minimum * (2**self.failures))
        self.failures += 1
        return self._rng.uniform(self.minimum, max(self.minimum, cap))

    def reset(self) -> None:
        self.failures = 0


def authenticate(client: mqtt.Client, m: MqttConfig) -> None:
    """The lane's credentials and TLS on a paho client (publisher and `lane diag mqtt`)."""
    if m.username is not None:
        client.username_pw_set(m.username, m.password.read() if m.password is not None else None)
    if m.tls is not None:
        # The key is handed to OpenSSL by name: a {credential:} is a file of systemd's.
        key = m.tls.key.path() if m.tls.key is not None else m.tls.key_file
        client.tls_set(
            ca_certs=str(m.tls.ca_file) if m.tls.ca_file else None,
            certfile=str(m.tls.cert_file) if m.tls.cert_file else None,
            keyfile=str(key) if key is not None else None,
            keyfile_password=m.tls.key_password.read() if m.tls.key_password else None,
            cert_reqs=ssl.CERT_REQUIRED,
        )
        client.tls_insecure_set(m.tls.insecure_skip_verify)


class Publisher:
    def __init__(
        self,
        config: LaneConfig,
        outbox: Outbox,
        writes: WriteThread,
        *,
        will_payload: bytes,
        on_connected: Callable[[], None],
        on_command: Callable[[Command], None],
        on_neighbour: Callable[[str, bytes], None] | None = None,
        backlog_rate_per_s: float | None = None,
    ) -> None:
        self.config = config
        self.mqtt = config.mqtt
        self.outbox = outbox  # read through its send queue's connection; written by ``writes``
        self.writes = writes
        self.topics = Topics(config.mqtt.topic_prefix, config.checkpoint, config.lane)
        self.stats = PublisherStats()
        self._on_connected = on_connected
        self._on_command = on_command
        self._on_neighbour = on_neighbour
        # Neighbouring lanes' crossing topics (fusion cross-checks): topic -> lane.
        self._neighbours = {
            Topics(config.mqtt.topic_prefix, config.checkpoint, lane).crossing: lane
            for lane in config.fusion.neighbour_lanes
        }
        self._will_payload = will_payload
        self._backlog_rate = backlog_rate_per_s or config.storage.backlog_rate_per_s
        self._backoff = Backoff(self.mqtt.reconnect_min_s, self.mqtt.reconnect_max_s)
        self._callbacks: collections.deque[tuple[str, object]] = collections.deque()
        self._inflight: dict[int, tuple[int, float]] = {}  # mid -> (row id, sent at)
        self._inflight_rows: set[int] = set()
        self._acked: list[int] = []
        self._acked_since = 0.0
        # The delete of acknowledged rows handed to the writer thread: (row ids, its result).
        self._deleting: tuple[list[int], Future[int]] | None = None
        self._stop = threading.Event()
        self._drain_before_stop_s = 0.0
        self._thread: threading.Thread | None = None
        self._socket_open = False
        self._connected = False
        self._connecting_since: float | None = None
        self._next_attempt = 0.0
        self._tokens = 0.0
        self._tokens_at = time.monotonic()
        self._last_refusal: str | None = None
        self._wake = threading.Event()
        # Rows read but not sent yet, in send order, and when they were read. A new row in
        # the outbox (``wake``) makes them stale: it may come before them in send order.
        self._ahead: collections.deque[OutboxRow] = collections.deque()
        self._ahead_at = 0.0
        self._added = threading.Event()
        # topic -> (payload, retain): status the outbox could not store, sent once.
        self._unstored: dict[str, tuple[bytes, bool]] = {}
        self._unstored_lock = threading.Lock()
        # Liveness for the systemd watchdog: the owner thread stamps this every turn.
        self.heartbeat = time.monotonic()
        # Called on the owner thread with each PUBACK's latency (metrics histogram).
        self.on_latency: Callable[[float], None] | None = None
        # Called on the owner thread with the exception that ends it (the agent's supervisor).
        self.on_crash: Callable[[BaseException], None] | None = None
        self.client = self._make_client()

    # --- public -------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def alive(self) -> bool:
        """The owner thread runs (False before start and after it ended or crashed)."""
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._guarded, name="mqtt-publisher", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        """New rows are in the outbox."""
        self._added.set()
        self._wake.set()

    def send_unstored(self, topic: str, payload: bytes, *, retain: bool) -> None:
        """Send this without the outbox (it cannot be written); the newest per topic wins."""
        with self._unstored_lock:
            self._unstored[topic] = (payload, retain)
        self._wake.set()

    def drop_unstored(self, topic: str) -> None:
        """A newer message for ``topic`` is in the outbox: the unstored one is stale."""
        with self._unstored_lock:
            self._unstored.pop(topic, None)

    def stop(self, *, drain_s: float = 5.0, timeout_s: float = 10.0) -> None:
        """Send what is pending (up to ``drain_s``), then disconnect cleanly."""
        self._drain_before_stop_s = drain_s
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.error("MQTT publisher did not stop within %.0f s", timeout_s)

    # --- the owner thread ---------------------------------------------------------------

    def _guarded(self) -> None:
        try:
            self._run()
        except BaseException as exc:
            if self.on_crash is None:
                raise
            self.on_crash(exc)  # the thread ends: the agent stops and exits 1

    def _make_client(self) -> mqtt.Client:
        m = self.mqtt
        v5 = m.protocol == "mqtt5"
        client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.config.client_id,
            protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
            clean_session=None if v5 else False,
            reconnect_on_failure=False,
        )
        client.max_inflight_messages_set(m.max_inflight)
        authenticate(client, m)
        client.will_set(self.topics.status, self._will_payload, qos=1, retain=True)
        # Callbacks hand over and return: the owner thread does the work after each network turn.
        client.on_connect = lambda _c, _u, flags, rc, _p: self._callbacks.append(
            ("connect", (rc, flags.session_present))
        )
        client.on_disconnect = lambda _c, _u, _f, rc, _p: self._callbacks.append(("disconnect", rc))
        client.on_publish = lambda _c, _u, mid, rc, _p: self._callbacks.append(
            ("puback", (mid, rc))
        )
        client.on_message = lambda _c, _u, msg: self._callbacks.append(("message", msg))
        return client

    def _run(self) -> None:
        stop_deadline: float | None = None
        while True:
            now = time.monotonic()
            self.heartbeat = now
            if self._stop.is_set():
                if stop_deadline is None:
                    stop_deadline = now + self._drain_before_stop_s
                if now >= stop_deadline or not self._connected or self._nothing_to_send():
                    break
            if not self._socket_open and now >= self._next_attempt:
                self._try_connect()
            if self._socket_open:
                busy = self._connected and self._has_room()
                rc = self._network(timeout=0.0 if busy and self._wake.is_set() else IDLE_LOOP_S)
                self._wake.clear()
                if rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_AGAIN):
                    self._connection_lost(mqtt.error_string(rc))
                elif (
                    self._connecting_since is not None
                    and now - self._connecting_since > CONNACK_TIMEOUT_S
                ):
                    self._connection_lost("no CONNACK from the broker")
            else:
                self._wake.wait(min(0.2, max(0.0, self._next_attempt - now)))
                self._wake.clear()
            self._handle_callbacks()
            self._flush_acks()
            if self._connected:
                self._expire_inflight()
                self._fill_window()
        if self._socket_open:
            self._socket_open = False  # a disconnect we asked for is no connection loss
            self.client.disconnect()
            for _ in range(10):
                if self._network(timeout=0.05) != mqtt.MQTT_ERR_SUCCESS:
                    break
            self._handle_callbacks()
        self._flush_acks(force=True)
        self._connected = False
        self.stats.connected = False

    def _network(self, *, timeout: float) -> int:
        """One turn of paho's network loop, driven here through paho's external-loop calls.

        Wait up to ``timeout`` for the socket, read every packet waiting (all the PUBACKs of
        a window in one go), write what paho still holds, then keepalive. Not ``loop()``:
        that makes paho open a socket pair to wake a select() in another thread, and write
        a byte to it on every publish, which only costs here (paho's threaded mode).
        """
        sock = self.client.socket()
        if sock is None:
            return mqtt.MQTT_ERR_NO_CONN
        # Bytes TLS already decrypted are not seen by select(): read them without waiting.
        pending = sock.pending() if isinstance(sock, ssl.SSLSocket) else 0
        try:
            readable, writable, _ = select.select(
                [sock], [sock] if self.client.want_write() else [], [], 0.0 if pending else timeout
            )
        except (OSError, ValueError):  # closed under us (a disconnect, a lost connection)
            return mqtt.MQTT_ERR_CONN_LOST
        if readable or pending:
            rc = self.client.loop_read()  # paho reads as many packets as it has in flight
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return rc
        if writable:
            rc = self.client.loop_write()
            if rc != mqtt.MQTT_ERR_SUCCESS:
                return rc
        return self.client.loop_misc()

    def _nothing_to_send(self) -> bool:
        return (
            not self._inflight
            and not self._unstored
            and not self.outbox.next_batch(limit=1, exclude=self._inflight_rows, backlog_budget=1)
        )

    def _try_connect(self) -> None:
        m = self.mqtt
        # MQTT 5 resumes the session with clean_start=False; 3.1.1 uses clean_session=False
        # from the constructor and refuses the clean_start argument.
        session: dict[str, object] = {}
        if m.protocol == "mqtt5":
            props = Properties(PacketTypes.CONNECT)
            props.SessionExpiryInterval = m.session_expiry_s
            session = {"clean_start": False, "properties": props}
        try:
            self.client.connect(m.host, m.port, keepalive=m.keepalive_s, **session)  # type: ignore[arg-type]
        except (OSError, ssl.SSLError) as exc:
            self._refused(f"cannot reach broker {m.host}:{m.port}: {exc}")
            return
        self._socket_open = True
        self._connecting_since = time.monotonic()

    def _refused(self, reason: str) -> None:
        self.stats.last_error = reason
        if reason != self._last_refusal:
            log.warning("%s (retrying with backoff up to %g s)", reason, self.mqtt.reconnect_max_s)
            self._last_refusal = reason
        self._next_attempt = time.monotonic() + self._backoff.next_delay()

    def _connection_lost(self, reason: str) -> None:
        was_connected = self._connected
        self._ahead.clear()
        self._socket_open = False
        self._connected = False
        self._connecting_since = None
        self.stats.connected = False
        with contextlib.suppress(Exception):
            self.client.disconnect()
        if was_connected:
            self.stats.connection_losses += 1
            log.warning("MQTT connection lost: %s; messages stay in the outbox", reason)
            self._last_refusal = None
            self._next_attempt = time.monotonic() + self._backoff.next_delay()
        else:
            self._refused(reason)
        # paho re-sends its unacknowledged messages (DUP, same packet id) after reconnect;
        # they stay in _inflight, excluded from the next batches, until their PUBACK.

    def _handle_callbacks(self) -> None:
        while self._callbacks:
            kind, value = self._callbacks.popleft()  # the kind says what the value is
            if kind == "connect":
                rc, session_present = cast("tuple[ReasonCode, bool]", value)
                self._connack(rc, session_present)
            elif kind == "disconnect":
                if self._socket_open and self._connected:
                    self._connection_lost(f"disconnected ({value})")
            elif kind == "puback":
                mid, rc = cast("tuple[int, ReasonCode]", value)
                self._puback(mid, rc)
            elif kind == "message":
                self._receive(cast(mqtt.MQTTMessage, value))

    def _connack(self, rc: ReasonCode, session_present: bool) -> None:
        self._connecting_since = None
        if rc.is_failure:
            self._socket_open = False
            with contextlib.suppress(Exception):
                self.client.disconnect()
            self._refused(f"broker {self.mqtt.host}:{self.mqtt.port} refused the connection: {rc}")
            return
        self._connected = True
        self.stats.connected = True
        self.stats.connects += 1
        # paho re-sends what it holds now: their ack clocks start again.
        now = time.monotonic()
        self._inflight = {mid: (row_id, now) for mid, (row_id, _sent) in self._inflight.items()}
        self.stats.last_error = None
        self._backoff.reset()
        self._last_refusal = None
        log.info(
            "MQTT connected to %s:%d (%s, session %s)",
            self.mqtt.host,
            self.mqtt.port,
            self.mqtt.protocol,
            "resumed" if session_present else "new",
        )
        if self.mqtt.protocol == "mqtt5":
            # A retained command is never executed: retainHandling=2 keeps the broker from
            # sending retained ones on subscribe, retainAsPublished keeps the flag on the
            # ones queued in our session while we were away, so _message can drop them.
            options = SubscribeOptions(
                qos=1, noLocal=True, retainAsPublished=True, retainHandling=2
            )
            self.client.subscribe(self.topics.command_filter, options=options)
        else:
            self.client.subscribe(self.topics.command_filter, qos=1)
        for topic in self._neighbours:
            self.client.subscribe(topic, qos=0)  # only for cross-checks: live reads suffice
        self._on_connected()

    def _puback(self, mid: int, rc: ReasonCode) -> None:
        entry = self._inflight.pop(mid, None)
        if entry is None:
            return
        row_id, sent_at = entry
        if rc.is_failure:
            self._inflight_rows.discard(row_id)
            self.stats.rejected += 1
            reason = f"broker rejected the publish: {rc} (0x{rc.value:02x})"
            log.error("outbox row %d %s; kept as rejected", row_id, reason)
            try:
                self.writes.call(self.outbox.reject, row_id, rc.value, reason)
            except StorageError as exc:  # stays pending: sent again, refused again, kept then
                log.error("outbox row %d not marked rejected: %s", row_id, exc)
            return
        self.stats.published += 1
        latency = time.monotonic() - sent_at
        self.stats.publish_latency_s.append(latency)
        if self.on_latency is not None:
            self.on_latency(latency)
        if not self._acked:
            self._acked_since = time.monotonic()
        self._acked.append(row_id)

    def _receive(self, msg: mqtt.MQTTMessage) -> None:
        """A message from the network never ends this thread: a handler that raises on it
        is a bug to log and count, and publishing goes on."""
        try:
            self._message(msg)
        except Exception:
            self.stats.messages_failed += 1
            if worth_logging(self.stats.messages_failed):
                log.exception(
                    "handling a message on %r failed (%d so far); the message is dropped",
                    msg.topic,
                    self.stats.messages_failed,
                )

    def _message(self, msg: mqtt.MQTTMessage) -> None:
        neighbour = self._neighbours.get(msg.topic)
        if neighbour is not None:
            if self._on_neighbour is not None:
                self._on_neighbour(neighbour, bytes(msg.payload))
            return
        name = self.topics.command_name(msg.topic)
        if name is None:
            return
        if msg.retain:
            self.stats.commands_ignored += 1
            log.warning("ignored retained command on %s: commands are never retained", msg.topic)
            return
        props = getattr(msg, "properties", None)
        response_topic = getattr(props, "ResponseTopic", None) if props else None
        correlation = getattr(props, "CorrelationData", None) if props else None
        self._on_command(Command(name, bytes(msg.payload), response_topic, correlation))

    def _has_room(self) -> bool:
        return len(self._inflight) < self.mqtt.max_inflight

    def _fill_window(self) -> None:
        room = self.mqtt.max_inflight - len(self._inflight)
        if room <= 0:
            return
        now = time.monotonic()
        self._tokens = min(
            max(float(self.mqtt.max_inflight), self._backlog_rate * 0.1),
            self._tokens + (now - self._tokens_at) * self._backlog_rate,
        )
        self._tokens_at = now
        rows = self._next_rows(room)
        for row in rows:
            if row.historical:
                self._tokens -= 1
            try:
                info = self.client.publish(
                    row.topic,
                    row.wire_payload(),
                    qos=1,
                    retain=row.retain,
                    properties=self._properties(row),
                )
            except (ValueError, TypeError, UnicodeError) as exc:
                # paho refuses the row itself (a wildcard topic, a bad property): it can
                # never be sent, so it is kept as rejected, not retried into a crash loop.
                self._refuse_row(row, f"cannot be published: {exc}")
                continue
            if info.rc not in (mqtt.MQTT_ERR_SUCCESS, mqtt.MQTT_ERR_NO_CONN):
                log.error(
                    "publish of row %d failed locally: %s", row.id, mqtt.error_string(info.rc)
                )
                continue
            self._inflight[info.mid] = (row.id, time.monotonic())
            self._inflight_rows.add(row.id)
        if rows:
            self._wake.set()
        self._send_unstored()

    def _next_rows(self, room: int) -> list[OutboxRow]:
        """The next ``room`` rows in send order, read ahead in batches.

        One read serves several windows (each read is a few indexed queries, as costly as
        the publishes it feeds). What was read ahead is dropped when a new row was stored
        (it may come first in send order), when the read is older than
        ``READ_AHEAD_MAX_AGE_S``, and when the connection is lost.
        """
        now = time.monotonic()
        if self._added.is_set() or now - self._ahead_at > READ_AHEAD_MAX_AGE_S:
            self._ahead.clear()
        if not self._ahead:
            self._added.clear()
            self._ahead.extend(
                self.outbox.next_batch(
                    limit=max(room, self.mqtt.max_inflight * READ_AHEAD_WINDOWS),
                    exclude=self._inflight_rows,
                    backlog_budget=int(self._tokens),
                )
            )
            self._ahead_at = now
        return [self._ahead.popleft() for _ in range(min(room, len(self._ahead)))]

    def _send_unstored(self) -> None:
        with self._unstored_lock:
            if not self._unstored:
                return
            unstored, self._unstored = self._unstored, {}
        for topic, (payload, retain) in unstored.items():
            # QoS 1 without an outbox row: paho resends it within this connection only.
            self.client.publish(topic, payload, qos=1, retain=retain)

    def _refuse_row(self, row: OutboxRow, reason: str) -> None:
        self.stats.rejected += 1
        log.error(
            "outbox row %d (%s on %r) %s; kept as rejected", row.id, row.kind, row.topic, reason
        )
        try:
            self.writes.call(self.outbox.reject, row.id, None, reason)
        except StorageError as exc:  # stays pending; tried again, refused again, kept then
            log.error("outbox row %d not marked rejected: %s", row.id, exc)

    def _properties(self, row: OutboxRow) -> Properties | None:
        """MQTT 5 properties a row needs: correlation data and expiry (replies, telemetry).

        Crossings carry none: event_id and lane_seq are in the payload, and building paho
        Properties costs more than the rest of a publish.
        """
        if self.mqtt.protocol != "mqtt5" or not row.properties:
            return None
        props = Properties(PacketTypes.PUBLISH)
        if "correlation_data" in row.properties:
            props.CorrelationData = bytes.fromhex(str(row.properties["correlation_data"]))
        if "expiry_s" in row.properties:
            props.MessageExpiryInterval = int(row.properties["expiry_s"])  # type: ignore[call-overload]
        return props

    def _expire_inflight(self) -> None:
        """A publish unacknowledged past ``mqtt.ack_timeout_s``: reconnect.

        paho still holds the message in its own window; publishing the row again would send
        it twice under two packet ids. A new connection makes paho send every unacknowledged
        message again itself, with DUP set and the same packet id (MQTT 5, 4.4).
        """
        deadline = time.monotonic() - self.mqtt.ack_timeout_s
        late = sum(1 for _row, sent_at in self._inflight.values() if sent_at < deadline)
        if not late:
            return
        self.stats.resent_after_timeout += late
        self._connection_lost(
            f"{late} publishes not acknowledged within {self.mqtt.ack_timeout_s:g} s;"
            " reconnecting so that they are sent again with the same packet id"
        )

    def _flush_acks(self, *, force: bool = False) -> None:
        """Delete acknowledged rows, a batch at a time, on the writer thread.

        The publisher never waits for that delete (a crossing's fsync'd commit may be ahead of
        it) except on ``force``, when it stops: until the delete is done, its rows stay
        excluded from the batches, so they are not sent again.
        """
        self._settle_delete(wait=force)
        if not self._acked or self._deleting is not None:
            return
        if (
            force
            or len(self._acked) >= self.mqtt.max_inflight * READ_AHEAD_WINDOWS
            or time.monotonic() - self._acked_since >= ACK_FLUSH_S
        ):
            ids, self._acked = self._acked, []
            self._deleting = (ids, self.writes.submit(self.outbox.ack, ids))
            self._settle_delete(wait=force)

    def _settle_delete(self, *, wait: bool) -> None:
        if self._deleting is None:
            return
        ids, done = self._deleting
        if not wait and not done.done():
            return
        self._deleting = None
        try:
            done.result()
        except StorageError:
            # The store refuses the delete (disk full): the rows stay excluded, so they are
            # not sent again, and the delete is tried with the next flush.
            self._acked = ids + self._acked
            self._acked_since = time.monotonic()
            return
        self._inflight_rows.difference_update(ids)
