"""Logging to stderr; under systemd, to the journal with priorities and structured fields.

Three cases, chosen once at start:

* stderr is a terminal or a file: ``12:00:01 WARNING edge.lane: message  device=scale``.
* stderr is journald's stream (``$JOURNAL_STREAM`` names stderr's device and inode) and the
  journal's native socket is there: each record is one datagram with ``MESSAGE``,
  ``PRIORITY``, ``SYSLOG_IDENTIFIER`` and the lane's fields ``CHECKPOINT``, ``LANE``,
  ``DEVICE``, ``CROSSING_ID``, so ``journalctl -u lane@T3 DEVICE=scale`` works. The native
  protocol is a few lines (systemd's ``man/journal-native-protocol``); no C extension needed.
* journald's stream without the socket: ``<4>edge.lane: message``, the sd-daemon prefix that
  journald turns into the entry's priority.

Structured fields come from ``extra={"device": ..., "crossing_id": ...}`` on a log call and
from ``set_lane_context(checkpoint, lane)``, called once by the agent.
"""

from __future__ import annotations

import contextlib
import logging
import logging.handlers
import os
import socket
import struct
import sys
import threading
from pathlib import Path
from typing import TextIO

JOURNAL_SOCKET = "/run/systemd/journal/socket"

_SYSLOG_LEVEL = {
    logging.CRITICAL: 2,
    logging.ERROR: 3,
    logging.WARNING: 4,
    logging.INFO: 6,
    logging.DEBUG: 7,
}
# Record attribute -> journal field. Drivers and the pipeline pass these in ``extra``.
RECORD_FIELDS = {"device": "DEVICE", "crossing_id": "CROSSING_ID", "event_id": "EVENT_ID"}
_context: dict[str, str] = {}


def set_lane_context(checkpoint: str, lane: str) -> None:
    """Fields added to every journal entry of this process."""
    _context.update(CHECKPOINT=checkpoint, LANE=lane)


# Libraries whose own retry chatter a driver already reports as health and fault counts.
QUIET_LIBRARIES = ("pymodbus",)


class _Demote(logging.Filter):
    """A library's WARNING/ERROR lines become DEBUG: shown only when debugging."""

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno >= logging.CRITICAL:
            return True
        record.levelno, record.levelname = logging.DEBUG, "DEBUG"
        return logging.getLogger().isEnabledFor(logging.DEBUG)


def quiet_library_logs() -> None:
    """Keep pymodbus' own logging below WARNING (called once at agent start).

    pymodbus logs every failed connect and every timeout of a dead device at WARNING or
    ERROR, once per retry; the driver already turns those into one DOWN line and counted
    faults (``lane_device_faults_total``)."""
    for name in QUIET_LIBRARIES:
        logger = logging.getLogger(name)
        if not any(isinstance(f, _Demote) for f in logger.filters):
            logger.addFilter(_Demote())
        child = logging.getLogger(f"{name}.logging")  # filters do not apply to children
        if not any(isinstance(f, _Demote) for f in child.filters):
            child.addFilter(_Demote())


def worth_logging(count: int) -> bool:
    """Whether the ``count``-th of a repeated fault is logged: the 1st, 10th, 100th and every
    1000th, so a flood from outside cannot flood the journal (the count itself is exported)."""
    return count in (1, 10, 100) or count % 1000 == 0


def syslog_priority(levelno: int) -> int:
    for level in (logging.CRITICAL, logging.ERROR, logging.WARNING, logging.INFO):
        if levelno >= level:
            return _SYSLOG_LEVEL[level]
    return 7


def _extras(record: logging.LogRecord) -> dict[str, str]:
    return {
        field: str(value)
        for attr, field in RECORD_FIELDS.items()
        if (value := getattr(record, attr, None)) is not None
    }


class TextFormatter(logging.Formatter):
    """Human lines; structured fields follow the message as ``key=value``."""

    def format(self, record: logging.LogRecord) -> str:
        text = super().format(record)
        extras = _extras(record)
        if extras:
            text += "  " + " ".join(f"{k.lower()}={v}" for k, v in extras.items())
        return text


class JournalPrefixFormatter(TextFormatter):
    """``<N>message``: journald maps the prefix to the entry's PRIORITY."""

    def format(self, record: logging.LogRecord) -> str:
        # A traceback spans lines; journald would store each line as its own entry, so
        # every line gets the prefix.
        prefix = f"<{syslog_priority(record.levelno)}>"
        return "\n".join(prefix + line for line in super().format(record).splitlines())


