"""SIGHUP: re-read the config and apply what needs no restart; say exactly what, key by key.

:class:`Reloader` (the agent's ``reloader`` part) compares the running config with the file
as it is now and returns a :class:`ReloadReport`; its :meth:`ReloadReport.line` is the one
log line a reload writes. Applied: ``telemetry`` and the outbox bounds in ``storage``
(``RELOADABLE``). Values are shown only for keys that are applied (telemetry, outbox bounds:
never secret); keys that need a restart are named without their values (they may hold
credentials). ``RELOADING=1`` / ``READY=1`` go to systemd around it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel

from edge.config import LaneConfig, load_config
from edge.errors import ConfigError
from edge.metrics import LaneMetrics
from edge.notify import Notifier
from edge.outbox import Outbox
from edge.writer import CrossingWriter

log = logging.getLogger(__name__)

# Config sections a SIGHUP applies; any other change is reported and waits for a restart.
RELOADABLE = ("telemetry", "storage")


@dataclass(frozen=True, slots=True)
class Change:
    key: str  # dotted: telemetry.interval_s
    old: object
    new: object

    def __str__(self) -> str:
        return f"{self.key} {self.old!r} -> {self.new!r}"


@dataclass(frozen=True, slots=True)
class ReloadReport:
    """The result of one reload; ``error`` set means nothing was applied."""

    path: str
    applied: list[Change] = field(default_factory=list)
    needs_restart: list[str] = field(default_factory=list)
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None

    def line(self, lane: str) -> str:
        if self.error is not None:
            return f"reload of {self.path} failed; keeping the running config:\n  {self.error}"
        applied = ", ".join(str(c) for c in self.applied) or "nothing"
        text = f"config reloaded from {self.path}: applied {applied}"
        if self.needs_restart:
            text += (
                f"; config changes that need a restart (systemctl restart lane@{lane}): "
                + ", ".join(self.needs_restart)
            )
        return text

    def as_dict(self) -> dict[str, object]:
        return {
            "path": self.path,
            "ok": self.ok,
            "applied": [{"key": c.key, "old": c.old, "new": c.new} for c in self.applied],
            "needs_restart": list(self.needs_restart),
            "error": self.error,
        }


def changes(old: object, new: object, prefix: str = "") -> list[Change]:
    """Every leaf that differs between two config models, as dotted keys.

    Nested models are walked field by field; anything else (lists of devices, secrets,
    paths) is one leaf compared as a whole.
    """
    if isinstance(old, BaseModel) and isinstance(new, BaseModel) and type(old) is type(new):
        out: list[Change] = []
        for name in type(old).model_fields:
            key = f"{prefix}.{name}" if prefix else name
            out += changes(getattr(old, name), getattr(new, name), key)
        return out
    return [] if old == new else [Change(prefix, old, new)]


class Reloader:
    """Applies reloads to the running agent: its config (``current`` / ``apply``), the
    outbox bounds and the crossing writer's limit; ``last`` is the latest report."""

    def __init__(
        self,
        requested: asyncio.Event,
        *,
        current: Callable[[], LaneConfig],
        apply: Callable[[LaneConfig], None],
        outbox: Outbox,
        writer: CrossingWriter,
        notifier: Notifier,
        metrics: LaneMetrics,
        status_line: Callable[[], str],
    ) -> None:
        self.requested = requested  # set by the SIGHUP handler
        self.current = current
        self.apply = apply
        self.outbox = outbox
        self.writer = writer
        self.notifier = notifier
        self.metrics = metrics
        self.status_line = status_line
        self.last: ReloadReport | None = None

    async def run(self) -> None:
        """The ``reloader`` part: one reload per SIGHUP."""
        while True:
            await self.requested.wait()
            self.requested.clear()
            try:
                await self.reload()
            except Exception:
                # A reload must never take the lane down (this task is a watched stage).
                log.exception("reload failed; keeping the running config")
                self.metrics.reloads.labels("failed").inc()

    async def reload(self) -> ReloadReport:
        """Re-read the config file and apply what needs no restart; say exactly what.

        Applied: ``telemetry`` and the outbox bounds in ``storage``. Anything else that changed
        (broker, identity, devices, recognition, state_dir, metrics) is named, key by key, in
        the same log line and waits for a restart. An invalid file changes nothing.
        """
        self.notifier.reloading()
        old = self.current()
        path = old.source
        try:
            try:
                new = await asyncio.to_thread(load_config, path)
            except ConfigError as exc:
                report = ReloadReport(str(path), error="\n  ".join(str(p) for p in exc.problems))
                log.error("%s", report.line(old.lane))
                self.metrics.reloads.labels("failed").inc()
                self.last = report
                return report
            storage = new.storage.model_copy(update={"state_dir": old.storage.state_dir})
            updated = old.model_copy(update={"telemetry": new.telemetry, "storage": storage})
            updated._source = old.source
            applied = [
                c
                for name in RELOADABLE
                for c in changes(getattr(old, name), getattr(updated, name), name)
            ]
            needs_restart = sorted(
                c.key
                for c in changes(old, new)
                if c.key.split(".", 1)[0] not in RELOADABLE or c.key == "storage.state_dir"
            )
            self.apply(updated)
            outbox = self.outbox
            outbox.max_rows = storage.max_rows
            outbox.max_bytes = storage.max_bytes
            outbox.alarm_fill = storage.alarm_fill
            outbox.live_window_ns = int(storage.live_window_s * 1e9)
            outbox.keep_crossings = storage.keep_crossings
            self.writer.limit = storage.held_events
            report = ReloadReport(str(path), applied=applied, needs_restart=needs_restart)
            level = logging.WARNING if needs_restart else logging.INFO
            log.log(level, "%s", report.line(old.lane))
            self.metrics.reloads.labels("applied").inc()
            self.last = report
            return report
        finally:
            self.notifier.notify("READY=1", f"STATUS={self.status_line()}")
