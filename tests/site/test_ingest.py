"""`lane ingest` end to end: real Mosquitto, real PostgreSQL, the ingest as a real process.

The lane is played by the test (events published straight to the broker) where the test needs
to make a fault the real agent never makes: duplicates, malformed events, a lane_seq reset.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

from edge.devtools.localbroker import LocalBroker
from tests.integration.support import ROOT, wait_until
from tests.site.support import (
    IngestProcess,
    PlayedLane,
    crossing_event,
    ingest_yaml,
    lane_status,
    query,
    scalar,
)


def write_config(tmp_path: Path, port: int, dsn: str, extra: str = "") -> Path:
    path = tmp_path / "ingest.yaml"
    path.write_text(
        ingest_yaml(port=port, dsn=dsn, evidence_dir=tmp_path / "evidence", extra=extra)
    )
    return path


def events(dsn: str) -> int:
    return int(scalar(dsn, "SELECT count(*) FROM events") or 0)


def lane_cli(*args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-m", "edge", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_duplicates_are_no_ops_and_a_conflicting_event_id_is_flagged(
    tmp_path: Path, broker: LocalBroker, dsn: str
) -> None:
    config = write_config(tmp_path, broker.port, dsn)
    lane = PlayedLane(broker.port)
    with IngestProcess(config) as ingest:
        ingest.wait_subscribed()
        crossing = "c-0001"
        first = crossing_event(1, crossing_id=crossing, gross_kg=18_250.0)
        end = crossing_event(
            2, kind="end", crossing_id=crossing, gross_kg=18_300.0, alarms=["radiation.gamma"]
        )
        lane.publish("crossing", first)
        lane.publish("crossing", first)  # the same event again
        lane.publish("crossing", {**first, "historical": True})  # re-sent as backlog
        lane.publish("crossing", end)
        conflicting = {**end, "lane_seq": 3, "weight": {**end["weight"], "gross_kg": 1.0}}
        lane.publish("crossing", conflicting)  # same event_id, other content
        lane.publish("crossing", crossing_event(3))  # after all that, the stream still flows
        wait_until(lambda: events(dsn) == 3, 30, "3 distinct events stored")
        wait_until(
            lambda: scalar(dsn, "SELECT count(*) FROM quarantine") == 1, 30, "conflict flagged"
        )
        assert query(dsn, "SELECT reason_code, event_id FROM quarantine") == [
            ("event_id_conflict", end["event_id"])
        ]
        # The first content stays; the crossing row shows its `end`.
        assert (
            scalar(
                dsn,
                "SELECT body->'weight'->>'gross_kg' FROM events WHERE event_id = %s",
                (end["event_id"],),
            )
            == "18300.0"
        )
        assert query(
            dsn,
            "SELECT ended, gross_kg, alarms, event_id FROM crossings WHERE crossing_id = %s",
            (crossing,),
        ) == [(True, 18_300.0, ["radiation.gamma"], end["event_id"])]
        assert scalar(dsn, "SELECT count(*) FROM gaps") == 0
        assert ingest.stop() == 0, ingest.output()[-4000:]
    lane.close()


def test_malformed_and_oversized_events_are_quarantined_and_never_block(
    tmp_path: Path, broker: LocalBroker, dsn: str
) -> None:
    config = write_config(tmp_path, broker.port, dsn, "limits:\n  max_event_bytes: 4096\n")
    lane = PlayedLane(broker.port)
    with IngestProcess(config) as ingest:
        ingest.wait_subscribed()
        lane.publish("crossing", b"\xff{not json")
        lane.publish("crossing", {**crossing_event(1), "padding": "x" * 5000})
        no_seq = crossing_event(1)
        del no_seq["lane_seq"]
        lane.publish("crossing", no_seq)
        lane.publish("crossing", {**crossing_event(1), "schema": "lane.crossing/3"})
        lane.publish("crossing", crossing_event(1, lane="T2"))  # on T1's topic
        lane.publish("crossing", {**crossing_event(1), "note": "a\u0000b"})  # jsonb refuses NUL
        lane.publish("crossing", b"[1, 2, 3]")  # JSON, not an object
        future = {**crossing_event(1), "future_field": {"added": "later"}}
        lane.publish("crossing", future)  # unknown fields are kept, not refused
        lane.publish("crossing", crossing_event(2))
        lane.publish("status", lane_status(), retain=True)
        wait_until(lambda: events(dsn) == 2, 30, "the two good events stored")
        wait_until(lambda: scalar(dsn, "SELECT count(*) FROM quarantine") == 7, 30, "7 quarantined")
        codes = sorted(r[0] for r in query(dsn, "SELECT reason_code FROM quarantine"))
        assert codes == [
            "invalid",
            "invalid",
            "not_json",
            "oversized",
            "topic_mismatch",
            "unstorable",
            "wrong_schema",
        ]
        # Kept to look at: size and hash of the whole message, its first bytes.
        garbage = b"\xff{not json"
        size, sha, payload = query(
            dsn, "SELECT size, sha256, payload FROM quarantine WHERE reason_code = 'not_json'"
        )[0]
        assert (size, sha, bytes(payload)) == (
            len(garbage),
            hashlib.sha256(garbage).hexdigest(),
            garbage,
        )
        assert (
            scalar(
                dsn,
                "SELECT body->'future_field'->>'added' FROM events WHERE event_id = %s",
                (future["event_id"],),
            )
            == "later"
        )
        wait_until(
            lambda: scalar(dsn, "SELECT state FROM lane_status") == "online", 30, "lane status"
        )
        status = json.loads(lane_cli("ingest", "status", "--config", str(config), "--json"))
        (row,) = status["lanes"]
        assert (row["quarantined"], row["last_lane_seq"], row["status"]) == (7, 2, "online")
        assert ingest.stop() == 0, ingest.output()[-4000:]
    lane.close()


def test_gap_asked_for_again_with_backoff_and_not_kept_recorded_as_loss(
    tmp_path: Path, broker: LocalBroker, dsn: str
) -> None:
    config = write_config(
        tmp_path,
        broker.port,
        dsn,
        "replay:\n  grace_s: 0.2\n  min_interval_s: 0.5\n  max_interval_s: 2\n",
    )
    lane = PlayedLane(broker.port)
    with IngestProcess(config) as ingest:
        ingest.wait_subscribed()
        for seq in (1, 2, 5, 6):
            lane.publish("crossing", crossing_event(seq))
        wait_until(lambda: events(dsn) == 4, 30, "4 events")
        assert query(dsn, "SELECT from_seq, to_seq, state, missing FROM gaps") == [
            (3, 4, "open", 2)
        ]
        # Not answered: the register asks again, later.
        wait_until(lambda: len(lane.replay_requests()) >= 2, 30, "the request repeated")
        (body, props), _again = lane.replay_requests()[:2]
        assert body == {"from_seq": 3, "to_seq": 4}
        assert props is not None
        assert props.ResponseTopic == "border/KZ-TEST/T1/cmd/replay/reply"  # the lane's own
        assert props.CorrelationData
        # Someone else's reply on the same topic changes nothing.
        lane.publish("cmd/replay/reply", b'{"command": "replay", "ok": true}')
        # The lane answers: 3 no longer kept, 4 sent again (and it arrives).
        lane.reply(
            props,
            {
                "schema": "lane.command-reply/1",
                "command": "replay",
                "ok": True,
                "result": {"queued": 1, "pending": 0, "not_kept": [[3, 3]]},
                "produced": "2026-12-02T03:00:00.000Z",
            },
        )
        lane.publish("crossing", {**crossing_event(4), "historical": True})
        wait_until(lambda: scalar(dsn, "SELECT state FROM gaps") == "partly_lost", 30, "gap closed")
        assert query(dsn, "SELECT from_seq, to_seq, count FROM losses") == [(3, 3, 1)]
        asked = len(lane.replay_requests())

        # The lane goes back to lane_seq 2 without a new boot_seq: flagged, a new epoch.
        lane.publish("crossing", crossing_event(2))
        lane.publish("crossing", crossing_event(3))
        wait_until(lambda: events(dsn) == 7, 30, "7 events")
        assert query(dsn, "SELECT kind, detail->>'last_lane_seq' FROM lane_flags") == [
            ("lane_seq_reset", "6")
        ]
        assert query(dsn, "SELECT epoch, last_lane_seq FROM lanes") == [(2, 3)]
        status = json.loads(lane_cli("ingest", "status", "--config", str(config), "--json"))
        (row,) = status["lanes"]
        assert (row["gaps_opened"], row["open_gaps"], row["lost"], row["flags"]) == (1, 0, 1, 1)
        assert len(lane.replay_requests()) == asked  # a closed gap is not asked for
        assert ingest.stop() == 0, ingest.output()[-4000:]
    lane.close()


def test_evidence_is_content_addressed_and_checked_against_the_end_event(
    tmp_path: Path, broker: LocalBroker, dsn: str
) -> None:
    config = write_config(tmp_path, broker.port, dsn)
    lane = PlayedLane(broker.port)
    frame, crop = b"\xff\xd8frame-jpeg\xff\xd9", b"\xff\xd8crop-jpeg\xff\xd9"
    refs = [
        {"kind": "frame", "file": "front-frame.jpg", "sha256": hashlib.sha256(frame).hexdigest()},
        {
            "kind": "plate_crop",
            "file": "front-plate.jpg",
            "sha256": hashlib.sha256(crop).hexdigest(),
        },
    ]
    overview = {"kind": "overview", "file": "overview-scene.jpg", "sha256": "ab" * 32}
    with IngestProcess(config) as ingest:
        ingest.wait_subscribed()
        lane.publish("crossing", crossing_event(1, crossing_id="c-ev", plate="01 A 123 BC"))
        lane.publish(
            "crossing",
            crossing_event(
                2,
                kind="end",
                crossing_id="c-ev",
                plate="01 A 123 BC",
                gross_kg=38_120.0,
                alarms=["thermal.hot_brakes"],
                evidence=refs,
                overview=[overview],
            ),
        )
        lane.publish("evidence/c-ev/front-frame.jpg", frame)
        lane.publish("evidence/c-ev/front-plate.jpg", b"not the crop")
        wait_until(
            lambda: (
                scalar(dsn, "SELECT count(*) FROM evidence WHERE received_sha256 IS NOT NULL") == 2
            ),
            30,
            "two evidence files",
        )
        states = dict(query(dsn, "SELECT file, state FROM evidence"))
        assert states == {
            "front-frame.jpg": "verified",
            "front-plate.jpg": "mismatch",
            "overview-scene.jpg": "missing",  # named by the end event, never arrived
        }
        stored = tmp_path / "evidence" / refs[0]["sha256"][:2] / refs[0]["sha256"]
        assert stored.read_bytes() == frame

        rows = [
            json.loads(line)
            for line in lane_cli(
                "ingest", "query", "--config", str(config), "--plate", "01A123BC", "--json"
            ).splitlines()
        ]
        assert len(rows) == 1
        row = rows[0]
        assert (row["lane"], row["plates"], row["gross_kg"], row["alarms"], row["ended"]) == (
            "T1",
            ["01A123BC"],
            38_120.0,
            ["thermal.hot_brakes"],
            True,
        )
        assert (row["evidence_verified"], row["evidence_unverified"]) == (1, 2)
        text = lane_cli("ingest", "query", "--config", str(config), "--lane", "KZ-TEST/T1")
        assert "01A123BC" in text and "38,120 kg" in text and "thermal.hot_brakes" in text
        assert "no crossing matches" in lane_cli(
            "ingest", "query", "--config", str(config), "--plate", "NOPE1"
        )
        assert ingest.stop() == 0, ingest.output()[-4000:]
    lane.close()


def test_an_unwritable_evidence_store_holds_acknowledgements_until_it_is_back(
    tmp_path: Path, broker: LocalBroker, dsn: str
) -> None:
    config = write_config(tmp_path, broker.port, dsn)
    blocker = tmp_path / "evidence"
    blocker.write_text("a file where the evidence directory should be")
    lane = PlayedLane(broker.port)
    frame = b"\xff\xd8frame\xff\xd9"
    with IngestProcess(config) as ingest:
        ingest.wait_subscribed()
        lane.publish("evidence/c1/front-frame.jpg", frame)
        lane.publish("crossing", crossing_event(1, crossing_id="c1"))
        wait_until(lambda: "holding acknowledgements" in ingest.output(), 30, "noticed")
        assert events(dsn) == 0  # nothing stored past it, nothing acknowledged
        blocker.unlink()
        wait_until(lambda: events(dsn) == 1, 30, "the event stored")
        sha = hashlib.sha256(frame).hexdigest()
        assert query(dsn, "SELECT received_sha256, state FROM evidence") == [(sha, "unreferenced")]
        assert (blocker / sha[:2] / sha).read_bytes() == frame
        assert ingest.output().count("holding acknowledgements") == 1  # one line an outage
        assert ingest.stop() == 0, ingest.output()[-4000:]
    lane.close()
