"""The checkpoint broker's authorisation, against a real Mosquitto with the shipped config.

The PKI, ACL and mosquitto.conf are made by `lane broker certs` logic (edge/broker.py) in a
temp dir; the broker runs that config on a free port. Denials are shown two ways: the broker's
MQTT 5 PUBACK says 0x87 (not authorised), and a subscriber to everything never sees the
message. "Never" is proved without waiting a fixed time: Mosquitto routes a QoS 1 message to
its subscribers before it sends the PUBACK, and delivers to one subscriber in order, so once
an allowed marker published after the PUBACKs is seen, anything before it would have been.
Mosquitto 2.0 grants every SUBSCRIBE and applies the read rules to each message delivered,
so reading is shown by what arrives, not by SUBACK codes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import socket
import ssl
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import paho.mqtt.client as mqtt
import pytest
from cryptography import x509
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from paho.mqtt.reasoncodes import ReasonCode

from edge.broker import (
    SiteConfig,
    issue_site,
    lane_identity,
    load_site,
    parse_site,
    render_acl,
    render_mosquitto_conf,
)
from edge.devtools.localbroker import find_mosquitto, free_port
from edge.errors import ConfigError
from tests.conftest import lane_yaml
from tests.integration.support import Agent, wait_until

ROOT = Path(__file__).resolve().parents[2]
CP = "KZ-TEST"  # the checkpoint of tests.conftest.lane_yaml
BASE = f"border/{CP}"
NOT_AUTHORISED = 0x87
ACCEPTED = {0x00, 0x10}  # success; success but no matching subscribers
SITE = f"""\
checkpoint: {CP}
broker_names: [localhost]
broker_ips: [127.0.0.1]
lanes:
  - {{name: T1, neighbours: [T2]}}
  - {{name: T2, neighbours: [T1]}}
  - {{name: T3}}
