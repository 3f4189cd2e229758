"""`probe`, `watch`, `scale`, `barrier`: through the running agent, else directly."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from datetime import UTC, datetime

from edge.config import DeviceConfig, LaneConfig
from edge.diag import control
from edge.diag.devices import (
    act_directly,
    describe,
    device_report,
    find_device,
    look,
    reading_fields,
    stream,
)
from edge.diag.errors import NotFoundError
from edge.diag.models import ActionOutput, DeviceReport, ProbeOutput, RawFrame, WatchSample


def _agent_runs(config: LaneConfig, device: DeviceConfig) -> bool:
    """The agent holds this device: ask it, never open the device a second time."""
    return device.enabled and control.agent_pid(config.storage.resolved_state_dir()) is not None


def _health_report(device: DeviceConfig, health: dict[str, object]) -> DeviceReport:
    return DeviceReport(
        id=device.id,
        kind=device.kind,
        state=str(health["state"]).upper(),
        connected=bool(health["connected"]),
        last_reading_age_s=health["last_reading_age_s"],
        readings=health["readings"],
        faults=health["faults"],
        reconnects=health["reconnects"],
        last_error=health["last_error"],
    )


def probe(config: LaneConfig, device_id: str, *, seconds: float | None = None) -> ProbeOutput:
    device = find_device(config, device_id)
    if _agent_runs(config, device):
        data = control.probe(config.storage.resolved_state_dir(), device.id)
        return ProbeOutput(
            device=_health_report(device, data["health"]),
            source="control socket",
            options=data["options"],
            identity=data["identity"],
            values=data["values"],
            first_reading_s=None,
            reading_interval_ms=None,
            raw_frames=[RawFrame(**f) for f in data["raw_frames"]],
        )
    result = asyncio.run(look(device, seconds=seconds))
    return ProbeOutput(
        device=device_report(device.id, device.kind, result.health),
        source="direct probe",
        options=result.probe.options,
        identity=result.probe.identity,
        values=result.probe.values,
        first_reading_s=result.first_reading_s,
        reading_interval_ms=result.interval_ms,
        round_trip_ms=result.round_trip_ms,
        raw_frames=[RawFrame(**f) for f in result.probe.raw_frames],
    )


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


def watch(
    config: LaneConfig, device_id: str, *, interval_s: float, count: int | None
) -> Iterator[WatchSample]:
    device = find_device(config, device_id)
    interval_s = max(0.05, interval_s)
    if _agent_runs(config, device):
        yield from _watch_agent(config, device, interval_s, count)
    else:
        yield from _watch_direct(device, interval_s, count)


def _watch_agent(
    config: LaneConfig, device: DeviceConfig, interval_s: float, count: int | None
) -> Iterator[WatchSample]:
    state_dir = config.storage.resolved_state_dir()
    shown = 0
    while count is None or shown < count:
        started = time.monotonic()
        data = control.probe(state_dir, device.id)
        report = _health_report(device, data["health"])
        values = data["values"]
        yield WatchSample(
            device=device.id,
            state=report.state,
            at=_now(),
            summary=values[-1] if values else f"no reading yet ({report.last_error or 'waiting'})",
            fields={"readings": report.readings, "last_reading_age_s": report.last_reading_age_s},
        )
        shown += 1
        time.sleep(max(0.0, interval_s - (time.monotonic() - started)))


def _watch_direct(
    device: DeviceConfig, interval_s: float, count: int | None
) -> Iterator[WatchSample]:
    loop = asyncio.new_event_loop()
    samples = stream(device, interval_s=interval_s)
    shown = 0
    try:
        while count is None or shown < count:
            try:
                driver, reading = loop.run_until_complete(anext(samples))
            except StopAsyncIteration:
                return
            health = driver.health()
            state = device_report(device.id, device.kind, health).state
            if reading is None:
                summary = f"no reading ({health.last_error or 'waiting for the device'})"
                fields = {}
            else:
                fields = reading_fields(reading)
                builder = getattr(driver, "builder", None)  # RPM: the background it alarms on
                if "counts" in fields and builder is not None:
                    fields["gamma_background_cps"] = getattr(builder, "gamma_background", None)
                summary = describe(fields)
            yield WatchSample(
                device=device.id, state=state, at=_now(), summary=summary, fields=fields
            )
            shown += 1
    finally:
        loop.run_until_complete(samples.aclose())
        loop.close()


def pick_device(config: LaneConfig, device_id: str | None, *, kind_prefixes: str) -> DeviceConfig:
    if device_id is not None:
        return find_device(config, device_id, kind_prefix=kind_prefixes)
    matches = [d for d in config.devices if d.kind.startswith(kind_prefixes) and d.enabled]
    if len(matches) != 1:
        what = kind_prefixes.rstrip(".")
        found = ", ".join(d.id for d in matches) or "none"
        raise NotFoundError(f"name the {what} device with --device (configured: {found})")
    return matches[0]


def act(config: LaneConfig, device: DeviceConfig, action: str) -> ActionOutput:
    if _agent_runs(config, device):
        done = control.action(config.storage.resolved_state_dir(), device.id, action)
        return ActionOutput(
            device=device.id, action=action, done=True, via="control socket", detail=done.detail
        )
    detail = asyncio.run(act_directly(device, action))
    return ActionOutput(device=device.id, action=action, done=True, via="direct", detail=detail)
