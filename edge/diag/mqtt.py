"""`lane diag mqtt check`: log in as the lane, publish and receive on a test topic.

Uses the lane's host, port, TLS files, username and password, but its own client id
(``<client_id>-diag-<pid>``): the lane's own id would disconnect the running agent. The test
topic is ``<prefix>/<checkpoint>/<lane>/diag/<random>``, under the lane's own topic tree, so
an ACL that lets the lane publish its events lets this through. Nothing is retained.

Each failure class raises its own error (and exit code): unreachable, TLS, credentials
refused, ACL denied. The messages say what to change, not only what failed.
"""

from __future__ import annotations

import os
import secrets
import ssl
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import paho.mqtt.client as mqtt
from paho.mqtt.reasoncodes import ReasonCode
from paho.mqtt.subscribeoptions import SubscribeOptions

from edge.config import LaneConfig
from edge.diag.errors import (
    BrokerAclError,
    BrokerAuthError,
    BrokerTlsError,
    BrokerUnreachableError,
)
from edge.diag.models import MqttCheckOutput, TlsReport
from edge.publish import authenticate
from edge.topics import Topics

AUTH_CODES = {0x84, 0x85, 0x86, 0x87, 0x8C}  # bad protocol/id, bad credentials, not authorised
NOT_AUTHORISED = 0x87


@dataclass
class _Events:
    """What paho's callbacks saw; the callbacks only record and set (no work on its thread)."""

    connack: threading.Event = field(default_factory=threading.Event)
    suback: threading.Event = field(default_factory=threading.Event)
    puback: threading.Event = field(default_factory=threading.Event)
    message: threading.Event = field(default_factory=threading.Event)
    connect_rc: ReasonCode | None = None
    suback_codes: list[ReasonCode] = field(default_factory=list)
    puback_rc: ReasonCode | None = None
    received_at: float | None = None
    disconnect_rc: Any = None