consumers: [central]
operators: [duty]
"""


@dataclass
class Broker:
    port: int
    pki: Path
    process: subprocess.Popen[bytes]
    log: Path

    def cert(self, name: str) -> tuple[Path, Path]:
        return self.pki / "clients" / f"{name}.pem", self.pki / "clients" / f"{name}.key"


def start_broker(pki: Path, workdir: Path) -> Broker:
    """`mosquitto -c <generated config> -v`, waiting until it says it listens."""
    binary = find_mosquitto()
    if binary is None:
        pytest.fail("mosquitto is not installed; `make system-deps` installs it")
    port = free_port()
    state = workdir / "state"
    state.mkdir(parents=True, exist_ok=True)
    conf = workdir / "mosquitto.conf"
    user = "root" if os.geteuid() == 0 else os.environ.get("USER", "nobody")
    conf.write_text(
        render_mosquitto_conf(pki, port=port, bind="127.0.0.1", user=user, persistence_dir=state)
    )
    log = workdir / "mosquitto.log"
    with log.open("wb") as out:
        process = subprocess.Popen([binary, "-c", str(conf), "-v"], stdout=out, stderr=out)
    broker = Broker(port, pki, process, log)
    deadline = time.monotonic() + 30
    while f"Opening ipv4 listen socket on port {port}" not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            process.kill()
            pytest.fail(f"mosquitto did not start:\n{log.read_text(errors='replace')}")
        time.sleep(0.05)
    return broker


def stop_broker(broker: Broker) -> None:
    broker.process.terminate()
    broker.process.wait(10)


@pytest.fixture(scope="module")
def site() -> SiteConfig:
    return parse_site(SITE)


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory, site: SiteConfig) -> Iterator[Broker]:
    pki = tmp_path_factory.mktemp("pki")
    issue_site(site, pki)
    b = start_broker(pki, tmp_path_factory.mktemp("broker"))
    yield b
    stop_broker(b)


class Peer:
    """One MQTT 5 client with a certificate of the site (or none, or a foreign one)."""

    def __init__(
        self,
        broker: Broker,
        name: str | None,
        *,
        cert: tuple[Path, Path] | None = None,
        ca: Path | None = None,
        username: str | None = None,
        client_id: str = "",
    ) -> None:
        self.client = mqtt.Client(
            callback_api_version=mqtt.CallbackAPIVersion.VERSION2,
            client_id=client_id,
            protocol=mqtt.MQTTv5,
            reconnect_on_failure=False,
        )
        if username is not None:
            self.client.username_pw_set(username, "ignored")
        certfile, keyfile = cert or (broker.cert(name) if name else (None, None))
        self.client.tls_set(
            ca_certs=str(ca or broker.pki / "ca.pem"),
            certfile=str(certfile) if certfile else None,
            keyfile=str(keyfile) if keyfile else None,
        )
        self.messages: list[mqtt.MQTTMessage] = []
        self.acks: dict[int, ReasonCode] = {}
        self.granted: list[ReasonCode] = []
        self._lock = threading.Lock()
        self._connack = threading.Event()
        self._suback = threading.Event()
        self.connect_rc: ReasonCode | None = None
        self.client.on_connect = self._on_connect
        self.client.on_publish = self._on_publish
        self.client.on_subscribe = self._on_subscribe
        self.client.on_message = self._on_message
        self.client.connect("127.0.0.1", broker.port, keepalive=30)
        self.client.loop_start()
        assert self._connack.wait(30), f"{name}: no CONNACK"
        assert self.connect_rc is not None and not self.connect_rc.is_failure, self.connect_rc

    def _on_connect(self, _c: Any, _u: Any, _f: Any, rc: ReasonCode, _p: Any) -> None:
        self.connect_rc = rc
        self._connack.set()

    def _on_publish(self, _c: Any, _u: Any, mid: int, rc: ReasonCode, _p: Any) -> None:
        with self._lock:
            self.acks[mid] = rc

    def _on_subscribe(self, _c: Any, _u: Any, _mid: int, codes: list[ReasonCode], _p: Any) -> None:
        self.granted = list(codes)
        self._suback.set()

    def _on_message(self, _c: Any, _u: Any, msg: mqtt.MQTTMessage) -> None:
        with self._lock:
            self.messages.append(msg)

    def subscribe(self, topic: str) -> list[ReasonCode]:
        self._suback.clear()
        self.client.subscribe(topic, qos=1)
        assert self._suback.wait(30), f"no SUBACK for {topic}"
        return self.granted

    def publish(
        self,
        topic: str,
        payload: bytes,
        *,
        retain: bool = False,
        properties: Properties | None = None,
    ) -> int:
        """Publish at QoS 1; the PUBACK's reason code."""
        info = self.client.publish(topic, payload, qos=1, retain=retain, properties=properties)
        wait_until(lambda: info.mid in self.acks, 30, f"PUBACK for {topic}")
        return self.acks[info.mid].value

    def seen(self) -> list[tuple[str, bytes]]:
        with self._lock:
            return [(m.topic, bytes(m.payload)) for m in self.messages]

    def wait_for(self, topic: str, payload: bytes) -> None:
        wait_until(lambda: (topic, payload) in self.seen(), 30, f"{payload!r} on {topic}")

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


@pytest.fixture
def watcher(broker: Broker) -> Iterator[Peer]:
    """The operator certificate, subscribed to the whole checkpoint."""
    peer = Peer(broker, "operator-KZ-TEST-duty")
    assert [c.value for c in peer.subscribe(f"{BASE}/#")] == [1]
    yield peer
    peer.close()


def marker() -> bytes:
    return f"marker-{uuid.uuid4()}".encode()


