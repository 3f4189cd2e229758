"""``xray.uff_dir``: X-ray / NII scans that the scanner software drops in a directory.

The scanner (or its export service) writes each scan into a drop directory, local or a
mounted share, as either

* a folder ``<drop>/<any name>/`` holding the scan's files and a sidecar ``scan.json``, or
* files ``<drop>/<stem>.*`` beside a sidecar ``<drop>/<stem>.scan.json``,

with the sidecar of :mod:`drivers.xray.sidecar`. The driver polls the directory, waits until
a scan is completely written (:mod:`drivers.xray.watch`), hashes its files with SHA-256
(bounded: ``max_files`` per scan, ``max_file_mb`` per file; a larger file is listed with
its size but no hash) and emits one :class:`~drivers.readings.XrayScan` per scan. It never
writes to, moves or deletes anything in the drop directory: retention is the scanner's.
The file contents are opaque here (WCO UFF or a vendor format alike): only hashed.

Health: UP while the directory can be listed, DOWN when it is missing or unreadable (an
unmounted share), DEGRADED after a rejected scan (bad sidecar, a file larger than listed,
a write that stalled). Directory I/O runs in worker threads; the device timeout
(``timeout_ms``, at least 5 s) bounds one listing of the directory.
"""

from __future__ import annotations

import asyncio
import hashlib
import os
import stat
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, field_validator

from drivers.base import Driver
from drivers.errors import DriverConnectionError, DriverTimeoutError
from drivers.options import StrictOptions
from drivers.readings import ScanFile, XrayScan
from drivers.xray.sidecar import MAX_SIDECAR_BYTES, Sidecar, SidecarFault, parse_sidecar
from drivers.xray.watch import FileState, Ledger, Settle, Signature, incomplete, wrong

HASH_CHUNK = 1 << 20
MAX_DEPTH = 4
LISTING_MIN_S = 5.0  # a listing over a loaded share may take seconds; a hang is longer


class UffDirOptions(StrictOptions):
    path: str = Field(description="The drop directory the scanner software writes scans into.")
    layout: Literal["auto", "folder", "files"] = Field(
        "auto",
        description="folder: one sub-folder per scan; files: <stem>.* + sidecar; auto: both.",
    )
    sidecar_name: str = Field("scan.json", min_length=1, max_length=64)
    sidecar_suffix: str = Field(".scan.json", min_length=2, max_length=64)
    poll_ms: int = Field(500, ge=20, le=60_000)
    stable_polls: int = Field(
        2, ge=1, le=50, description="Looks in a row with no size or time change."
    )
    settle_ms: int = Field(
        2000, ge=0, le=600_000, description="And no change for at least this long."
    )
    stalled_s: float = Field(
        120.0, gt=0, description="A scan short of its listed sizes this long is a fault."
    )
    max_files: int = Field(64, ge=1, le=1024, description="Files hashed per scan.")
    max_file_mb: float = Field(4096.0, gt=0, le=1_048_576, description="Larger: not hashed.")
    max_entries: int = Field(4096, ge=1, le=1_000_000, description="Entries read per listing.")
    ignore_older_s: float | None = Field(
        86_400.0, gt=0, description="Scans that finished longer ago are skipped (null: none)."
    )
    ignore_suffixes: tuple[str, ...] = Field(
        (".tmp", ".part", ".partial", ".crdownload", ".lock", "~"),
        description="Files still being written under a temporary name; dot-files too.",
    )

    @field_validator("sidecar_name")
    @classmethod
    def _plain_name(cls, value: str) -> str:
        if "/" in value or "\\" in value or value in {".", ".."}:
            raise ValueError("a file name, not a path")
        return value


@dataclass(frozen=True, slots=True)
class _Found:
    """One scan as seen in one listing (built in a worker thread)."""

    key: str  # the sidecar's path relative to the drop directory
    base: Path  # file names are relative to this folder
    sidecar: FileState
    parsed: Sidecar | SidecarFault
    files: Signature
    total_files: int

    @property
    def signature(self) -> Signature:
        return (self.sidecar, *self.files)


