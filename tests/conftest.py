"""Shared fixtures: real Mosquitto brokers on free ports, lane configs in temp dirs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from edge.devtools.localbroker import LocalBroker, find_mosquitto


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[LocalBroker]:
    if find_mosquitto() is None:
        pytest.fail("mosquitto is not installed; `make test` installs it")
    b = LocalBroker(workdir=tmp_path / "broker").start()
    yield b
    b.stop()


def lane_yaml(
    state_dir: Path, port: int, *, extra: str = "", mqtt_extra: str = "", lane: str = "T1"
) -> str:
    """A minimal valid lane config pointing at a local broker."""
    return (
        "checkpoint: KZ-TEST\n"
        f"lane: {lane}\n"
        "direction: entry\n"
        "mqtt:\n"
        "  host: 127.0.0.1\n"
        f"  port: {port}\n"
        "  reconnect_min_s: 0.1\n"
        "  reconnect_max_s: 0.5\n"
        f"{mqtt_extra}"
        "storage:\n"
        f"  state_dir: {state_dir}\n"
        f"{extra}"
    )