def _client(config: LaneConfig, client_id: str, events: _Events, nonce: bytes) -> mqtt.Client:
    m = config.mqtt
    v5 = m.protocol == "mqtt5"
    client = mqtt.Client(
        callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=mqtt.MQTTv5 if v5 else mqtt.MQTTv311,
        reconnect_on_failure=False,
    )
    authenticate(client, m)

    def on_connect(_c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        events.connect_rc = rc
        events.connack.set()

    def on_subscribe(_c: Any, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any) -> None:
        events.suback_codes = list(codes)
        events.suback.set()

    def on_publish(_c: Any, _u: Any, _mid: int, rc: ReasonCode, _p: Any) -> None:
        events.puback_rc = rc
        events.puback.set()

    def on_message(_c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        if msg.payload == nonce:
            events.received_at = time.monotonic()
            events.message.set()

    def on_disconnect(_c: Any, _u: Any, _f: Any, rc: Any, _p: Any) -> None:
        events.disconnect_rc = rc
        events.connack.set()  # a refused TLS or a closed socket must not leave us waiting

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message
    client.on_disconnect = on_disconnect
    return client


def _tls_report(client: mqtt.Client) -> TlsReport | None:
    sock = client.socket()
    if not isinstance(sock, ssl.SSLSocket):
        return None
    cert = sock.getpeercert() or {}

    def name(key: str) -> str | None:
        parts = cert.get(key)
        if not parts:
            return None
        # typeshed types every getpeercert() value as str-or-tuple; subject/issuer are RDN tuples
        return ", ".join(f"{k}={v}" for rdn in parts for (k, v) in rdn)  # type: ignore[str-unpack]

    cipher = sock.cipher()
    return TlsReport(
        version=sock.version(),
        cipher=cipher[0] if cipher else None,
        peer_subject=name("subject"),
        peer_issuer=name("issuer"),
        peer_not_after=str(cert.get("notAfter")) if cert.get("notAfter") else None,
    )


def check(
    config: LaneConfig, *, timeout_s: float = 5.0, connect_only: bool = False
) -> MqttCheckOutput:
    """Run the check; returns the report, or raises the error of the first failure."""
    m = config.mqtt
    topics = Topics(m.topic_prefix, config.checkpoint, config.lane)
    test_topic = f"{topics.base}/diag/{secrets.token_hex(4)}"
    client_id = f"{config.client_id}-diag-{os.getpid()}"
    nonce = secrets.token_bytes(16)
    events = _Events()
    client = _client(config, client_id, events, nonce)
    report = MqttCheckOutput(
        host=m.host,
        port=m.port,
        protocol=m.protocol,
        username=m.username,
        client_id=client_id,
        connected=False,
        tls=None,
        test_topic=test_topic,
        subscribe_ok=None,
        publish_ok=None,
        received=None,
        round_trip_ms=None,
        command_subscribe_ok=None,
        problems=[],
    )
    where = f"{m.host}:{m.port}"
    client.connect_timeout = timeout_s
    try:
        client.connect(m.host, m.port, keepalive=max(5, int(timeout_s * 2)))
    except ssl.SSLCertVerificationError as exc:
        raise BrokerTlsError(
            f"TLS to {where}: the broker's certificate is not trusted ({exc.verify_message}); "
            f"check mqtt.tls.ca_file"
            + (" and that the host name matches the certificate" if "hostname" in str(exc) else "")
        ) from None
    except ssl.SSLError as exc:
        raise BrokerTlsError(f"TLS handshake with {where} failed: {exc.reason or exc}") from None
    except (OSError, TimeoutError) as exc:
        detail = exc.strerror or str(exc) or type(exc).__name__
        plain = f"cannot reach the broker at {where}: {detail}"
        if isinstance(exc, ConnectionRefusedError):
            plain += " (nothing listens there: is the broker running, is the port right?)"
        raise BrokerUnreachableError(plain) from None
    client.loop_start()
    try:
        if not events.connack.wait(timeout_s) or events.connect_rc is None:
            if m.tls is None and events.disconnect_rc is not None:
                raise BrokerUnreachableError(
                    f"the broker at {where} closed the connection before CONNACK "
                    f"({events.disconnect_rc}); does it expect TLS on this port?"
                )
            raise BrokerUnreachableError(
                f"no answer (CONNACK) from the broker at {where} within {timeout_s:.0f} s"
            )
        rc = events.connect_rc
        if rc.is_failure:
            user = f"user {m.username!r}" if m.username else "an anonymous client"
            if rc.value in AUTH_CODES:
                raise BrokerAuthError(
                    f"the broker at {where} refused the lane's credentials ({rc}): it does not "
                    f"accept {user} with the configured password"
                    + (f" ({m.password.describe()})" if m.password else " (none configured)")
                    + "; check mqtt.username / mqtt.password and the broker's password file"
                )
            raise BrokerUnreachableError(f"the broker at {where} refused the connection: {rc}")
        report.connected = True
        report.tls = _tls_report(client)
        if connect_only:
            return report
        _pubsub(client, config, report, events, nonce, timeout_s)
        _command_filter(client, config, topics, report, events, timeout_s)
    finally:
        client.disconnect()
        client.loop_stop()
    if report.problems:
        raise BrokerAclError("; ".join(report.problems), report)
    return report


def _subscribe(client: mqtt.Client, config: LaneConfig, topic: str, events: _Events) -> None:
    events.suback.clear()
    if config.mqtt.protocol == "mqtt5":
        client.subscribe(topic, options=SubscribeOptions(qos=1))
    else:
        client.subscribe(topic, qos=1)


def _pubsub(
    client: mqtt.Client,
    config: LaneConfig,
    report: MqttCheckOutput,
    events: _Events,
    nonce: bytes,
    timeout_s: float,
) -> None:
    user = config.mqtt.username or "anonymous"
    topic = report.test_topic
    _subscribe(client, config, topic, events)
    if not events.suback.wait(timeout_s):
        report.problems.append(f"no SUBACK within {timeout_s:.0f} s for {topic}")
        return
    granted = events.suback_codes[0] if events.suback_codes else None
    report.subscribe_ok = granted is not None and not granted.is_failure
    if not report.subscribe_ok:
        report.problems.append(
            f"the ACL does not let {user} subscribe to {topic} ({granted}): "
            f"allow `topic read {topics_root(config)}/#` for this user"
        )
    sent = time.monotonic()
    client.publish(topic, nonce, qos=1, retain=False)
    if not events.puback.wait(timeout_s):
        report.problems.append(f"no PUBACK within {timeout_s:.0f} s for a publish to {topic}")
        return
    rc = events.puback_rc
    report.publish_ok = rc is None or not rc.is_failure
    if not report.publish_ok:
        report.problems.append(
            f"the ACL does not let {user} publish to {topic} ({rc}): the lane's events would "
            f"be rejected; allow `topic write {topics_root(config)}/#` for this user"
        )
        return
    if not report.subscribe_ok:
        return
    report.received = events.message.wait(timeout_s)
    if report.received and events.received_at is not None:
        report.round_trip_ms = round((events.received_at - sent) * 1000, 2)
    else:
        report.problems.append(
            f"the broker acknowledged a publish to {topic} but never delivered it back within "
            f"{timeout_s:.0f} s: the ACL silently drops {user}'s writes or reads there "
            f"(MQTT 3.1.1 brokers do not report denied publishes)"
        )


def _command_filter(
    client: mqtt.Client,
    config: LaneConfig,
    topics: Topics,
    report: MqttCheckOutput,
    events: _Events,
    timeout_s: float,
) -> None:
    _subscribe(client, config, topics.command_filter, events)
    if not events.suback.wait(timeout_s):
        return
    granted = events.suback_codes[0] if events.suback_codes else None
    report.command_subscribe_ok = granted is not None and not granted.is_failure
    if not report.command_subscribe_ok:
        report.problems.append(
            f"the ACL does not let {config.mqtt.username or 'anonymous'} subscribe to "
            f"{topics.command_filter} ({granted}): the lane would never receive commands"
        )


def topics_root(config: LaneConfig) -> str:
    return f"{config.mqtt.topic_prefix}/{config.checkpoint}/{config.lane}"
