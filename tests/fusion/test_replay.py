"""Recorded lanes replay through the correlator into the expected events (golden files).

Regenerate after an intended change with UPDATE_GOLDEN=1 and review the diff.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from pathlib import Path

import pytest

from edge.replay import replay, summary

RECORDINGS = Path(__file__).resolve().parents[1] / "recordings"
CASES = sorted(RECORDINGS.glob("*.jsonl"))


@pytest.mark.parametrize("recording", CASES, ids=lambda p: p.stem)
def test_recording_matches_golden(recording: Path) -> None:
    emissions = list(replay(recording))
    got = [summary(e) for e in emissions]
    golden = recording.with_suffix(".golden.json")
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(json.dumps(got, indent=1, ensure_ascii=False) + "\n")
    assert got == json.loads(golden.read_text())


@pytest.mark.parametrize("recording", CASES, ids=lambda p: p.stem)
def test_every_new_gets_exactly_one_end(recording: Path) -> None:
    emissions = list(replay(recording))
    by_crossing: dict[str, list[str]] = {}
    for e in emissions:
        by_crossing.setdefault(e.record.crossing_id, []).append(e.type.value)
    for types in by_crossing.values():
        assert types[0] == "new" and types[-1] == "end"
        assert Counter(types)["new"] == 1 and Counter(types)["end"] == 1


def test_replay_is_deterministic() -> None:
    first = [summary(e) for e in replay(RECORDINGS / "tailgating.jsonl")]
    second = [summary(e) for e in replay(RECORDINGS / "tailgating.jsonl")]
    assert first == second