def tls_refused(broker: Broker, cert: tuple[Path, Path] | None, ca: Path | None = None) -> str:
    """The error a TLS client with ``cert`` (or none) gets; "" when it got in."""
    context = ssl.create_default_context(cafile=str(ca or broker.pki / "ca.pem"))
    if cert is not None:
        context.load_cert_chain(str(cert[0]), str(cert[1]))
    try:
        with (
            socket.create_connection(("127.0.0.1", broker.port), timeout=30) as raw,
            context.wrap_socket(raw, server_hostname="localhost") as tls,
        ):
            # TLS 1.3: a refused client certificate shows on the first read, not the handshake.
            tls.sendall(bytes.fromhex("100f00044d5154540402003c0003616263"))  # CONNECT
            answer = tls.recv(16)
            return "" if answer[:1] == b"\x20" else f"closed after {answer!r}"
    except (ssl.SSLError, OSError) as exc:
        return f"{type(exc).__name__}: {exc}"


# --- the shipped files ----------------------------------------------------------------------


def test_shipped_broker_files_are_the_generated_ones() -> None:
    """config/broker/ is what `lane broker certs` writes for the example site, defaults."""
    example = load_site(ROOT / "config/broker/site.example.yaml")
    assert (ROOT / "config/broker/mosquitto.conf").read_text() == render_mosquitto_conf()
    assert (ROOT / "config/broker/acl.example").read_text() == render_acl(example)


def test_the_config_parses_and_listens(tmp_path: Path, site: SiteConfig) -> None:
    """`mosquitto -c <config> -v` loads the generated config, listens, and lets a lane in."""
    issue_site(site, tmp_path / "pki")
    broker = start_broker(tmp_path / "pki", tmp_path / "broker")
    try:
        lane = Peer(broker, lane_identity(CP, "T1"))
        lane.close()
    finally:
        stop_broker(broker)
    log = broker.log.read_text(errors="replace")
    assert "Config loaded" in log and "Error" not in log, log
    assert "u'lane-KZ-TEST-T1'" in log, log  # the certificate's CN is the username


def test_site_descriptions_are_checked() -> None:
    with pytest.raises(ConfigError) as bad:
        parse_site("checkpoint: X\nlanes:\n  - {name: T1, neighbours: [T9]}\n", source="s.yaml")
    assert "neighbour T9 is not a lane" in str(bad.value)
    with pytest.raises(ConfigError) as bad:
        parse_site("checkpoint: X\nlanes:\n  - name: T 1\n", source="s.yaml")
    assert str(bad.value).startswith("s.yaml:3:")
    with pytest.raises(ConfigError, match="unknown key"):
        parse_site("checkpoint: X\nlanes: [{name: T1}]\nadmins: [x]\n")


# --- who may publish what -------------------------------------------------------------------


def test_a_lane_publishes_only_under_its_own_topics(broker: Broker, watcher: Peer) -> None:
    lane = Peer(broker, lane_identity(CP, "T1"))
    try:
        assert lane.publish(f"{BASE}/T1/crossing", b"own") in ACCEPTED
        assert lane.publish(f"{BASE}/T1/device/scale/status", b"own-device") in ACCEPTED
        forbidden = [
            f"{BASE}/T2/crossing",
            f"{BASE}/T2/status",
            f"{BASE}/T2/device/scale/status",
            f"{BASE}/T2/cmd/replay",
            f"{BASE}/T2/cmd/ping/reply",
            f"{BASE}/T1/cmd/replay",  # not even a command to itself
            f"{BASE}/T1/other",
            "border/OTHER-CP/T1/crossing",
            "elsewhere/x",
        ]
        for topic in forbidden:
            assert lane.publish(topic, b"forged " + topic.encode()) == NOT_AUTHORISED, topic
        done = marker()
        assert lane.publish(f"{BASE}/T1/telemetry", done) in ACCEPTED
        watcher.wait_for(f"{BASE}/T1/telemetry", done)
        topics = {t for t, _p in watcher.seen()}
        assert topics.isdisjoint(forbidden), topics & set(forbidden)
        assert {f"{BASE}/T1/crossing", f"{BASE}/T1/device/scale/status"} <= topics
    finally:
        lane.close()


