"""The running agent's local control socket, and the client `lane diag` uses.

``<state_dir>/control.sock``, a unix socket with mode 0600: only the agent's user (and root)
can ask. One JSON request line, one JSON reply line, then the connection closes:

    {"op": "status"}                                  -> lane, broker, outbox, devices
    {"op": "probe", "device": "scale"}                -> the driver's Probe
    {"op": "action", "device": "scale", "action": "zero"}    zero | tare | open | close

Replies are ``{"ok": true, "result": ...}`` or ``{"ok": false, "error": "...", "kind": K}``
with K one of ``not_found``, ``unsupported``, ``device``, ``bad_request``. The agent serves
it on its own loop, so a probe or an action uses the driver the agent already holds (a
serial port has one owner).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import socket
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from drivers.base import Driver
from drivers.errors import DriverConfigError, DriverError, UnsupportedCommandError
from edge.diag.devices import device_report, run_action
from edge.diag.errors import DiagError, NotFoundError, UnsupportedError
from edge.errors import DeviceError
from edge.redact import redact_value

if TYPE_CHECKING:
    from edge.lane import LaneAgent

log = logging.getLogger(__name__)

SOCKET_NAME = "control.sock"
REQUEST_LIMIT = 64 * 1024
READ_TIMEOUT_S = 5.0


def socket_path(state_dir: Path) -> Path:
    return state_dir / SOCKET_NAME


class ControlServer:
    """Serves the control socket for one agent (``await ControlServer.start(agent)``)."""

    def __init__(self, agent: LaneAgent, path: Path) -> None:
        self.agent = agent
        self.path = path
        self._server: asyncio.Server | None = None

    @classmethod
    async def start(cls, agent: LaneAgent) -> ControlServer:
        server = cls(agent, socket_path(agent.state_dir))
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
                request = json.loads(line)
                if not isinstance(request, dict):
                    raise ValueError("a request is a JSON object")
            except (ValueError, TimeoutError, asyncio.LimitOverrunError) as exc:
                reply: dict[str, Any] = {"ok": False, "error": str(exc), "kind": "bad_request"}
            else:
                reply = await self._handle(request)
            # diag prints it and bundles store it: the agent's secrets stay in the agent
            writer.write(json.dumps(redact_value(reply), default=str).encode() + b"\n")
            await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _handle(self, request: dict[str, Any]) -> dict[str, Any]:
        op = request.get("op")
        try:
            if op == "status":
                return {"ok": True, "result": await self._status()}
            if op == "probe":
                driver = self._driver(request)
                async with asyncio.timeout(max(5.0, 2 * driver.timeout_s)):
                    probe = await driver.probe()
                return {"ok": True, "result": probe.as_dict()}
            if op == "overlay":
                return {"ok": True, "result": self._overlay()}
            if op == "action":
                driver = self._driver(request)
                detail = await run_action(driver, str(request.get("action")))
                return {"ok": True, "result": {"detail": detail}}
        except NotFoundError as exc:
            return {"ok": False, "error": str(exc), "kind": "not_found"}
        except (UnsupportedError, UnsupportedCommandError, DriverConfigError) as exc:
            return {"ok": False, "error": str(exc), "kind": "unsupported"}
        except (DriverError, DeviceError, OSError, TimeoutError) as exc:
            return {"ok": False, "error": str(exc) or type(exc).__name__, "kind": "device"}
        except Exception as exc:  # the agent must keep running whatever diag asks
            log.exception("control request %r failed", op)
            return {"ok": False, "error": f"{type(exc).__name__}: {exc}", "kind": "device"}
        return {"ok": False, "error": f"unknown op {op!r}", "kind": "bad_request"}

    def _drivers(self) -> dict[str, Driver]:
        acquisition = getattr(self.agent, "acquisition", None)
        return dict(acquisition.drivers) if acquisition is not None else {}

    def _driver(self, request: dict[str, Any]) -> Driver:
        name = str(request.get("device"))
        drivers = self._drivers()
        if name not in drivers:
            known = ", ".join(sorted(drivers)) or "none"
            raise NotFoundError(f"the agent runs no device {name!r} (running: {known})")
        return drivers[name]

    def _overlay(self) -> dict[str, Any] | None:
        """Each camera's learned stamp (date, time, name): where, and why it is one; None
        while the agent is still opening its devices."""
        acquisition = getattr(self.agent, "acquisition", None)
        if acquisition is None:
            return None
        learners = acquisition.overlays
        return {
            camera: {
                "frames_read": learner.frames,
                "reads_ignored": learner.ignored,
                "regions": [r.as_dict() for r in learner.regions()],
            }
            for camera, learner in learners.items()
        }

    async def _status(self) -> dict[str, Any]:
        agent = self.agent
        publisher = getattr(agent, "_publisher", None)
        stats = await asyncio.to_thread(agent.outbox.stats)
        mqtt = agent.config.mqtt
        return {
            "pid": os.getpid(),
            "uptime_s": time.monotonic() - agent.started,
            "boot_seq": agent.boot_seq,
            "healthy": agent.healthy,
            "stalled": sorted(getattr(agent, "_problems", {}).values()),
            "crossings_total": agent.crossings_total,
            "broker": {
                "host": mqtt.host,
                "port": mqtt.port,
                "connected": bool(publisher and publisher.connected),
                "last_error": publisher.stats.last_error if publisher else None,
            },
            "outbox": {"path": str(agent.outbox.path), **stats.as_dict()},
            "storage": agent.storage_state(),
            "devices": [
                device_report(name, driver.kind, driver.health()).model_dump()
                for name, driver in self._drivers().items()
            ],
        }


def request(state_dir: Path, body: dict[str, Any], *, timeout_s: float = 10.0) -> Any:
    """Ask the running agent; returns ``result`` or raises the matching diag error."""
    path = socket_path(state_dir)
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout_s)
        try:
            sock.connect(str(path))
            sock.sendall(json.dumps(body).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = sock.recv(65536)
                if not chunk:
                    break
                data += chunk
        except PermissionError:
            raise DiagError(
                f"no permission on {path}: run diag as the agent's user (or root)"
            ) from None
        except (OSError, TimeoutError) as exc:
            raise DiagError(f"the agent's control socket {path} does not answer: {exc}") from None
    try:
        reply = json.loads(data)
    except ValueError:
        raise DiagError(f"the agent sent no valid reply on {path}") from None
    if reply.get("ok"):
        return reply.get("result")
    kind, error = reply.get("kind"), str(reply.get("error"))
    if kind == "not_found":
        raise NotFoundError(error)
    if kind == "unsupported":
        raise UnsupportedError(error)
    if kind == "device":
        raise DeviceError(error)
    raise DiagError(error)


def agent_pid(state_dir: Path) -> int | None:
    """The pid of the agent holding ``lane.lock``, or None when no agent runs on the lane.

    Reads ``/proc/locks`` first rather than trying the lock: a diag that took the lock, even
    for a moment, could make an agent starting at that instant exit with "already running".
    """
    lock = state_dir / "lane.lock"
    try:
        info = lock.stat()
        text = lock.read_text().strip()
    except OSError:
        return None
    written = int(text) if text.isdigit() else -1
    holder = _flock_holder(info.st_dev, info.st_ino)
    if holder is not None:
        return written if written > 0 else holder
    # No match can also mean a file system whose /proc/locks ids differ from stat's (overlayfs):
    # then the lock itself must tell, at the cost of that instant.
    return _try_lock(lock, written)


def _flock_holder(device: int, inode: int) -> int | None:
    """The pid of a FLOCK WRITE lock on this file in /proc/locks (Linux), or None."""
    wanted = f"{os.major(device):02x}:{os.minor(device):02x}:{inode}"
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        fields = line.split()
        if "->" in fields:  # a waiter, not a holder
            continue
        if (
            len(fields) >= 6
            and fields[1:4] == ["FLOCK", "ADVISORY", "WRITE"]
            and fields[5] == wanted
        ):
            return int(fields[4]) if fields[4].isdigit() else -1
    return None


def _try_lock(lock: Path, written: int) -> int | None:
    """Without /proc/locks: try a shared lock for an instant."""
    import fcntl

    with lock.open("r") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return written
        fcntl.flock(handle, fcntl.LOCK_UN)
    return None


async def start_control(agent: LaneAgent) -> ControlServer | None:
    """Serve the control socket; a lane without it still runs (diag then probes less)."""
    try:
        return await ControlServer.start(agent)
    except OSError as exc:
        log.warning("no control socket for lane diag: %s", exc)
        return None
