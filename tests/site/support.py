"""Peers of the register: a private PostgreSQL, `lane ingest` as a process, a lane played by
the test (events published straight to the broker, cmd/replay answered by hand)."""

from __future__ import annotations

import json
import threading
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import psycopg
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from edge.events import CrossingEvent, LaneStatus, agent_version, uuid7
from tests.integration.support import Agent, wait_until

CHECKPOINT = "KZ-TEST"


def ingest_yaml(
    *, port: int, dsn: str, evidence_dir: Path, lanes: tuple[str, ...] = ("T1",), extra: str = ""
) -> str:
    return (
        "broker:\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        "  client_id: ingest-test\n"
        "  reconnect_min_s: 0.1\n"
        "  reconnect_max_s: 0.5\n"
        "checkpoints:\n"
        f"  - id: {CHECKPOINT}\n"
        f"    lanes: [{', '.join(lanes)}]\n"
        "database:\n"
        f"  dsn: '{dsn}'\n"
        "  reconnect_min_s: 0.1\n"
        "  reconnect_max_s: 0.5\n"
        "evidence:\n"
        f"  dir: {evidence_dir}\n"
        f"{extra}"
    )


class IngestProcess(Agent):
    """`lane ingest --config F` as a real process."""

    command = "ingest"

    def wait_subscribed(self, count: int = 1, timeout_s: float = 60) -> None:
        """Until the ingest's ``count``-th confirmed subscription: before, a lane's events on
        a new session would not reach it."""
        wait_until(
            lambda: self.output().count("subscribed to") >= count, timeout_s, "ingest subscribed"
        )


def query(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """A fresh connection per call: the test reads what the register committed, nothing else.
    Before the ingest created its tables, a read returns nothing."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            return conn.execute(sql.encode(), params).fetchall()  # type: ignore[call-overload]
    except (psycopg.errors.UndefinedTable, psycopg.OperationalError):
        return []


def execute(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> None:
    with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(sql.encode(), params)  # type: ignore[call-overload]


def scalar(dsn: str, sql: str, params: tuple[Any, ...] = ()) -> Any:
    rows = query(dsn, sql, params)
    return rows[0][0] if rows else None


def crossing_event(
    seq: int,
    *,
    kind: str = "new",
    crossing_id: str | None = None,
    lane: str = "T1",
    boot_seq: int = 1,
    plate: str | None = "123ABC02",
    gross_kg: float | None = None,
    alarms: list[str] | None = None,
    evidence: list[dict[str, str]] | None = None,
    overview: list[dict[str, str]] | None = None,
) -> dict[str, Any]:
    """A valid crossing event (the current lane.crossing version), built by the contract's model."""
    now = datetime.now(UTC)
    body: dict[str, Any] = {
        "type": kind,
        "event_id": str(uuid7()),
        "crossing_id": crossing_id or str(uuid.uuid4()),
        "checkpoint": CHECKPOINT,
        "lane": lane,
        "direction": "entry",
        "lane_seq": seq,
        "boot_seq": boot_seq,
        "start": now,
        "produced": now,
        "identified": plate is not None,
        "agent_version": agent_version(),
    }
    if kind == "end":
        body["end"] = now
        body["end_reason"] = "exit"
    if plate is not None:
        body["plates"] = [
            {
                "text": plate,
                "confidence": 0.9,
                "camera": "cam1",
                "position": "front",
                "evidence": evidence or [],
            }
        ]
    if overview:
        body["overview"] = overview
    if gross_kg is not None:
        body["weight"] = {"gross_kg": gross_kg, "stable": True, "device": "wb1"}
    if alarms:
        body["alarms"] = [
            {"code": code, "severity": "critical", "message": code} for code in alarms
        ]
    event = CrossingEvent.model_validate(body)
    return json.loads(event.to_json())


def lane_status(lane: str = "T1", state: str = "online") -> bytes:
    return LaneStatus(
        state=state,  # type: ignore[arg-type]
        checkpoint=CHECKPOINT,
        lane=lane,
        boot_seq=1,
        agent_version=agent_version(),
        produced=datetime.now(UTC),
    ).to_json()


class PlayedLane:
    """The test plays a lane: publishes on its topics and records the commands it receives."""

    def __init__(self, port: int, *, lane: str = "T1") -> None:
        self.base = f"border/{CHECKPOINT}/{lane}"
        self.commands: list[tuple[bytes, Properties | None]] = []
        self._lock = threading.Lock()
        self.subscribed = threading.Event()
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=f"played-{lane}-{uuid.uuid4().hex[:6]}",
            protocol=mqtt.MQTTv5,
        )
        self.client.on_connect = lambda c, _u, _f, rc, _p: (
            None if rc.is_failure else c.subscribe(f"{self.base}/cmd/+", qos=1)
        )
        self.client.on_subscribe = lambda *_a: self.subscribed.set()
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self.client.connect("127.0.0.1", port)
        self.client.loop_start()
        assert self.subscribed.wait(10), "played lane did not subscribe"

    def _on_message(self, _c: object, _u: object, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.commands.append((bytes(msg.payload), getattr(msg, "properties", None)))

    def replay_requests(self) -> list[tuple[dict[str, Any], Properties | None]]:
        with self._lock:
            return [(json.loads(p), props) for p, props in self.commands]

    def publish(self, topic_leaf: str, payload: bytes | dict[str, Any], **kwargs: Any) -> None:
        data = json.dumps(payload).encode() if isinstance(payload, dict) else payload
        info = self.client.publish(f"{self.base}/{topic_leaf}", data, qos=1, **kwargs)
        info.wait_for_publish(10)
        assert info.rc == mqtt.MQTT_ERR_SUCCESS

    def reply(self, request_props: Properties | None, body: dict[str, Any]) -> None:
        assert request_props is not None
        props = Properties(PacketTypes.PUBLISH)
        props.CorrelationData = request_props.CorrelationData
        info = self.client.publish(
            request_props.ResponseTopic, json.dumps(body).encode(), qos=1, properties=props
        )
        info.wait_for_publish(10)

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


__all__ = ["wait_until"]
