"""The control socket's server and client over a real unix socket, with the wire shared.

The server is given a lane through ``ControlledLane`` (the same protocol ``LaneAgent``
implements); the client is diag's. Errors keep their kinds, replies stay redacted.
"""

from __future__ import annotations

import asyncio
import json
import socket
import tempfile
from collections.abc import Mapping
from pathlib import Path

import pytest

from drivers.base import Driver
from edge.control.messages import (
    BrokerReport,
    StatusResult,
    StorageState,
    socket_path,
)
from edge.control.server import ControlServer
from edge.diag import control
from edge.diag.errors import DiagError, NotFoundError
from edge.recognize.overlay import OverlayLearner


class Lane:
    """A lane with no devices yet, whose broker error carries a password."""

    async def lane_report(self) -> StatusResult:
        return StatusResult(
            pid=1,
            uptime_s=2.0,
            boot_seq=3,
            healthy=True,
            stalled=[],
            crossings_total=4,
            broker=BrokerReport(
                host="broker", port=1883, connected=False, last_error="mqtt://lane:s3cret@broker"
            ),
            outbox={"path": "/x/outbox.db", "pending": 0},
            storage=StorageState(
                alarm=None, error=None, held_events=0, held_crossings=0, held_limit=10
            ),
            devices=[],
        )

    def running_drivers(self) -> Mapping[str, Driver]:
        return {}

    def camera_overlays(self) -> Mapping[str, OverlayLearner] | None:
        return None


def ask_raw(path: Path, line: bytes) -> dict[str, object]:
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5)
        client.connect(str(path))
        client.sendall(line)
        reply: dict[str, object] = json.loads(client.makefile().readline())
        return reply


def test_server_and_client_share_the_wire() -> None:
    # A short path: unix socket paths are limited to about 100 bytes.
    with tempfile.TemporaryDirectory(prefix="ctl") as tmp:
        state_dir = Path(tmp)

        async def main() -> None:
            server = await ControlServer.start(Lane(), socket_path(state_dir))
            try:
                status = await asyncio.to_thread(control.status, state_dir)
                assert status.boot_seq == 3 and status.storage.held_limit == 10
                assert "s3cret" not in (status.broker.last_error or "")  # redacted
                with pytest.raises(NotFoundError, match="runs no device 'scale'"):
                    await asyncio.to_thread(control.probe, state_dir, "scale")
                assert await asyncio.to_thread(control.overlay, state_dir) is None
                path = socket_path(state_dir)
                unknown = await asyncio.to_thread(ask_raw, path, b'{"op": "reboot"}\n')
                assert unknown == {
                    "ok": False,
                    "error": "unknown op 'reboot'",
                    "kind": "bad_request",
                }
                missing = await asyncio.to_thread(ask_raw, path, b'{"op": "action"}\n')
                assert missing["kind"] == "bad_request"
                raw = await asyncio.to_thread(ask_raw, path, b'{"op": "status"}\n')
                assert raw["ok"] is True and isinstance(raw["result"], dict)
                assert list(raw["result"])[:3] == ["pid", "uptime_s", "boot_seq"]
            finally:
                await server.close()
            assert not socket_path(state_dir).exists()
            with pytest.raises(DiagError, match="does not answer"):
                await asyncio.to_thread(control.status, state_dir)

        asyncio.run(main())
