"""An X-ray / NII scanner's export: scans written into a drop directory as a scanner does.

:class:`ScanDrop` describes one scan; :func:`write_steps` writes it step by step (each data
chunk flushed to disk, the sidecar first or last, optionally in two halves, as a slow
share shows it), yielding after each step; :func:`write_scan` writes it all at once. The
ground truth (the SHA-256 of every file) is in :meth:`ScanDrop.truth`.

Run as a separate process, one scan, waiting for a line on stdin before each step so a
test can look at the half-written directory between steps::

    python -m simulators.xray DROP_DIR --scan-id S1 --size 300000 --chunks 3 --step
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import random
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, Literal


@dataclass
class ScanDrop:
    scan_id: str
    files: dict[str, int] = field(default_factory=lambda: {"scan.img": 200_000})
    started: datetime = field(default_factory=lambda: datetime.now(UTC) - timedelta(seconds=30))
    finished: datetime = field(default_factory=lambda: datetime.now(UTC))
    plate: str | None = None
    container: str | None = None
    scanner: str | None = "sim portal"
    layout: Literal["folder", "files"] = "folder"
    sidecar: Literal["first", "last"] = "last"
    list_sizes: bool | None = None  # default: when the sidecar is written first
    chunks: int = 1
    split_sidecar: bool = False
    seed: int = 0

    def content(self, name: str) -> bytes:
        rng = random.Random(f"{self.seed}:{self.scan_id}:{name}")
        return rng.randbytes(self.files[name])

    def truth(self) -> dict[str, str]:
        return {name: hashlib.sha256(self.content(name)).hexdigest() for name in self.files}

    def sidecar_document(self) -> dict[str, Any]:
        document: dict[str, Any] = {
            "scan_id": self.scan_id,
            "started": self.started.isoformat().replace("+00:00", "Z"),
            "finished": self.finished.isoformat().replace("+00:00", "Z"),
        }
        for key in ("plate", "container", "scanner"):
            if getattr(self, key) is not None:
                document[key] = getattr(self, key)
        list_sizes = self.sidecar == "first" if self.list_sizes is None else self.list_sizes
        if list_sizes:  # names as on disk, relative to the scan folder (or drop directory)
            document["files"] = [
                {"name": self.stored_name(n), "size": s} for n, s in self.files.items()
            ]
        return document

    def stored_name(self, name: str) -> str:
        return name if self.layout == "folder" else f"{self.scan_id}.{name}"

    def paths(self, root: Path) -> tuple[Path, Path, dict[str, Path]]:
        """(base folder, sidecar path, data file paths) of this scan under ``root``."""
        if self.layout == "folder":
            base = root / self.scan_id
            return base, base / "scan.json", {n: base / n for n in self.files}
        return (
            root,
            root / f"{self.scan_id}.scan.json",
            {n: root / f"{self.scan_id}.{n}" for n in self.files},
        )


def _append(path: Path, data: bytes) -> None:
    with open(path, "ab") as stream:
        stream.write(data)
        stream.flush()
        os.fsync(stream.fileno())


def write_steps(drop: ScanDrop, root: Path) -> Iterator[str]:
    """Write the scan; yield a short description after each step."""
    base, sidecar_path, data_paths = drop.paths(root)
    base.mkdir(parents=True, exist_ok=True)
    sidecar = json.dumps(drop.sidecar_document(), indent=1).encode()

    def sidecar_steps() -> Iterator[str]:
        if drop.split_sidecar:
            half = len(sidecar) // 2
            _append(sidecar_path, sidecar[:half])
            yield f"sidecar {half} of {len(sidecar)} bytes"
            _append(sidecar_path, sidecar[half:])
        else:
            _append(sidecar_path, sidecar)
        yield "sidecar"

    if drop.sidecar == "first":
        yield from sidecar_steps()
    for name, path in data_paths.items():
        content = drop.content(name)
        step = max(1, -(-len(content) // drop.chunks))
        path.touch()
        for i in range(0, max(len(content), 1), step):
            _append(path, content[i : i + step])
            yield f"{name} {min(i + step, len(content))} of {len(content)} bytes"
    if drop.sidecar == "last":
        yield from sidecar_steps()


def write_scan(drop: ScanDrop, root: Path) -> dict[str, str]:
    for _ in write_steps(drop, root):
        pass
    return drop.truth()


async def notify(
    host: str,
    port: int,
    drop: ScanDrop | None,
    *,
    path: str = "/scan",
    token: str | None = None,
    body: bytes | None = None,
    timeout_s: float = 10.0,
) -> tuple[int, bytes]:
    """POST a scan's notification as a scanner would (``xray.http``); None: a heartbeat.

    The document is the sidecar with every file listed by name, size and SHA-256. ``body``
    replaces it (for malformed requests). Returns the status and the answer's body.
    """
    if body is None:
        if drop is None:
            body = b""
        else:
            document = drop.sidecar_document()
            truth = drop.truth()
            document["files"] = [
                {"name": drop.stored_name(n), "size": size, "sha256": truth[n]}
                for n, size in drop.files.items()
            ]
            body = json.dumps(document).encode()
    target = path if drop is not None or body else path.rstrip("/") + "/heartbeat"
    head = f"POST {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(body)}\r\n"
    head += "Content-Type: application/json\r\n"
    if token is not None:
        head += f"Authorization: Bearer {token}\r\n"
    async with asyncio.timeout(timeout_s):
        reader, writer = await asyncio.open_connection(host, port)
        try:
            writer.write(head.encode() + b"\r\n" + body)
            await writer.drain()
            answer = await reader.read()
        finally:
            writer.close()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("root", type=Path)
    parser.add_argument("--scan-id", required=True)
    parser.add_argument("--size", type=int, default=200_000)
    parser.add_argument("--chunks", type=int, default=4)
    parser.add_argument("--layout", choices=["folder", "files"], default="folder")
    parser.add_argument("--sidecar", choices=["first", "last"], default="last")
    parser.add_argument("--split-sidecar", action="store_true")
    parser.add_argument("--plate")
    parser.add_argument("--container")
    parser.add_argument("--step", action="store_true", help="wait for a stdin line per step")
    args = parser.parse_args(argv)
    drop = ScanDrop(
        args.scan_id,
        files={"scan.img": args.size},
        layout=args.layout,
        sidecar=args.sidecar,
        chunks=args.chunks,
        split_sidecar=args.split_sidecar,
        plate=args.plate,
        container=args.container,
    )
    for description in write_steps(drop, args.root):
        print(f"step {description}", flush=True)
        if args.step and not sys.stdin.readline():
            return 1  # the test went away
    print("done " + json.dumps(drop.truth()), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
