"""The client side of the agent's control socket, which `lane diag` uses.

The wire is ``edge.control.messages`` (shared with the agent's server,
``edge.control.server``); a reply's error ``kind`` becomes the matching diag error:
``not_found`` -> NotFoundError, ``unsupported`` -> UnsupportedError, ``device`` ->
DeviceError, anything else -> DiagError.
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from edge.control.messages import (
    REPLY,
    ActionRequest,
    ActionResult,
    CameraOverlay,
    ErrorReply,
    OverlayRequest,
    ProbeRequest,
    Request,
    StatusRequest,
    StatusResult,
    socket_path,
)
from edge.diag.errors import DiagError, NotFoundError, UnsupportedError
from edge.errors import DeviceError


def status(state_dir: Path) -> StatusResult:
    """The running agent's ``status``."""
    return StatusResult.model_validate(request(state_dir, StatusRequest()))


def probe(state_dir: Path, device: str) -> dict[str, Any]:
    """The driver's ``Probe`` (as a dict) from the agent that holds the device."""
    result: dict[str, Any] = request(state_dir, ProbeRequest(device=device))
    return result


def overlay(state_dir: Path) -> dict[str, CameraOverlay] | None:
    """Each camera's learned overlay; None while the agent is still opening its devices."""
    result = request(state_dir, OverlayRequest())
    if result is None:
        return None
    return {camera: CameraOverlay.model_validate(o) for camera, o in result.items()}


def action(state_dir: Path, device: str, what: str) -> ActionResult:
    """Make the agent's driver of ``device`` do ``what`` (zero, tare, open, close)."""
    return ActionResult.model_validate(
        request(state_dir, ActionRequest(device=device, action=what))
    )


def request(state_dir: Path, body: Request | dict[str, Any], *, timeout_s: float = 10.0) -> Any:
    """Ask the running agent; returns ``result`` (decoded JSON) or raises the matching diag
    error. ``body`` is a request model, or its JSON object as a dict."""
    if isinstance(body, Request):
        body = body.model_dump()
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
        reply = REPLY.validate_json(data)
    except ValidationError:
        raise DiagError(f"the agent sent no valid reply on {path}") from None
    if not isinstance(reply, ErrorReply):
        return reply.result
    if reply.kind == "not_found":
        raise NotFoundError(reply.error)
    if reply.kind == "unsupported":
        raise UnsupportedError(reply.error)
    if reply.kind == "device":
        raise DeviceError(reply.error)
    raise DiagError(reply.error)


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
