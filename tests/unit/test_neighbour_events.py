"""Neighbouring lanes' crossing events as the agent takes them off the broker."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest

from edge.acquire import Acquisition
from edge.config import parse_config
from edge.fusion.model import NeighbourSighting


def acquisition(tmp_path: Path) -> Acquisition:
    config = parse_config(
        f"checkpoint: KZ-KHORGOS\nlane: T3\ndirection: entry\n"
        f"storage: {{state_dir: {tmp_path}}}\nfusion: {{neighbour_lanes: [T4]}}\n"
    )
    return Acquisition(config, emit=lambda _e: None, on_health=lambda *_a: None)  # type: ignore[arg-type]


def test_neighbour_events_become_sightings_and_garbage_is_counted(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    async def main() -> tuple[list[NeighbourSighting | object], int]:
        acq = acquisition(tmp_path)
        acq._loop = asyncio.get_running_loop()
        good = {
            "crossing_id": "c1",
            "start": "2026-11-23T10:00:00Z",
            "end": "2026-11-23T10:00:09.5Z",
            "plates": [{"text": "123ABC02"}, {"text": "45AB123"}],
        }
        for payload in (
            json.dumps(good).encode(),
            b"{not json",
            json.dumps({"crossing_id": "c2", "plates": [{"text": "X"}]}).encode(),  # no start
            json.dumps(good | {"start": "2026-11-23T10:00:00"}).encode(),  # no UTC offset
            json.dumps(good | {"crossing_id": "c3", "plates": []}).encode(),  # nothing to check
        ):
            acq.neighbour_crossing("T4", payload)
        await asyncio.sleep(0)
        queued = [acq.queue.get_nowait() for _ in range(acq.queue.qsize())]
        return queued, acq.neighbour_errors

    queued, errors = asyncio.run(main())
    sightings = [s for s in queued if isinstance(s, NeighbourSighting)]
    assert len(sightings) == len(queued)
    assert [(s.lane, s.crossing_id, s.plates) for s in sightings] == [
        ("T4", "c1", frozenset({"123ABC02", "45AB123"}))
    ]
    assert sightings[0].end is not None and sightings[0].start.tzinfo is not None
    assert errors == 3
    assert "unreadable crossing event from lane T4 (1 so far)" in caplog.text