def test_a_lane_reads_its_commands_and_its_neighbours_only(broker: Broker) -> None:
    t1 = Peer(broker, lane_identity(CP, "T1"))
    t2 = Peer(broker, lane_identity(CP, "T2"))
    t3 = Peer(broker, lane_identity(CP, "T3"))
    operator = Peer(broker, "operator-KZ-TEST-duty")
    try:
        t1.subscribe(f"{BASE}/T1/cmd/+")
        t1.subscribe(f"{BASE}/T2/crossing")
        t1.subscribe(f"{BASE}/T3/crossing")  # not its neighbour
        t1.subscribe(f"{BASE}/T2/cmd/+")  # another lane's commands
        assert t2.publish(f"{BASE}/T2/crossing", b"from T2") in ACCEPTED
        assert t3.publish(f"{BASE}/T3/crossing", b"from T3") in ACCEPTED
        assert operator.publish(f"{BASE}/T2/cmd/ping", b"for T2") in ACCEPTED
        done = marker()
        assert operator.publish(f"{BASE}/T1/cmd/ping", done) in ACCEPTED
        t1.wait_for(f"{BASE}/T1/cmd/ping", done)
        t1.wait_for(f"{BASE}/T2/crossing", b"from T2")
        seen = t1.seen()
        assert (f"{BASE}/T3/crossing", b"from T3") not in seen
        assert (f"{BASE}/T2/cmd/ping", b"for T2") not in seen
    finally:
        for peer in (t1, t2, t3, operator):
            peer.close()


def test_no_client_but_the_operator_sends_commands_or_crossings(
    broker: Broker, watcher: Peer, tmp_path: Path
) -> None:
    # Without a certificate, or with one of another CA under the lane's very name: no TLS.
    assert tls_refused(broker, None)
    wait_until(
        lambda: "peer did not return a certificate" in broker.log.read_text(errors="replace"),
        30,
        "the broker's reason for refusing a client without a certificate",
    )
    rogue = tmp_path / "rogue"
    issue_site(parse_site(SITE), rogue)  # a second CA, the same names
    forged = (rogue / "clients/lane-KZ-TEST-T1.pem", rogue / "clients/lane-KZ-TEST-T1.key")
    assert tls_refused(broker, forged)
    wait_until(
        lambda: "certificate verify failed" in broker.log.read_text(errors="replace"),
        30,
        "the broker's reason for refusing another CA's certificate",
    )
    assert tls_refused(broker, broker.cert("lane-KZ-TEST-T1")) == ""  # the real one gets in
    # Plain MQTT on the TLS port: no CONNACK.
    with socket.create_connection(("127.0.0.1", broker.port), timeout=30) as plain:
        plain.sendall(bytes.fromhex("100f00044d5154540402003c0003616263"))
        with contextlib.suppress(OSError):  # closed, or reset: either way no CONNACK
            assert plain.recv(16)[:1] != b"\x20"
    # A consumer certificate that claims to be the lane in its CONNECT, and another lane.
    consumer = Peer(broker, "consumer-KZ-TEST-central", username=lane_identity(CP, "T1"))
    other_lane = Peer(broker, lane_identity(CP, "T2"))
    try:
        attempts = [
            (consumer, f"{BASE}/T1/cmd/replay"),
            (consumer, f"{BASE}/T1/crossing"),
            (other_lane, f"{BASE}/T1/cmd/replay"),
            (other_lane, f"{BASE}/T1/crossing"),
        ]
        for peer, topic in attempts:
            assert peer.publish(topic, b"injected") == NOT_AUTHORISED, topic
        done = marker()
        assert other_lane.publish(f"{BASE}/T2/telemetry", done) in ACCEPTED
        watcher.wait_for(f"{BASE}/T2/telemetry", done)
        assert b"injected" not in {p for _t, p in watcher.seen()}
    finally:
        consumer.close()
        other_lane.close()


