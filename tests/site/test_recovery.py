"""The register recovers what the hops lose: a real lane agent repairs a gap by cmd/replay,
and a PostgreSQL restart under a stream of events loses nothing."""

from __future__ import annotations

from pathlib import Path

from edge.devtools.localbroker import LocalBroker, free_port
from edge.devtools.localdb import LocalPostgres
from tests.conftest import lane_yaml
from tests.integration.support import Agent, wait_until
from tests.site.support import IngestProcess, PlayedLane, crossing_event, ingest_yaml, query, scalar


def contiguous(dsn: str) -> tuple[int, int, int]:
    """(events, distinct lane_seq, highest lane_seq) of lane T1."""
    row = query(
        dsn,
        "SELECT count(*), count(DISTINCT lane_seq), COALESCE(max(lane_seq), 0) FROM events"
        " WHERE lane = 'T1'",
    )
    return row[0] if row else (0, 0, 0)


def test_gap_after_a_broker_crash_is_repaired_by_replay_from_the_lane_agent(
    tmp_path: Path, dsn: str
) -> None:
    port = free_port()
    # Not persistent: a SIGKILL loses every message queued for the register's session.
    broker = LocalBroker(port=port, workdir=tmp_path / "broker").start()
    lane_config = tmp_path / "lane.yaml"
    lane_config.write_text(
        lane_yaml(
            tmp_path / "state",
            port,
            extra="scripted:\n  vehicles: 80\n  interval_ms: 400\n",  # 160 events, ~32 s
        )
    )
    config = tmp_path / "ingest.yaml"
    config.write_text(
        ingest_yaml(
            port=port,
            dsn=dsn,
            evidence_dir=tmp_path / "evidence",
            extra="replay:\n  grace_s: 0.5\n  min_interval_s: 1\n  max_interval_s: 4\n",
        )
    )
    ingest = IngestProcess(config).start()
    agent = Agent(lane_config)
    try:
        ingest.wait_subscribed()
        agent.start()
        wait_until(lambda: contiguous(dsn)[2] >= 10, 60, "first events in the register")
        ingest.kill()  # away: the broker queues the lane's events for its session ...
        seen = contiguous(dsn)[2]
        seq_now = lambda: int(scalar(dsn, "SELECT last_lane_seq FROM lanes") or 0)  # noqa: E731
        assert seq_now() == seen
        # ... wait until the lane produced (and the broker took) at least 10 more, then
        # lose them: the broker dies before it hands them on.
        from tests.integration.test_delivery import stats

        wait_until(lambda: stats(lane_config).last_lane_seq >= seen + 10, 60, "10 more events")
        broker.kill()
        broker.start()
        ingest = IngestProcess(config).start()
        wait_until(lambda: (scalar(dsn, "SELECT count(*) FROM gaps") or 0) >= 1, 60, "a gap")
        wait_until(lambda: stats(lane_config).last_lane_seq == 160, 90, "the lane finished")
        wait_until(lambda: contiguous(dsn)[1] == 160, 90, "every lane_seq in the register")
        wait_until(
            lambda: scalar(dsn, "SELECT count(*) FROM gaps WHERE state = 'open'") == 0,
            30,
            "gaps closed",
        )
        events, distinct, last = contiguous(dsn)
        assert (events, distinct, last) == (160, 160, 160)
        gaps = query(dsn, "SELECT state, requests, from_seq, to_seq FROM gaps")
        assert gaps and all(state == "repaired" for state, *_ in gaps), gaps
        assert all(requests >= 1 for _s, requests, *_ in gaps), gaps  # asked, not luck
        assert scalar(dsn, "SELECT count(*) FROM losses") == 0
        assert scalar(dsn, "SELECT count(*) FROM crossings WHERE ended") == 80
        assert "replay of lane_seq" in agent.output()
        assert agent.stop() == 0, agent.output()[-4000:]
        assert ingest.stop() == 0, ingest.output()[-4000:]
    finally:
        for process in (agent, ingest):
            process.__exit__()
        broker.stop()


def test_postgresql_restart_under_a_stream_loses_nothing(tmp_path: Path) -> None:
    broker = LocalBroker(workdir=tmp_path / "broker").start()
    database = LocalPostgres().start()  # its own cluster: this test stops it
    config = tmp_path / "ingest.yaml"
    config.write_text(
        ingest_yaml(port=broker.port, dsn=database.dsn, evidence_dir=tmp_path / "evidence")
    )
    lane = PlayedLane(broker.port)
    try:
        with IngestProcess(config) as ingest:
            dsn = database.dsn
            ingest.wait_subscribed()
            for seq in range(1, 101):
                lane.publish("crossing", crossing_event(seq))
            wait_until(lambda: contiguous(dsn)[0] == 100, 60, "first 100 stored")
            database.stop("immediate")  # a crash: recovery from WAL at the next start
            for seq in range(101, 301):
                lane.publish("crossing", crossing_event(seq))
            wait_until(
                lambda: "PostgreSQL unavailable" in ingest.output(), 60, "the ingest noticed"
            )
            database.start()
            wait_until(lambda: contiguous(dsn)[0] == 300, 90, "all 300 stored")
            assert contiguous(dsn) == (300, 300, 300)
            assert scalar(dsn, "SELECT count(*) FROM gaps") == 0  # nothing acked and lost
            assert "storing again after" in ingest.output()
            # The database down again, and the ingest killed while it holds messages it could
            # not store: had it acknowledged any before the commit, the broker would not send
            # them again and they would be missing now.
            database.stop("immediate")
            for seq in range(301, 401):
                lane.publish("crossing", crossing_event(seq))
            wait_until(
                lambda: ingest.output().count("PostgreSQL unavailable") >= 2, 60, "noticed again"
            )
            ingest.kill()
            database.start()
            with IngestProcess(config) as again:
                wait_until(lambda: contiguous(dsn)[0] == 400, 90, "all 400 stored")
                assert again.stop() == 0, again.output()[-4000:]
            assert contiguous(dsn) == (400, 400, 400)
            assert scalar(dsn, "SELECT count(*) FROM gaps") == 0
    finally:
        lane.close()
        broker.stop()
        database.destroy()
