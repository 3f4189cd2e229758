"""Errors raised by device drivers.

    DriverError                    base of every error a driver raises on purpose
    ├── DriverConfigError          options are wrong: a human must fix them (never retried)
    ├── MissingExtraError          a driver's optional dependency is not installed
    ├── UnsupportedCommandError    the device/protocol cannot do what was asked
    ├── DriverConnectionError      transient: the link could not be opened or dropped
    ├── DriverTimeoutError         transient: no answer/no data within the device timeout
    └── DriverProtocolError        transient: a malformed frame; carries the last raw frames

Transient errors make the driver reconnect with capped backoff; the others stop it.
Kept independent of ``edge`` so drivers and simulators can be used on their own.
"""

from __future__ import annotations


class DriverError(Exception):
    """Base class. ``fault`` names the fault counter the error increments."""

    fault = "error"
    transient = False


class DriverConfigError(DriverError):
    fault = "config"


class MissingExtraError(DriverError):
    fault = "config"

    def __init__(self, kind: str, module: str, extra: str) -> None:
        super().__init__(
            f"driver {kind!r} needs the Python module {module!r}: "
            f"install it with `pip install lane-agent[{extra}]` (or `pip install {module}`)"
        )


class UnsupportedCommandError(DriverError):
    fault = "unsupported"


class DriverConnectionError(DriverError):
    fault = "connection"
    transient = True


class DriverTimeoutError(DriverError):
    fault = "timeout"
    transient = True


class DriverProtocolError(DriverError):
    fault = "protocol"
    transient = True

    def __init__(self, message: str, *, raw_frames: tuple[bytes, ...] = ()) -> None:
        super().__init__(message)
        self.raw_frames = raw_frames
