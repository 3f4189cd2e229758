"""A broker that never acknowledges: the lane reconnects and paho re-sends with DUP and the
same packet id, never a second copy under a new one (issue 21, what to build 2).

The peer plays MQTT 5 byte by byte (CONNECT/CONNACK, SUBSCRIBE/SUBACK, PUBLISH/PUBACK,
PINGREQ/PINGRESP), as paho's own tests do: on its first connection it swallows every PUBLISH;
on later ones it acknowledges them.
"""

from __future__ import annotations

import socket
import threading
from dataclasses import dataclass
from pathlib import Path

from edge.devtools.localbroker import free_port
from tests.integration.support import Agent, wait_until
from tests.integration.test_delivery import stats, write_config


@dataclass(frozen=True)
class Publish:
    connection: int
    packet_id: int
    dup: bool
    topic: str
    payload: bytes


def _read_exact(conn: socket.socket, n: int) -> bytes:
    data = b""
    while len(data) < n:
        chunk = conn.recv(n - len(data))
        if not chunk:
            raise ConnectionError("peer closed")
        data += chunk
    return data


def _varint(conn: socket.socket) -> int:
    value, shift = 0, 0
    while True:
        byte = _read_exact(conn, 1)[0]
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value
        shift += 7


def _skip_varint(body: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        byte = body[at]
        at += 1
        value |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return value, at
        shift += 7


class SilentBroker:
    def __init__(self) -> None:
        self.port = free_port()
        self.publishes: list[Publish] = []
        self.connections = 0
        self._lock = threading.Lock()
        self._server = socket.create_server(("127.0.0.1", self.port))
        self._server.settimeout(0.2)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return  # closed
            with self._lock:
                self.connections += 1
                number = self.connections
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        try:
            while not self._stop.is_set():
                header = _read_exact(conn, 1)[0]
                body = _read_exact(conn, _varint(conn))
                kind = header >> 4
                if kind == 1:  # CONNECT -> CONNACK, no session, success, no properties
                    conn.sendall(bytes([0x20, 3, 0, 0, 0]))
                elif kind == 8:  # SUBSCRIBE -> SUBACK granting QoS 1 to each filter
                    packet_id = body[:2]
                    props_len, at = _skip_varint(body, 2)
                    at += props_len
                    filters = 0
                    while at < len(body):
                        length = int.from_bytes(body[at : at + 2], "big")
                        at += 2 + length + 1
                        filters += 1
                    reply = packet_id + b"\x00" + b"\x01" * filters
                    conn.sendall(bytes([0x90, len(reply)]) + reply)
                elif kind == 3:
                    qos = (header >> 1) & 3
                    length = int.from_bytes(body[:2], "big")
                    topic = body[2 : 2 + length].decode()
                    at = 2 + length
                    packet_id = int.from_bytes(body[at : at + 2], "big") if qos else 0
                    at += 2 if qos else 0
                    props_len, at = _skip_varint(body, at)
                    payload = body[at + props_len :]
                    with self._lock:
                        self.publishes.append(
                            Publish(number, packet_id, bool(header & 0x08), topic, payload)
                        )
                    if qos == 1 and number > 1:
                        conn.sendall(bytes([0x40, 2]) + packet_id.to_bytes(2, "big"))
                elif kind == 12:  # PINGREQ
                    conn.sendall(bytes([0xD0, 0]))
                elif kind == 14:  # DISCONNECT
                    break
        except (ConnectionError, OSError):
            pass
        finally:
            conn.close()

    def snapshot(self) -> list[Publish]:
        with self._lock:
            return list(self.publishes)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._server.close()


def test_unacknowledged_publishes_are_resent_with_dup_and_the_same_packet_id(
    tmp_path: Path,
) -> None:
    peer = SilentBroker()
    config = write_config(tmp_path, peer.port, vehicles=2)
    config.write_text(config.read_text().replace("mqtt:\n", "mqtt:\n  ack_timeout_s: 1.5\n"))
    try:
        with Agent(config) as agent:
            wait_until(lambda: stats(config).last_lane_seq == 4, 30, "4 crossing events")
            wait_until(lambda: peer.connections >= 2, 30, "a reconnect after the ack timeout")
            wait_until(lambda: stats(config).pending_crossings == 0, 30, "acked on the new link")
            assert agent.stop() == 0, agent.output()[-8000:]
        first = [p for p in peer.snapshot() if p.connection == 1 and p.packet_id]
        later = [p for p in peer.snapshot() if p.connection > 1 and p.packet_id]
        crossings = [p for p in first if p.topic.endswith("/crossing")]
        assert crossings, "the lane published crossings on the first connection"
        for sent in first:
            again = [p for p in later if p.payload == sent.payload]
            assert again, f"not sent again: {sent.topic}"
            # Sent again by paho itself: DUP, the same packet id, and only that one copy.
            assert {(p.packet_id, p.dup) for p in again} == {(sent.packet_id, True)}, again
        assert "not acknowledged within 1.5 s" in agent.output()
    finally:
        peer.close()
