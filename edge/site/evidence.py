"""Evidence images, content-addressed: ``<dir>/<sha256[:2]>/<sha256>``, written atomically."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


class EvidenceFiles:
    """The content-addressed evidence directory: ``<dir>/<sha256[:2]>/<sha256>``."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def path(self, sha256: str) -> Path:
        return self.directory / sha256[:2] / sha256

    def put(self, sha256: str, data: bytes) -> Path:
        """Write once, durably (temp file, fsync, rename); an existing file is kept."""
        target = self.path(sha256)
        if target.exists():
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".incoming-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dir_fd = os.open(target.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
        return target
