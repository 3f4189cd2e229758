"""`lane ingest forward`: committed events into a real 3-node NATS JetStream cluster, each
once, through a lost node and a batch sent again."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nats
import pytest

from edge.devtools.localbroker import LocalBroker
from edge.devtools.localnats import LocalNatsCluster, find_nats_server
from tests.integration.support import ROOT, wait_until
from tests.site.support import (
    IngestProcess,
    PlayedLane,
    crossing_event,
    execute,
    ingest_yaml,
    query,
    scalar,
)


class ForwardProcess(IngestProcess):
    """`lane ingest forward --config F` as a real process."""

    def start(self) -> ForwardProcess:
        import os

        self._log_file = self.log.open("wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "edge", "ingest", "forward", "--config", str(self.config)],
            cwd=ROOT,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        return self


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[LocalNatsCluster]:
    if find_nats_server() is None:
        pytest.fail("nats-server is not installed; `make system-deps` installs it")
    with LocalNatsCluster(3, workdir=tmp_path / "nats") as c:
        yield c


def stream(urls: list[str]) -> dict[str, Any]:
    """The stream as the national tier sees it: every message's subject, id and body."""

    async def read() -> dict[str, Any]:
        nc = await nats.connect(servers=urls, connect_timeout=5, max_reconnect_attempts=3)
        try:
            js = nc.jetstream(timeout=5)
            try:
                info = await js.stream_info("CROSSINGS")
            except Exception:  # not created yet, or no leader for the moment
                return {"messages": 0, "leader": None, "items": []}
            items = []
            for seq in range(info.state.first_seq, info.state.last_seq + 1):
                msg = await js.get_msg("CROSSINGS", seq)
                items.append(
                    (msg.subject, (msg.headers or {}).get("Nats-Msg-Id"), json.loads(msg.data))
                )
            return {
                "messages": info.state.messages,
                "leader": info.cluster.leader if info.cluster else None,
                "replicas": len(info.cluster.replicas or []) + 1 if info.cluster else 1,
                "items": items,
            }
        finally:
            await nc.close()

    try:
        return asyncio.run(read())
    except Exception:  # a node is being elected: the caller waits and asks again
        return {"messages": -1, "leader": None, "items": []}


def test_every_committed_event_reaches_jetstream_once_through_a_lost_node(
    tmp_path: Path, broker: LocalBroker, dsn: str, cluster: LocalNatsCluster
) -> None:
    urls = cluster.urls
    config = tmp_path / "ingest.yaml"
    config.write_text(
        ingest_yaml(
            port=broker.port,
            dsn=dsn,
            evidence_dir=tmp_path / "evidence",
            extra="forward:\n"
            f"  servers: [{', '.join(urls)}]\n"
            "  replicas: 3\n"
            "  batch: 16\n"
            "  ack_timeout_s: 2\n",
        )
    )
    lane = PlayedLane(broker.port)
    with IngestProcess(config) as ingest, ForwardProcess(config) as forward:
        ingest.wait_subscribed()
        for seq in range(1, 101):
            lane.publish("crossing", crossing_event(seq))
        lane.publish("crossing", b"{not json")  # quarantined: never forwarded
        wait_until(lambda: stream(urls)["messages"] == 100, 90, "100 events in JetStream")
        first = stream(urls)
        assert first["replicas"] == 3
        leader = first["leader"]
        assert leader is not None

        cluster.nodes[int(leader.removeprefix("n"))].kill()  # the stream's leader is gone
        for seq in range(101, 201):
            lane.publish("crossing", crossing_event(seq))
        wait_until(lambda: stream(urls)["messages"] == 200, 120, "200 events in JetStream")

        # Sent again from the start (a cursor lost, a forwarder restored from backup):
        # JetStream recognises every Nats-Msg-Id and stores nothing twice.
        execute(dsn, "UPDATE forward_cursor SET commit_seq = 0")
        wait_until(
            lambda: scalar(dsn, "SELECT duplicates FROM forward_cursor") == 200, 120, "resent"
        )
        after = stream(urls)
        assert after["messages"] == 200
        ids = [msg_id for _s, msg_id, _b in after["items"]]
        stored = {r[0] for r in query(dsn, "SELECT event_id FROM events")}
        assert len(ids) == len(set(ids)) == 200 and set(ids) == stored
        assert {subject for subject, _i, _b in after["items"]} == {"crossings.KZ-TEST.T1"}
        assert sorted(body["lane_seq"] for _s, _i, body in after["items"]) == list(range(1, 201))
        assert all(body["event_id"] == msg_id for _s, msg_id, body in after["items"])

        done = subprocess.run(
            [sys.executable, "-m", "edge", "ingest", "status", "--config", str(config), "--json"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=60,
        )
        (target,) = json.loads(done.stdout)["forward"]
        assert (target["target"], target["forwarded"], target["behind"]) == (
            "jetstream:CROSSINGS",
            200,
            0,
        )
        assert forward.stop() == 0, forward.output()[-4000:]
        assert ingest.stop() == 0, ingest.output()[-4000:]
    lane.close()