def test_a_forged_retained_stopped_status_is_refused(broker: Broker) -> None:
    lane = Peer(broker, lane_identity(CP, "T3"))
    consumer = Peer(broker, "consumer-KZ-TEST-central")
    operator = Peer(broker, "operator-KZ-TEST-duty")
    topic = f"{BASE}/T3/status"
    online = json.dumps({"state": "online", "n": str(uuid.uuid4())}).encode()
    stopped = json.dumps({"state": "stopped"}).encode()
    try:
        assert lane.publish(topic, online, retain=True) in ACCEPTED
        assert consumer.publish(topic, stopped, retain=True) == NOT_AUTHORISED
        assert operator.publish(topic, stopped, retain=True) == NOT_AUTHORISED
        fresh = Peer(broker, "consumer-KZ-TEST-central")
        try:
            fresh.subscribe(topic)  # the retained message comes with the subscription
            fresh.wait_for(topic, online)
            assert stopped not in {p for _t, p in fresh.seen()}
        finally:
            fresh.close()
    finally:
        lane.publish(topic, b"", retain=True)  # clear it
        for peer in (lane, consumer, operator):
            peer.close()


# --- the real agent -------------------------------------------------------------------------


def lane_config(broker: Broker, tmp_path: Path, lane: str, extra: str = "") -> Path:
    """The lane's config with mutual TLS; its key handed over as a systemd credential."""
    name = lane_identity(CP, lane)
    cert, key = broker.cert(name)
    credentials = tmp_path / "credentials"
    credentials.mkdir(exist_ok=True)
    (credentials / "mqtt-client.key").write_bytes(key.read_bytes())
    (credentials / "mqtt-client.key").chmod(0o600)
    config = tmp_path / f"{lane}.yaml"
    tls = (
        f"  tls:\n    ca_file: {broker.pki / 'ca.pem'}\n    cert_file: {cert}\n"
        "    key: {credential: mqtt-client.key}\n"
    )
    config.write_text(
        lane_yaml(tmp_path / f"state-{lane}", broker.port, lane=lane, mqtt_extra=tls, extra=extra)
    )
    return config


def test_lane_run_publishes_with_its_certificate_and_replies_stay_in_its_topics(
    broker: Broker, watcher: Peer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(tmp_path / "credentials"))
    config = lane_config(
        broker,
        tmp_path,
        "T1",
        "fusion:\n  neighbour_lanes: [T2]\nscripted:\n  vehicles: 2\n  interval_ms: 0\n",
    )
    with Agent(config) as agent:
        wait_until(
            lambda: sum(t == f"{BASE}/T1/crossing" for t, _p in watcher.seen()) >= 4,
            60,
            "the lane's crossings over mutual TLS:\n" + agent.output()[-3000:],
        )
        # A command whose reply is steered into another lane's topics, then a plain one.
        steered = Properties(PacketTypes.PUBLISH)
        steered.ResponseTopic = f"{BASE}/T2/cmd/ping/reply"
        steered.CorrelationData = b"steered"
        assert watcher.publish(f"{BASE}/T1/cmd/ping", b"{}", properties=steered) in ACCEPTED
        plain = Properties(PacketTypes.PUBLISH)
        plain.CorrelationData = b"plain"
        assert watcher.publish(f"{BASE}/T1/cmd/ping", b"{}", properties=plain) in ACCEPTED
        wait_until(
            lambda: any(
                m.topic == f"{BASE}/T1/cmd/ping/reply"
                and getattr(m.properties, "CorrelationData", None) == b"plain"
                for m in list(watcher.messages)
            ),
            60,
            "the reply on the lane's own reply topic:\n" + agent.output()[-3000:],
        )
        assert not [t for t, _p in watcher.seen() if t.startswith(f"{BASE}/T2/")]
        status = [p for t, p in watcher.seen() if t == f"{BASE}/T1/status"]
        assert status and json.loads(status[-1])["state"] == "online"
        assert agent.stop() == 0, agent.output()[-8000:]
    log = broker.log.read_text(errors="replace")
    assert "lane-KZ-TEST-T1" in log


