"""Diagnostic failures, one class per exit code (documented in docs/diagnostics.md).

LaneError (edge.errors)
├── ConfigError / SecretError     2  the config or a secret is wrong
├── OutboxError                   4  no outbox, or it cannot be read
├── DeviceError                   5  a device does not answer or refuses
└── DiagError
    ├── BrokerUnreachableError    6  no TCP connection / no CONNACK
    ├── BrokerTlsError            7  TLS handshake or certificate problem
    ├── BrokerAuthError           8  the broker refused the lane's credentials
    ├── BrokerAclError            9  logged in, but publish/subscribe is denied
    ├── LaneProblemsError        10  `status` found problems (they are listed)
    ├── NotFoundError            11  no such device, camera or crossing
    ├── DeclinedError            12  an action needs confirmation (--yes)
    └── UnsupportedError         13  the device cannot do what was asked
"""

from __future__ import annotations

from edge.errors import LaneError

EXIT_OK = 0


class DiagError(LaneError):
    exit_code = 1

    def __init__(self, message: str, report: object | None = None) -> None:
        super().__init__(message)
        self.report = report  # the partial --json report, when there is one


class BrokerUnreachableError(DiagError):
    exit_code = 6


class BrokerTlsError(DiagError):
    exit_code = 7


class BrokerAuthError(DiagError):
    exit_code = 8


class BrokerAclError(DiagError):
    exit_code = 9


class LaneProblemsError(DiagError):
    exit_code = 10


class NotFoundError(DiagError):
    exit_code = 11


class DeclinedError(DiagError):
    exit_code = 12


class UnsupportedError(DiagError):
    exit_code = 13
