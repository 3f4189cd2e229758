"""A whole checkpoint end to end: `lane checkpoint score` as a process, with a real fault.

Two lanes (a truck lane and a car lane, each its own simulated devices and `lane run`), the
site broker, a private PostgreSQL and `lane ingest`; the site broker is SIGKILLed while the
vehicles pass. Every event and crossing every lane made must be in the register once, every
gap repaired, and every vehicle found there (unless its lane merged it with another).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from edge.devtools.localbroker import find_mosquitto
from edge.devtools.localdb import find_pg_bin
from tests.integration.support import ROOT

pytestmark = pytest.mark.slow

KEYS = {"vehicles", "register_crossings", "missed", "duplicates", "gaps_opened",
        "gaps_repaired", "lost", "latency_p50_ms", "latency_p95_ms", "faults"}  # fmt: skip


@pytest.mark.timeout(1200)  # two lanes, a broker, PostgreSQL and ingest as processes
def test_a_small_checkpoint_through_a_broker_sigkill_misses_nothing(tmp_path: Path) -> None:
    if find_pg_bin() is None or find_mosquitto() is None:
        pytest.fail("PostgreSQL and Mosquitto are needed: `make system-deps`")
    # Its own process group: on a timeout every lane, broker and ingest it started goes too
    # (an orphaned `lane run` would reopen a /dev/pts/N that a later test's simulator gets).
    score = subprocess.Popen(
        [sys.executable, "-m", "edge", "checkpoint", "score", "--lanes", "2", "--vehicles", "4",
         "--speedup", "4", "--seed", "3", "--faults", "broker_sigkill", "--json",
         "--workdir", str(tmp_path / "cp")],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True,
    )  # fmt: skip
    try:
        stdout, stderr = score.communicate(timeout=900)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(score.pid, signal.SIGKILL)
    assert score.returncode == 0, stderr[-3000:]
    result = json.loads(stdout.strip().splitlines()[-1])
    assert result.keys() >= KEYS
    assert [f["kind"] for f in result["faults"]] == ["broker_sigkill"]
    assert set(result["lanes"]) == {"T01", "C02"}
    assert result["vehicles"] == 8
    # The chain: the register holds exactly what the lanes made, nothing lost or doubled.
    assert result["events_missing"] == 0
    assert result["events_made"] >= 8 * 2  # at least a new and an end per vehicle
    assert result["register_crossings"] == result["crossings_made"]
    assert result["lost"] == 0
    assert result["gaps_repaired"] == result["gaps_opened"]
    assert result["gaps_open"] == 0
    assert result["quarantined"] == 0
    # The vehicles: each one is in the register, unless its lane's fusion merged it with
    # another (a loaded host can do that to a lane; it is the lane's doing, counted).
    assert result["missed_agent_down"] == 0
    assert result["missed"] <= result["merged"], result["lanes"]
    assert result["latency_p50_ms"] is not None and result["latency_p50_ms"] > 0