class UffDirDriver(Driver):
    kind = "xray.uff_dir"
    options: UffDirOptions

    def __init__(self, device_id: str, options: UffDirOptions, **kwargs: Any) -> None:
        super().__init__(device_id, options, **kwargs)
        self.root = Path(options.path)
        self.settle = Settle(polls=options.stable_polls, quiet_s=options.settle_ms / 1000)
        self.ledger = Ledger()
        self.polls = 0
        self.emitted = 0
        self.skipped_old = 0
        self.pending = 0
        self.last_problems: list[str] = []
        self._reported: dict[str, Signature] = {}
        self._stop = threading.Event()

    # -- Driver ------------------------------------------------------------------------

    async def _connect(self) -> None:
        self._stop.clear()
        ok = await asyncio.to_thread(self.root.is_dir)
        if not ok:
            raise DriverConnectionError(f"drop directory {self.root} missing or not a folder")

    async def _disconnect(self) -> None:
        self._stop.set()  # a hash under way stops at its next chunk

    async def _session(self) -> None:
        while True:
            try:
                async with asyncio.timeout(max(self.timeout_s, LISTING_MIN_S)):
                    found, problems = await asyncio.to_thread(self._look)
            except TimeoutError:
                message = f"listing {self.root} took over {self.timeout_s} s"
                raise DriverTimeoutError(message) from None
            self._alive()
            for kind, message in problems:
                self._fault(kind, message)
            for item in found:
                await self._consider(item)
            keys = {item.key for item in found}
            self.settle.keep_only(keys)
            self._reported = {k: v for k, v in self._reported.items() if k in keys}
            self.pending = len(keys) - sum(1 for k in keys if k in self.ledger)
            self.polls += 1
            await asyncio.sleep(self.options.poll_ms / 1000)

    async def _identity(self) -> dict[str, Any]:
        return {
            "path": str(self.root),
            "polls": self.polls,
            "pending": self.pending,
            "emitted": self.emitted,
            "skipped_old": self.skipped_old,
            "last_problems": list(self.last_problems),
        }

    # -- deciding (event loop) -----------------------------------------------------------

    async def _consider(self, item: _Found) -> None:
        if self.ledger.handled(item.key, (item.sidecar,)):
            return
        now = time.monotonic()
        if not self.settle.observe(item.key, item.signature, now):
            return
        parsed = item.parsed
        if isinstance(parsed, SidecarFault):
            self._reject(item, "bad_sidecar", f"{item.key}: {parsed.message}")
            return
        limit = self.options.ignore_older_s
        if limit is not None and parsed.finished < datetime.now(UTC) - timedelta(seconds=limit):
            self.skipped_old += 1
            self._handled(item)
            return
        problem = wrong(parsed, item.files)
        if problem is not None:
            self._reject(item, "scan_mismatch", f"{item.key}: {problem}")
            return
        problem = incomplete(parsed, item.files)
        if problem is not None:
            quiet = self.settle.quiet_for(item.key, now)
            if quiet >= self.options.stalled_s and self._reported.get(item.key) != item.signature:
                self._reported[item.key] = item.signature
                self._problem("scan_stalled", f"{item.key}: {problem} for {quiet:.0f} s")
            return
        files = await asyncio.to_thread(self._hash, item)
        if files is None:  # changed while being hashed: look again
            self.settle.forget(item.key)
            return
        listed = {f.name: f.sha256.lower() for f in parsed.files or [] if f.sha256}
        differ = [f.name for f in files if f.sha256 and listed.get(f.name, f.sha256) != f.sha256]
        if differ:  # not what the scanner says it wrote: corrupt, or being overwritten
            self._reject(item, "hash_mismatch", f"{item.key}: {', '.join(differ)}")
            return
        for entry in files:
            if entry.sha256 is None:
                self._fault("file_too_large", f"{item.key}: {entry.name} not hashed")
        self._emit(
            XrayScan(
                device_id=self.device_id,
                scan_id=parsed.scan_id,
                started=parsed.started.astimezone(UTC),
                finished=parsed.finished.astimezone(UTC),
                files=tuple(files),
                scanner_plate=parsed.plate,
                scanner_container=parsed.container,
                scanner=parsed.scanner,
                source=item.key,
                files_omitted=max(0, item.total_files - len(files)),
            )
        )
        self.emitted += 1
        self._handled(item)

    def _handled(self, item: _Found) -> None:
        self.ledger.record(item.key, (item.sidecar,))
        self.settle.forget(item.key)
        self._reported.pop(item.key, None)

    def _reject(self, item: _Found, kind: str, message: str) -> None:
        self._problem(kind, message)
        self._handled(item)  # until the sidecar changes

    def _problem(self, kind: str, message: str) -> None:
        self._fault(kind, message)
        self.last_problems = [*self.last_problems[-4:], f"{kind}: {message}"]

    # -- looking (worker thread) -------------------------------------------------------

    def _ignored(self, name: str) -> bool:
        return name.startswith(".") or name.endswith(self.options.ignore_suffixes)

    def _look(self) -> tuple[list[_Found], list[tuple[str, str]]]:
        options = self.options
        problems: list[tuple[str, str]] = []
        entries: list[os.DirEntry[str]] = []
        try:
            with os.scandir(self.root) as iterator:
                for entry in iterator:
                    if len(entries) >= options.max_entries:
                        problems.append(("too_many_entries", f"over {options.max_entries}"))
                        break
                    entries.append(entry)
        except (FileNotFoundError, NotADirectoryError, PermissionError) as exc:
            raise DriverConnectionError(f"drop directory {self.root}: {exc.strerror}") from exc
        found: list[_Found] = []
        entries.sort(key=lambda e: e.name)
        plain = [e.name for e in entries if not self._ignored(e.name)]
        for entry in entries:
            if self._ignored(entry.name):
                continue
            try:
                item = self._candidate(entry, plain)
            except FileNotFoundError:
                continue  # removed while we looked (the scanner's retention)
            except OSError as exc:  # vanished or unreadable between listing and look
                problems.append(("unreadable", f"{entry.name}: {exc.strerror}"))
                continue
            if item is not None:
                found.append(item)
        return found, problems

    def _candidate(self, entry: os.DirEntry[str], names_in_root: list[str]) -> _Found | None:
        options = self.options
        if options.layout != "files" and entry.is_dir(follow_symlinks=False):
            base = Path(entry.path)
            sidecar_path = base / options.sidecar_name
            key, stem = f"{entry.name}/{options.sidecar_name}", None
        elif (
            options.layout != "folder"
            and entry.name.endswith(options.sidecar_suffix)
            and len(entry.name) > len(options.sidecar_suffix)
        ):
            base, sidecar_path = self.root, Path(entry.path)
            key, stem = entry.name, entry.name[: -len(options.sidecar_suffix)]
        else:
            return None
        sidecar = _state(sidecar_path, sidecar_path.name)
        if sidecar is None:
            return None  # a folder without its sidecar yet
        if self.ledger.handled(key, (sidecar,)):
            return _Found(key, base, sidecar, SidecarFault("handled"), (), 0)
        parsed = _read_sidecar(sidecar_path)
        if isinstance(parsed, Sidecar) and parsed.files is not None:
            states = [_state(base / f.name, f.name) for f in parsed.files]
            files = tuple(s for s in states if s is not None)
            return _Found(key, base, sidecar, parsed, files, len(files))
        if stem is None:
            names = self._walk(base, skip=options.sidecar_name)
        else:  # files of the same stem, from the listing already made (regular files only)
            suffix = options.sidecar_suffix
            names = [
                n for n in names_in_root if n.startswith(stem + ".") and not n.endswith(suffix)
            ]
        states = [_state(base / name, name) for name in names[: options.max_files]]
        files = tuple(s for s in states if s is not None)
        return _Found(key, base, sidecar, parsed, files, len(names))

    def _walk(self, base: Path, *, skip: str) -> list[str]:
        """Regular files under a scan folder, relative, bounded in depth and number."""
        limit = self.options.max_files * 4
        out: list[str] = []
        todo: list[tuple[Path, str, int]] = [(base, "", 0)]
        while todo and len(out) < limit:
            folder, prefix, depth = todo.pop()
            with os.scandir(folder) as iterator:
                for entry in iterator:
                    if self._ignored(entry.name) or (depth == 0 and entry.name == skip):
                        continue
                    name = prefix + entry.name
                    if entry.is_file(follow_symlinks=False):
                        out.append(name)
                    elif entry.is_dir(follow_symlinks=False) and depth + 1 < MAX_DEPTH:
                        todo.append((Path(entry.path), name + "/", depth + 1))
        return sorted(out)

    def _hash(self, item: _Found) -> list[ScanFile] | None:
        """SHA-256 of each file; None when one changed meanwhile (or the driver stops)."""
        max_bytes = int(self.options.max_file_mb * 1024 * 1024)
        out: list[ScanFile] = []
        for state in item.files[: self.options.max_files]:
            if state.size > max_bytes:
                out.append(ScanFile(name=state.name, size=state.size, sha256=None))
                continue
            digest = hashlib.sha256()
            path = item.base / state.name
            try:
                fd = os.open(path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
                with os.fdopen(fd, "rb") as stream:
                    read = 0
                    while chunk := stream.read(HASH_CHUNK):
                        if self._stop.is_set():
                            return None
                        read += len(chunk)
                        if read > state.size:
                            return None
                        digest.update(chunk)
                after = os.stat(path, follow_symlinks=False)
            except OSError:
                return None
            if (after.st_size, after.st_mtime_ns, read) != (state.size, state.mtime_ns, state.size):
                return None
            out.append(ScanFile(name=state.name, size=state.size, sha256=digest.hexdigest()))
        return out


def _state(path: Path, name: str) -> FileState | None:
    try:
        info = os.stat(path, follow_symlinks=False)
    except (FileNotFoundError, NotADirectoryError):
        return None
    if not stat.S_ISREG(info.st_mode):
        return None
    return FileState(name, info.st_size, info.st_mtime_ns)


def _read_sidecar(path: Path) -> Sidecar | SidecarFault:
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_SIDECAR_BYTES + 1)
    except OSError as exc:
        return SidecarFault(f"cannot read: {exc.strerror}")
    return parse_sidecar(data)