def _field(name: str, value: str) -> bytes:
    data = value.encode("utf-8", "replace")
    if b"\n" in data:
        # Binary-safe form: NAME\n, little-endian 64-bit length, value, \n.
        return name.encode() + b"\n" + struct.pack("<Q", len(data)) + data + b"\n"
    return name.encode() + b"=" + data + b"\n"


class JournalHandler(logging.Handler):
    """Sends each record to journald's native socket; falls back to ``fallback`` on error."""

    def __init__(self, fallback: logging.Handler, *, path: str = JOURNAL_SOCKET) -> None:
        super().__init__()
        self.path = path
        self.fallback = fallback
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
        self._socket.settimeout(1.0)
        self._send_lock = threading.Lock()
        self.failures = 0

    def message(self, record: logging.LogRecord) -> bytes:
        text = record.getMessage()
        if record.exc_info:
            text += "\n" + logging.Formatter().formatException(record.exc_info)
        fields: dict[str, str | None] = {
            "MESSAGE": f"{record.name}: {text}",
            "PRIORITY": str(syslog_priority(record.levelno)),
            "SYSLOG_IDENTIFIER": f"lane-{_context['LANE']}" if "LANE" in _context else "lane",
            "LOGGER": record.name,
            "CODE_FILE": record.pathname,
            "CODE_LINE": str(record.lineno),
            "CODE_FUNC": record.funcName,
            **_context,
            **_extras(record),
        }
        return b"".join(_field(k, v) for k, v in fields.items() if v)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            data = self.message(record)
            with self._send_lock:
                self._socket.sendto(data, self.path)
        except OSError:
            # Journal gone or the entry too large for a datagram: never lose the line.
            self.failures += 1
            self.fallback.handle(record)
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        self._socket.close()
        super().close()


def stream_is_journal(stream: TextIO, environ: dict[str, str] | None = None) -> bool:
    """True when ``$JOURNAL_STREAM`` ("dev:inode") names this stream's file."""
    value = (os.environ if environ is None else environ).get("JOURNAL_STREAM", "")
    try:
        device, inode = (int(x) for x in value.split(":"))
        stat = os.fstat(stream.fileno())
    except (ValueError, OSError, AttributeError):
        return False
    return (stat.st_dev, stat.st_ino) == (device, inode)


LOG_FILE_NOTE = "log-file"  # <state_dir>/log-file: where `lane run --log-file` writes


def note_log_file(state_dir: Path, log_file: Path | None) -> None:
    """Tell `lane diag bundle` where this agent logs (nothing noted: the journal)."""
    note = state_dir / LOG_FILE_NOTE
    with contextlib.suppress(OSError):
        if log_file is None:
            note.unlink(missing_ok=True)
        else:
            state_dir.mkdir(parents=True, exist_ok=True)
            note.write_text(f"{log_file.resolve()}\n")


LOG_FILE_BYTES = 10 << 20  # a --log-file rotates at 10 MiB, keeping 5 old files
LOG_FILE_BACKUPS = 5


def setup_logging(
    level: str = "INFO", *, journal_socket: str | None = None, log_file: Path | None = None
) -> None:
    stream = sys.stderr
    text = logging.StreamHandler(stream)
    handler: logging.Handler = text
    if os.environ.get("JOURNAL_STREAM") and stream_is_journal(stream):
        text.setFormatter(JournalPrefixFormatter("%(name)s: %(message)s"))
        path = journal_socket or JOURNAL_SOCKET
        if os.path.exists(path):
            handler = JournalHandler(text, path=path)
    else:
        # Also when $JOURNAL_STREAM is inherited but stderr was redirected elsewhere.
        text.setFormatter(
            TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%H:%M:%S")
        )
    handlers = [handler]
    if log_file is not None:
        # A shell-run agent has no journal: its own rotated file (`lane run --log-file`).
        log_file.parent.mkdir(parents=True, exist_ok=True)
        rotating = logging.handlers.RotatingFileHandler(
            log_file, maxBytes=LOG_FILE_BYTES, backupCount=LOG_FILE_BACKUPS, encoding="utf-8"
        )
        rotating.setFormatter(
            TextFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S")
        )
        handlers.append(rotating)
    root = logging.getLogger()
    root.handlers[:] = handlers
    root.setLevel(level)
