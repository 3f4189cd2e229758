"""The agent's side of the control socket (the wire: ``edge.control.messages``).

The agent serves it on its own loop, so a probe or an action uses the driver the agent
already holds (a serial port has one owner). What the server needs from the agent is
:class:`ControlledLane`, nothing else; every reply is redacted (diag prints it and bundles
store it: the agent's secrets stay in the agent).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from pydantic import ValidationError

from drivers.base import Driver
from drivers.errors import DriverConfigError, DriverError, UnsupportedCommandError
from edge.control.actions import run_action
from edge.control.messages import (
    OPS,
    REQUEST,
    REQUEST_LIMIT,
    ActionRequest,
    ActionResult,
    CameraOverlay,
    ErrorReply,
    OkReply,
    OverlayRegionReport,
    OverlayRequest,
    ProbeRequest,
    StatusRequest,
    StatusResult,
    socket_path,
)
from edge.errors import DeviceError
from edge.recognize.overlay import OverlayLearner
from edge.redact import redact_value

log = logging.getLogger(__name__)

READ_TIMEOUT_S = 5.0


class ControlledLane(Protocol):
    """What the control server asks of the running agent."""

    async def lane_report(self) -> StatusResult:
        """The ``status`` result: the lane, its broker, outbox, storage and devices."""
        ...

    def running_drivers(self) -> Mapping[str, Driver]:
        """The drivers the agent holds, by device id (none while it opens them)."""
        ...

    def camera_overlays(self) -> Mapping[str, OverlayLearner] | None:
        """Each camera's overlay learner; None while the agent is still opening its devices."""
        ...


class NoSuchDevice(LookupError):
    """The request names a device the lane does not have (reply kind ``not_found``)."""


class ControlServer:
    """Serves the control socket for one agent (``await ControlServer.start(lane, path)``)."""

    def __init__(self, lane: ControlledLane, path: Path) -> None:
        self.lane = lane
        self.path = path
        self._server: asyncio.Server | None = None

    @classmethod
    async def start(cls, lane: ControlledLane, path: Path) -> ControlServer:
        server = cls(lane, path)
        server.path.unlink(missing_ok=True)  # a stale socket of a killed agent: we hold the lock
        # The state dir is the agent's own (0700 under systemd); chmod right after bind closes
        # the rest of the window.
        server._server = await asyncio.start_unix_server(
            server._client, path=str(server.path), limit=REQUEST_LIMIT
        )
        os.chmod(server.path, 0o600)
        log.info("control socket %s", server.path)
        return server

    def serving(self) -> bool:
        """Liveness for the agent's supervisor."""
        return self._server is not None and self._server.is_serving()

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(2.0):
                    await self._server.wait_closed()
            self._server = None
        self.path.unlink(missing_ok=True)

    async def _client(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            try:
                async with asyncio.timeout(READ_TIMEOUT_S):
                    line = await reader.readline()
                body = json.loads(line)
                if not isinstance(body, dict):
                    raise ValueError("a request is a JSON object")
            except (ValueError, TimeoutError, asyncio.LimitOverrunError) as exc:
                reply: OkReply | ErrorReply = ErrorReply(error=str(exc), kind="bad_request")
            else:
                reply = await self._handle(body)
            wire = redact_value(reply.model_dump())
            writer.write(json.dumps(wire, default=str).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            return  # the client went away before its reply: there is no one to answer
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, body: dict[str, object]) -> OkReply | ErrorReply:
        op = body.get("op")
        if op not in OPS:
            return ErrorReply(error=f"unknown op {op!r}", kind="bad_request")
        try:
            request = REQUEST.validate_python(body)
        except ValidationError as exc:
            return ErrorReply(error=f"bad {op} request: {exc}", kind="bad_request")
        try:
            match request:
                case StatusRequest():
                    return OkReply(result=await self.lane.lane_report())
                case ProbeRequest(device=device):
                    driver = self._driver(device)
                    async with asyncio.timeout(max(5.0, 2 * driver.timeout_s)):
                        probe = await driver.probe()
                    return OkReply(result=probe.as_dict())
                case OverlayRequest():
                    return OkReply(result=self._overlay())
                case ActionRequest(device=device, action=action):
                    detail = await run_action(self._driver(device), action)
                    return OkReply(result=ActionResult(detail=detail))
        except NoSuchDevice as exc:
            return ErrorReply(error=str(exc.args[0]), kind="not_found")
        except (UnsupportedCommandError, DriverConfigError) as exc:
            return ErrorReply(error=str(exc), kind="unsupported")
        except (DriverError, DeviceError, OSError, TimeoutError) as exc:
            return ErrorReply(error=str(exc) or type(exc).__name__, kind="device")
        except Exception as exc:  # the agent must keep running whatever diag asks
            log.exception("control request %r failed", op)
            return ErrorReply(error=f"{type(exc).__name__}: {exc}", kind="device")

    def _driver(self, name: str) -> Driver:
        drivers = self.lane.running_drivers()
        if name not in drivers:
            known = ", ".join(sorted(drivers)) or "none"
            raise NoSuchDevice(f"the agent runs no device {name!r} (running: {known})")
        return drivers[name]

    def _overlay(self) -> dict[str, CameraOverlay] | None:
        """Each camera's learned stamp (date, time, name): where, and why it is one."""
        learners = self.lane.camera_overlays()
        if learners is None:
            return None
        return {
            camera: CameraOverlay(
                frames_read=learner.frames,
                reads_ignored=learner.ignored,
                regions=[
                    OverlayRegionReport.model_validate(r.as_dict()) for r in learner.regions()
                ],
            )
            for camera, learner in learners.items()
        }


async def start_control(lane: ControlledLane, state_dir: Path) -> ControlServer | None:
    """Serve the control socket; a lane without it still runs (diag then probes less)."""
    try:
        return await ControlServer.start(lane, socket_path(state_dir))
    except OSError as exc:
        log.warning("no control socket for lane diag: %s", exc)
        return None
