"""The lane configs `lane checkpoint sim` writes: each names the simulator's own link to its
serial pty, which goes with the simulator, never a bare /dev/pts/N."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import yaml

from edge.devtools.checkpoint import SiteLane, lane_scenario


def test_a_truck_lane_config_names_the_simulators_pty_link(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(SiteLane, "start_agent", lambda self: None)  # the config, no agent
    scenario = lane_scenario("truck", seed=1, vehicles=1, speedup=1.0)
    lane = SiteLane("T01", "truck", scenario, tmp_path / "T01", broker_port=1883)
    lane.start()
    try:
        config = yaml.safe_load(lane.config_path.read_text())
        (scale,) = [d for d in config["devices"] if d["id"] == "scale"]
        link = Path(scale["url"])
        assert link.parent == tmp_path / "T01" / "run"
        assert link.is_symlink() and os.readlink(link).startswith("/dev/pts/")
    finally:
        lane.stop()
    # Once the simulator is gone, the config opens nothing, whoever has that pty now.
    assert not link.exists() and not link.is_symlink()
