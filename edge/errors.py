"""The lane agent's error tree.

    LaneError                      base of every error the agent raises on purpose
    ├── ConfigError                the lane config is wrong: a human must fix it (exit 2)
    ├── SecretError                a referenced secret cannot be read (exit 2)
    ├── AlreadyRunningError        another agent holds the lane lock (exit 3)
    ├── StageError                 a part the lane cannot run without failed (fusion, the
    │                              outbox writer, the publisher thread): exit 1, systemd
    │                              restarts the agent (edge.supervisor)
    ├── OutboxError                the durable store cannot be used (exit 4)
    │   └── StorageError           transient: a write failed (disk full, I/O error, locked);
    │                              crossings are held in memory and the write retried
    └── DeviceError                a device does not answer or refuses a diag command (exit 5);
                                   drivers raise their own tree (drivers.errors)

Each class carries the process exit code the `lane` command uses for it.
"""

from __future__ import annotations

from dataclasses import dataclass


class LaneError(Exception):
    exit_code = 1


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One problem in a config file, located as precisely as the YAML allows."""

    file: str
    line: int | None
    column: int | None
    path: str
    message: str
    secret: bool = False  # a secret that does not resolve here; the structure is fine

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        key = f" {self.path}:" if self.path else ""
        return f"{where}:{key} {self.message}"


class ConfigError(LaneError):
    exit_code = 2

    def __init__(self, problems: list[ConfigProblem]) -> None:
        self.problems = problems
        super().__init__("\n".join(str(p) for p in problems))


class SecretError(LaneError):
    exit_code = 2


class AlreadyRunningError(LaneError):
    exit_code = 3


class StageError(LaneError):
    """A fatal part of the agent raised; its traceback is logged once (edge.supervisor)."""

    exit_code = 1


class OutboxError(LaneError):
    exit_code = 4


class StorageError(OutboxError):
    """A write to the outbox failed; ``alarm`` is the lane alarm it raises.

    ``storage.full`` for a full disk (SQLITE_FULL), ``storage.error`` for anything else the
    store reports at run time (SQLITE_IOERR, SQLITE_BUSY past the busy timeout, ...).
    """

    def __init__(self, message: str, *, full: bool) -> None:
        super().__init__(message)
        self.full = full

    @property
    def alarm(self) -> str:
        return "storage.full" if self.full else "storage.error"


class DeviceError(LaneError):
    exit_code = 5
