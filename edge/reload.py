"""What a SIGHUP reload applied and what waits for a restart, key by key (pure functions).

``LaneAgent.reload`` compares the running config with the file as it is now and returns a
:class:`ReloadReport`; its :meth:`ReloadReport.line` is the one log line a reload writes.
Values are shown only for keys that are applied (telemetry, outbox bounds: never secret);
keys that need a restart are named without their values (they may hold credentials).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from pydantic import BaseModel


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
