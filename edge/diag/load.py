"""Load the lane config for diag: secrets are optional until a command needs one.

A technician's shell has no ``$CREDENTIALS_DIRECTORY`` (systemd sets it for the agent only).
diag then looks in ``<config dir>/credentials/<lane>`` (``/etc/lane-agent/credentials/T1``,
the layout `lane install` makes). If the secrets still cannot be read, the config is loaded
without them, a warning names them, and only commands that need one fail (exit 2): status
through the running agent, outbox and explain work without any.
"""

from __future__ import annotations

import os
from pathlib import Path

from edge.config import LaneConfig, load_config
from edge.errors import ConfigError


def load_lane_config(path: Path) -> tuple[LaneConfig, list[str]]:
    """The config and the secret problems left unresolved (empty when all are readable)."""
    try:
        return load_config(path), []
    except ConfigError as exc:
        if not all(p.secret for p in exc.problems):
            raise
        first = exc
    config = load_config(path, secrets="skip")  # valid apart from the secrets (checked above)
    if "CREDENTIALS_DIRECTORY" not in os.environ:
        candidate = path.resolve().parent / "credentials" / config.lane
        if candidate.is_dir() and os.access(candidate, os.R_OK | os.X_OK):
            os.environ["CREDENTIALS_DIRECTORY"] = str(candidate)
            try:
                return load_config(path), []
            except ConfigError as exc:
                if not all(p.secret for p in exc.problems):
                    raise
                first = exc
    return config, [str(p) for p in first.problems]
