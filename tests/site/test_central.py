"""`lane ingest` at the centre: a JetStream durable pull consumer feeds the same register.

The whole chain, every part real: played lanes -> Mosquitto -> the site's `lane ingest` ->
PostgreSQL -> `lane ingest forward` -> a 3-node JetStream cluster -> the national
`lane ingest` (config ``jetstream:``) -> its own PostgreSQL database. Through the national
ingest's SIGKILL and the loss of the stream's leader node, the national register ends with
exactly the site's events and crossings; bad messages on the stream are quarantined there.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from pathlib import Path

import nats
import psycopg

from edge.devtools.localbroker import LocalBroker
from edge.devtools.localdb import LocalPostgres
from edge.devtools.localnats import LocalNatsCluster
from tests.integration.support import wait_until
from tests.site.support import (
    CHECKPOINT,
    IngestProcess,
    PlayedLane,
    crossing_event,
    ingest_yaml,
    query,
    scalar,
)
from tests.site.test_forward import ForwardProcess, cluster, stream  # noqa: F401 (fixture)


def central_yaml(urls: list[str], dsn: str, evidence: Path) -> str:
    return (
        "jetstream:\n"
        f"  servers: [{', '.join(urls)}]\n"
        "  durable: register-test\n"
        "  batch: 32\n"
        "  ack_wait_s: 10\n"
        "  request_timeout_s: 2\n"
        "checkpoints:\n"
        f"  - id: {CHECKPOINT}\n"
        "    lanes: [T1, T2]\n"
        "database:\n"
        f"  dsn: '{dsn}'\n"
        "  reconnect_min_s: 0.1\n"
        "  reconnect_max_s: 0.5\n"
        f"evidence:\n  dir: {evidence}\n"
    )


def publish_raw(urls: list[str], subject: str, payload: bytes) -> None:
    """Straight onto the stream, as a faulty or hostile forwarder would."""

    async def send() -> None:
        nc = await nats.connect(servers=urls, connect_timeout=5)
        try:
            await nc.jetstream(timeout=10).publish(
                subject, payload, headers={"Nats-Msg-Id": uuid.uuid4().hex}
            )
        finally:
            await nc.close()

    asyncio.run(send())


def test_the_national_register_holds_every_site_event_once_through_faults(
    tmp_path: Path,
    broker: LocalBroker,
    dsn: str,
    pg_cluster: LocalPostgres,
    cluster: LocalNatsCluster,  # noqa: F811
) -> None:
    urls = cluster.urls
    national = f"national_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_cluster.dsn, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{national}"'.encode())  # type: ignore[call-overload]
    national_dsn = pg_cluster.dsn.replace("dbname=postgres", f"dbname={national}")
    site_config = tmp_path / "ingest.yaml"
    site_config.write_text(
        ingest_yaml(
            port=broker.port,
            dsn=dsn,
            evidence_dir=tmp_path / "evidence",
            lanes=("T1", "T2"),
            extra=f"forward:\n  servers: [{', '.join(urls)}]\n  batch: 16\n  ack_timeout_s: 2\n",
        )
    )
    centre_config = tmp_path / "national.yaml"
    centre_config.write_text(central_yaml(urls, national_dsn, tmp_path / "national-evidence"))
    lanes = {name: PlayedLane(broker.port, lane=name) for name in ("T1", "T2")}

    def play(first: int, last: int) -> None:
        for seq in range(first, last + 1):
            for name, lane in lanes.items():
                crossing = str(uuid.uuid4())
                lane.publish(
                    "crossing", crossing_event(seq * 2 - 1, crossing_id=crossing, lane=name)
                )
                end = crossing_event(
                    seq * 2, kind="end", crossing_id=crossing, lane=name, gross_kg=20000.0
                )
                lane.publish("crossing", end)

    def national_events() -> int:
        return int(scalar(national_dsn, "SELECT count(*) FROM events") or 0)

    with IngestProcess(site_config) as site, ForwardProcess(site_config):
        site.wait_subscribed()
        play(1, 30)  # 120 events
        centre = IngestProcess(centre_config).start()
        wait_until(lambda: national_events() == 120, 120, "120 events at the centre")
        assert "consuming JetStream stream CROSSINGS as durable register-test" in centre.output()

        centre.kill()  # unacknowledged messages are delivered again to the restarted one
        leader = stream(urls)["leader"]
        assert leader is not None
        cluster.nodes[int(leader.removeprefix("n"))].kill()
        play(31, 60)  # 120 more while the centre is down and a node is gone
        wait_until(lambda: stream(urls)["messages"] == 240, 120, "240 events in JetStream")
        publish_raw(urls, f"crossings.{CHECKPOINT}.T1", b"{not json")
        wrong_lane = crossing_event(999, lane="T2")
        publish_raw(urls, f"crossings.{CHECKPOINT}.T1", json.dumps(wrong_lane).encode())
        centre = IngestProcess(centre_config).start()
        wait_until(lambda: national_events() == 240, 180, "240 events at the centre")
        wait_until(
            lambda: scalar(national_dsn, "SELECT count(*) FROM quarantine") == 2, 60, "quarantined"
        )
        assert centre.stop() == 0, centre.output()[-4000:]

    site_events = {r[0] for r in query(dsn, "SELECT event_id FROM events")}
    national_rows = {r[0] for r in query(national_dsn, "SELECT event_id FROM events")}
    assert national_rows == site_events and len(site_events) == 240
    crossings = "SELECT crossing_id, ended, gross_kg FROM crossings ORDER BY crossing_id"
    assert query(national_dsn, crossings) == query(dsn, crossings)
    assert len(query(national_dsn, crossings)) == 120
    assert query(national_dsn, "SELECT lane, last_lane_seq FROM lanes ORDER BY lane") == [
        ("T1", 120),
        ("T2", 120),
    ]
    assert scalar(national_dsn, "SELECT count(*) FROM gaps WHERE state = 'open'") == 0
    reasons = sorted(r[0] for r in query(national_dsn, "SELECT reason_code FROM quarantine"))
    assert reasons == ["not_json", "topic_mismatch"]
    for lane in lanes.values():
        lane.close()
