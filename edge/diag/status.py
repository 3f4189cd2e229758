"""`lane diag status`: the whole lane on one screen, agent running or not."""

from __future__ import annotations

import asyncio
import shutil
from pathlib import Path
from typing import Any

from edge.config import LaneConfig
from edge.diag import control
from edge.diag.devices import device_report, look_all
from edge.diag.errors import DiagError
from edge.diag.models import (
    AgentReport,
    BrokerReport,
    DiskReport,
    OutboxReport,
    StatusOutput,
)
from edge.errors import LaneError, OutboxError
from edge.outbox import Outbox

DISK_ALARM = 0.9


def read_outbox(config: LaneConfig) -> OutboxReport | None:
    """The outbox figures from the file (read-only), or None when the lane never ran."""
    path = config.storage.resolved_state_dir() / "outbox.db"
    if not path.exists():
        return None
    s = config.storage
    outbox = Outbox(
        path, max_rows=s.max_rows, max_bytes=s.max_bytes, alarm_fill=s.alarm_fill, read_only=True
    )
    try:
        return OutboxReport(path=str(path), **_stats(outbox))
    finally:
        outbox.close()


def _stats(outbox: Outbox) -> dict[str, Any]:
    stats = outbox.stats().as_dict()
    stats.pop("telemetry_evicted", None)
    return stats


def disk(state_dir: Path) -> DiskReport | None:
    probe = state_dir
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    try:
        usage = shutil.disk_usage(probe)
    except OSError:
        return None
    return DiskReport(
        path=str(state_dir),
        total_bytes=usage.total,
        free_bytes=usage.free,
        used_fraction=round(1 - usage.free / usage.total, 4) if usage.total else 0.0,
    )


def collect(config: LaneConfig, *, seconds: float | None = None) -> StatusOutput:
    state_dir = config.storage.resolved_state_dir()
    pid = control.agent_pid(state_dir)
    problems: list[str] = []
    if pid is not None:
        out = _from_agent(config, state_dir, pid, problems)
    else:
        out = _direct(config, seconds, problems)
    out.disk = disk(state_dir)
    out.problems = problems + _problems(out)
    return out


def _from_agent(config: LaneConfig, state_dir: Path, pid: int, problems: list[str]) -> StatusOutput:
    try:
        data = control.status(state_dir)
    except DiagError as exc:
        problems.append(f"the agent (pid {pid}) runs but does not answer: {exc}")
        outbox = None
        try:
            outbox = read_outbox(config)
        except OutboxError as error:
            problems.append(str(error))
        return StatusOutput(
            checkpoint=config.checkpoint,
            lane=config.lane,
            agent=AgentReport(
                running=True,
                pid=pid if pid > 0 else None,
                source="control socket",
                uptime_s=None,
                boot_seq=None,
                healthy=None,
            ),
            broker=None,
            outbox=outbox,
            devices=[],
            disk=None,
            problems=[],
        )
    stats = dict(data.outbox)
    stats.pop("telemetry_evicted", None)
    return StatusOutput(
        checkpoint=config.checkpoint,
        lane=config.lane,
        agent=AgentReport(
            running=True,
            pid=data.pid,
            source="control socket",
            uptime_s=data.uptime_s,
            boot_seq=data.boot_seq,
            healthy=data.healthy,
            stalled=data.stalled,
            crossings_total=data.crossings_total,
        ),
        broker=data.broker,
        outbox=OutboxReport(**stats),
        devices=data.devices,
        disk=None,
        problems=[],
    )


def _direct(config: LaneConfig, seconds: float | None, problems: list[str]) -> StatusOutput:
    from edge.diag import mqtt

    looks = asyncio.run(look_all(config, seconds=seconds)) if config.devices else {}
    devices = [
        device_report(name, result.probe.kind, result.health) for name, result in looks.items()
    ]
    m = config.mqtt
    try:
        mqtt.check(config, timeout_s=3.0, connect_only=True)
        broker = BrokerReport(host=m.host, port=m.port, connected=True, last_error=None)
    except LaneError as exc:
        broker = BrokerReport(host=m.host, port=m.port, connected=False, last_error=str(exc))
    outbox = None
    try:
        outbox = read_outbox(config)
    except OutboxError as exc:
        problems.append(str(exc))
    return StatusOutput(
        checkpoint=config.checkpoint,
        lane=config.lane,
        agent=AgentReport(
            running=False,
            pid=None,
            source="direct probe",
            uptime_s=None,
            boot_seq=outbox.boot_seq if outbox else None,
            healthy=None,
        ),
        broker=broker,
        outbox=outbox,
        devices=devices,
        disk=None,
        problems=[],
    )


def _problems(out: StatusOutput) -> list[str]:
    found = []
    if not out.agent.running:
        found.append(f"the lane agent is not running (systemctl start lane@{out.lane})")
    elif out.agent.stalled:
        found.append("agent stages stalled: " + "; ".join(out.agent.stalled))
    if out.broker is not None and not out.broker.connected:
        found.append(
            f"no broker connection to {out.broker.host}:{out.broker.port}"
            + (f": {out.broker.last_error}" if out.broker.last_error else "")
        )
    for device in out.devices:
        if device.state != "UP":
            found.append(
                f"device {device.id} is {device.state}"
                + (f": {device.last_error}" if device.last_error else "")
            )
    if out.outbox is not None:
        o = out.outbox
        if "outbox_full" in o.alarms:
            found.append(
                f"outbox FULL ({o.pending} pending): only crossings are still stored; "
                "check the broker connection"
            )
        elif "outbox_high" in o.alarms:
            found.append(f"outbox filling up ({o.pending} pending)")
        if o.rejected:
            found.append(
                f"{o.rejected} messages rejected by the broker "
                "(lane diag outbox list --rejected; then requeue)"
            )
    if out.disk is not None and out.disk.used_fraction >= DISK_ALARM:
        found.append(f"disk of {out.disk.path} is {out.disk.used_fraction:.0%} full")
    return found
