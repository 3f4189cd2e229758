"""One agent per lane: an exclusive flock on ``<state_dir>/lane.lock`` holding its pid.

`lane diag` reads the same file to find the running agent without taking the lock
(``edge.diag.control.agent_pid``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
from pathlib import Path
from typing import IO

from edge.errors import AlreadyRunningError, StorageError


class LaneLock:
    """One agent per lane: an exclusive flock on ``<state_dir>/lane.lock``."""

    def __init__(self, state_dir: Path, *, lane: str = "<lane>") -> None:
        self.path = state_dir / "lane.lock"
        self.lane = lane
        self._file: IO[str] | None = None

    def acquire(self) -> None:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            handle = self.path.open("a+")
        except OSError as exc:
            raise _state_dir_error(self.path, exc) from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "unknown"
            handle.close()
            raise AlreadyRunningError(
                f"another lane agent (pid {holder}) already runs on {self.path.parent}; "
                f"stop it first (systemctl stop lane@{self.lane})"
            ) from None
        try:
            handle.seek(0)
            handle.truncate()
            handle.write(str(os.getpid()))
            handle.flush()
        except OSError as exc:
            with contextlib.suppress(OSError):  # close() flushes again, and fails again
                handle.close()
            raise _state_dir_error(self.path, exc) from None
        self._file = handle

    def release(self) -> None:
        if self._file is not None:
            fcntl.flock(self._file, fcntl.LOCK_UN)
            self._file.close()
            self._file = None


def _state_dir_error(path: Path, exc: OSError) -> StorageError:
    full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
    hint = f" (the disk of {path.parent} is full: free space there)" if full else ""
    return StorageError(f"cannot write {path}: {exc.strerror or exc}{hint}", full=full)
