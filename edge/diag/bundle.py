"""`lane diag bundle`: one .tar.gz a technician can send to support, holding no secrets.

Inside: the config with secrets and URL credentials removed, versions, status, outbox
figures, the last crossing events, a probe of every device with its last raw frames, the
agent's metrics (if served) and recent logs (journal, or ``*.log`` in the state dir).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import json
import platform
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from edge.config import LaneConfig
from edge.diag import control
from edge.diag.devices import look
from edge.diag.models import BundleOutput
from edge.errors import ConfigError, LaneError
from edge.logs import LOG_FILE_NOTE
from edge.redact import REDACTOR, remember
from edge.yamlload import decode, load_yaml

PACKAGES = (
    "lane-agent",
    "paho-mqtt",
    "pydantic",
    "pymodbus",
    "pyserial",
    "onnxruntime",
    "opencv-python-headless",
    "opencv-python",
    "numpy",
    "prometheus-client",
)
LOG_TAIL_BYTES = 1 << 20


def redact(value: Any, path: str = "", found: list[str] | None = None) -> Any:
    """A copy with secret values and URL credentials replaced; ``found`` gets their paths."""
    return REDACTOR.value(value, path, found)


def versions() -> dict[str, Any]:
    found = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return {
        "python": sys.version,
        "platform": platform.platform(),
        "machine": platform.machine(),
        "packages": found,
    }


def _logs(config: LaneConfig) -> dict[str, bytes]:
    out: dict[str, bytes] = {}
    journalctl = shutil.which("journalctl")
    if journalctl:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            result = subprocess.run(
                [
                    journalctl,
                    "-u",
                    f"lane@{config.lane}",
                    "--since",
                    "-24h",
                    "-n",
                    "5000",
                    "-o",
                    "short-iso",
                    "--no-pager",
                ],
                capture_output=True,
                timeout=10,
            )
            if (
                result.returncode == 0
                and result.stdout.strip()
                and b"-- No entries --" not in result.stdout[:200]
            ):
                out["logs/journal.txt"] = result.stdout
    state_dir = config.storage.resolved_state_dir()
    files = sorted(state_dir.glob("*.log")) if state_dir.is_dir() else []
    noted: Path | None = None
    with contextlib.suppress(OSError, ValueError):
        noted = Path((state_dir / LOG_FILE_NOTE).read_text().strip())
        files += [noted, noted.with_name(noted.name + ".1")]
    for path in files:
        with contextlib.suppress(OSError), path.open("rb") as handle:
            handle.seek(max(0, path.stat().st_size - LOG_TAIL_BYTES))
            out[f"logs/{path.name}"] = handle.read()
    if "logs/journal.txt" not in out:
        out["logs/README.txt"] = (
            f"No journal entries for lane@{config.lane} in the last 24 h"
            f"{'' if journalctl else ' (journalctl is not installed)'}: the agent was not run "
            "by systemd on this machine. "
            + (
                f"It logs to {noted} (`lane run --log-file`); that file is included.\n"
                if noted is not None
                else "Run it with `lane run --log-file PATH` to keep its log for a bundle.\n"
            )
        ).encode()
    return out


def _devices(config: LaneConfig, running: bool) -> dict[str, Any]:
    state_dir = config.storage.resolved_state_dir()
    probes: dict[str, Any] = {}
    direct = [d for d in config.devices if d.enabled and not running]
    for device in config.devices:
        if not device.enabled or not running:
            continue
        try:
            probes[device.id] = control.probe(state_dir, device.id)
        except LaneError as exc:
            probes[device.id] = {"error": str(exc)}

    async def look_all() -> list[Any]:
        return await asyncio.gather(*(look(d, readings=5) for d in direct), return_exceptions=True)

    for device, result in zip(direct, asyncio.run(look_all()) if direct else [], strict=True):
        probes[device.id] = (
            {"error": str(result)} if isinstance(result, BaseException) else result.probe.as_dict()
        )
    return probes


def _metrics(config: LaneConfig) -> bytes | None:
    if config.metrics is None:
        return None
    host, port = config.metrics.address()
    url = f"http://{host}:{port}/metrics"
    with (
        contextlib.suppress(OSError, ValueError),
        urllib.request.urlopen(url, timeout=3) as response,
    ):
        return bytes(response.read())
    return None


def build(config: LaneConfig, out: Path, *, crossings: int = 200) -> BundleOutput:
    from edge.diag.outbox import open_existing
    from edge.diag.status import collect
    from edge.events import agent_version

    remember(config)  # the secrets this shell can resolve, and those in the config's URLs
    files: dict[str, bytes] = {}
    redacted: list[str] = []
    raw: Any = {}
    with contextlib.suppress(OSError, ConfigError):
        source = Path(config.source)
        raw = load_yaml(decode(source.read_bytes(), source=str(source)), source=str(source)).data
    files["config.redacted.yaml"] = yaml.safe_dump(
        redact(raw, found=redacted), sort_keys=False, allow_unicode=True
    ).encode()
    files["versions.json"] = _json({"agent_version": agent_version(), **versions()})
    status = collect(config)
    files["status.json"] = status.to_json().encode()
    try:
        outbox = open_existing(config)
    except LaneError as exc:
        files["crossings.jsonl"] = b""
        files["outbox.json"] = _json({"error": str(exc)})
    else:
        try:
            events = outbox.reader.latest_crossings(crossings)
            files["crossings.jsonl"] = "".join(
                json.dumps(e, ensure_ascii=False) + "\n" for e in events
            ).encode()
            files["outbox.json"] = _json(outbox.stats().as_dict())
        finally:
            outbox.close()
    for device, probe in _devices(config, status.agent.running).items():
        files[f"devices/{device}.json"] = _json(redact(probe))
    metrics = _metrics(config)
    if metrics is not None:
        files["metrics.txt"] = metrics
    files.update(_logs(config))
    # Every file, whatever its source (agent status, device probes, the agent's own log):
    # no secret value, URL userinfo or secret query parameter leaves in the bundle.
    files = {name: REDACTOR.data(data) for name, data in files.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    root = f"lane-{config.checkpoint}-{config.lane}-{time.strftime('%Y%m%dT%H%M%S')}"
    with tarfile.open(out, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(f"{root}/{name}")
            info.size = len(data)
            info.mtime = int(time.time())
            info.mode = 0o644
            tar.addfile(info, io.BytesIO(data))
    out.chmod(0o600)
    return BundleOutput(
        out=str(out), bytes=out.stat().st_size, files=sorted(files), redacted=redacted
    )


def _json(value: Any) -> bytes:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str).encode()