def test_a_lane_config_takes_its_key_as_a_credential_only(tmp_path: Path) -> None:
    from edge.config import parse_config

    base = lane_yaml(tmp_path, 1883)
    with pytest.raises(ConfigError, match="read from a file"):
        parse_config(
            base.replace(
                "storage:",
                "  tls: {ca_file: /ca.pem, cert_file: /c.pem, key: {env: KEY}}\nstorage:",
            )
        )
    with pytest.raises(ConfigError, match="only the site CA"):
        parse_config(
            base.replace("storage:", "  tls: {cert_file: /c.pem, key_file: /k.pem}\nstorage:")
        )
    with pytest.raises(ConfigError) as missing:
        parse_config(
            base.replace(
                "storage:",
                f"  tls: {{ca_file: /ca.pem, cert_file: /c.pem, key: {{file: {tmp_path}/none}}}}"
                "\nstorage:",
            )
        )
    assert "mqtt.tls.key" in str(missing.value) and "does not exist" in str(missing.value)


# --- rotation and revocation ----------------------------------------------------------------


def test_rotation_keeps_what_fits_and_revokes_what_it_replaced(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    site = parse_site(SITE)
    first = issue_site(site, pki)
    assert first.created_ca and len(first.issued) == 6  # broker, three lanes, two people
    old_lane = (pki / "clients/lane-KZ-TEST-T1.pem").read_bytes()
    old_copy = tmp_path / "old"
    old_copy.mkdir()
    for suffix in (".pem", ".key"):
        (old_copy / f"t1{suffix}").write_bytes(
            (pki / f"clients/lane-KZ-TEST-T1{suffix}").read_bytes()
        )
    again = issue_site(site, pki)
    assert not again.created_ca and not again.issued and len(again.kept) == 6
    assert (pki / "clients/lane-KZ-TEST-T1.pem").read_bytes() == old_lane

    smaller = SiteConfig.model_validate({**site.model_dump(mode="json"), "consumers": []})
    renewed = issue_site(smaller, pki, renew=True)
    assert len(renewed.issued) == 5 and renewed.revoked == ["consumer-KZ-TEST-central"]
    assert not (pki / "clients/consumer-KZ-TEST-central.key").exists()
    assert "consumer-KZ-TEST-central" not in (pki / "acl").read_text()
    assert (pki / "clients/lane-KZ-TEST-T1.key").stat().st_mode & 0o077 == 0

    broker = start_broker(pki, tmp_path / "broker")
    try:
        assert tls_refused(broker, broker.cert("lane-KZ-TEST-T1")) == ""
        refused = tls_refused(broker, (old_copy / "t1.pem", old_copy / "t1.key"))
        assert refused, "the replaced certificate still gets in"
    finally:
        stop_broker(broker)
    # Refused only for the CRL: the old certificate is still this CA's and not expired.
    old = x509.load_pem_x509_certificate((old_copy / "t1.pem").read_bytes())
    ca = x509.load_pem_x509_certificate((pki / "ca.pem").read_bytes())
    old.verify_directly_issued_by(ca)
    assert old.not_valid_after_utc > dt.datetime.now(dt.UTC)
    crl = x509.load_pem_x509_crl((pki / "crl.pem").read_bytes())
    assert crl.is_signature_valid(ca.public_key())  # type: ignore[arg-type]
    assert crl.get_revoked_certificate_by_serial_number(old.serial_number) is not None
    assert "certificate verify failed" in broker.log.read_text(errors="replace")


def test_the_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from edge.cli import main

    site = tmp_path / "site.yaml"
    site.write_text(SITE)
    assert main(["broker", "certs", "--site", str(site), "--out", str(tmp_path / "pki")]) == 0
    out = capsys.readouterr().out
    assert "CA            created" in out and "lane-KZ-TEST-T3" in out
    assert (tmp_path / "pki/ca.key").stat().st_mode & 0o077 == 0
    assert (tmp_path / "pki/mosquitto.conf").read_text() == render_mosquitto_conf(tmp_path / "pki")
    site.write_text("checkpoint: X\nlanes: []\n")
    assert main(["broker", "certs", "--site", str(site), "--out", str(tmp_path / "pki")]) == 2
    assert "site.yaml:2:1: lanes:" in capsys.readouterr().err
