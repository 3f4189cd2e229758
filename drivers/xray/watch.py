"""When a dropped scan is completely written: pure bookkeeping over directory snapshots.

A scan is complete when (1) its sidecar parses, (2) every file the sidecar lists is there
at no less than its listed size, and (3) neither the sidecar nor any file changed size or
modification time over ``polls`` consecutive looks spanning at least ``quiet_s``. The
driver takes the snapshots (I/O); this module only decides, so it is tested without a disk.
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

from drivers.xray.sidecar import Sidecar


@dataclass(frozen=True, slots=True, order=True)
class FileState:
    name: str  # relative to the scan's base folder
    size: int
    mtime_ns: int


Signature = tuple[FileState, ...]


@dataclass(slots=True)
class _Track:
    signature: Signature
    changed_at: float
    same: int


class Settle:
    """Which scans have stopped changing; bounded to ``max_tracked`` scans."""

    def __init__(self, *, polls: int, quiet_s: float, max_tracked: int = 4096) -> None:
        self.polls = polls
        self.quiet_s = quiet_s
        self.max_tracked = max_tracked
        self._tracks: OrderedDict[str, _Track] = OrderedDict()

    def observe(self, key: str, signature: Signature, now: float) -> bool:
        """Look at a scan once more; True when it has settled."""
        track = self._tracks.get(key)
        if track is None or track.signature != signature:
            self._tracks[key] = _Track(signature, now, 1)
            self._tracks.move_to_end(key)
            while len(self._tracks) > self.max_tracked:
                self._tracks.popitem(last=False)
            return self.polls <= 1 and self.quiet_s <= 0
        track.same += 1
        return track.same >= self.polls and now - track.changed_at >= self.quiet_s

    def quiet_for(self, key: str, now: float) -> float:
        """Seconds since the scan last changed (0 when not tracked)."""
        track = self._tracks.get(key)
        return now - track.changed_at if track is not None else 0.0

    def forget(self, key: str) -> None:
        self._tracks.pop(key, None)

    def keep_only(self, keys: set[str]) -> None:
        for key in [k for k in self._tracks if k not in keys]:
            del self._tracks[key]

    def __len__(self) -> int:
        return len(self._tracks)


class Ledger:
    """Scans already handled (emitted or rejected), by key, with what they looked like then."""

    def __init__(self, max_entries: int = 16_384) -> None:
        self.max_entries = max_entries
        self._seen: OrderedDict[str, Signature] = OrderedDict()

    def handled(self, key: str, signature: Signature) -> bool:
        return self._seen.get(key) == signature

    def record(self, key: str, signature: Signature) -> None:
        self._seen[key] = signature
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

    def keep_only(self, keys: set[str]) -> None:
        for key in [k for k in self._seen if k not in keys]:
            del self._seen[key]

    def __contains__(self, key: object) -> bool:
        return key in self._seen


def incomplete(sidecar: Sidecar, files: Signature) -> str | None:
    """Why the files do not yet match what the sidecar lists (None: they do).

    A file larger than listed is not "incomplete" but wrong: reported by :func:`wrong`.
    """
    if not files:
        return "no data files yet"
    if sidecar.files is None:
        return None
    sizes = {f.name: f.size for f in files}
    for listed in sidecar.files:
        if listed.name not in sizes:
            return f"{listed.name} not there yet"
        if listed.size is not None and sizes[listed.name] < listed.size:
            return f"{listed.name} has {sizes[listed.name]} of {listed.size} bytes"
    return None


def wrong(sidecar: Sidecar, files: Signature) -> str | None:
    """A file larger than the sidecar says: this scan will never match it."""
    if sidecar.files is None:
        return None
    sizes = {f.name: f.size for f in files}
    for listed in sidecar.files:
        size = sizes.get(listed.name)
        if listed.size is not None and size is not None and size > listed.size:
            return f"{listed.name} has {size} bytes, the sidecar lists {listed.size}"
    return None
