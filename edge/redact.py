"""One redaction for everything that leaves the process: log, device status, diag, bundles.

A secret can reach an output by three ways, and each is closed here:

* **its value**: the config's resolved secrets (``SecretRef.read()``), and the password and
  secret query parameters of every URL in a device's options, are remembered
  (``remember(config)``) and replaced wherever they appear, also percent-, JSON- or
  repr-escaped. Values shorter than ``MIN_SECRET_LEN`` are not replaced by value (every
  ``a`` in the log would go); the two structural rules below still apply to them.
* **a URL's userinfo** (RFC 3986 section 3.2.1, ``scheme://user:password@host``): the whole
  userinfo becomes ``<redacted>``, up to the netloc's last ``@``, as urllib splits it.
* **a secret-named parameter** (``?password=``, ``&pwd=``, ``token=``, ``auth=``, ``key=`` ...,
  the form Dahua- and Axis-style camera URLs and many CGI APIs use): its value goes.

Boundaries that apply it: every log record (``install_log_redaction``, from `lane run`: a
record factory, so every handler, also one added later, gets redacted text), the agent's
device status and metrics reason (``edge.acquire``, ``edge.health``), the control socket replies
that `lane diag` reads, what `lane diag` prints, and every file of `lane diag bundle`
(``edge.diag.bundle``).
"""

from __future__ import annotations

import contextlib
import json
import logging
import re
import sys
import threading
import traceback
from collections.abc import Iterable
from types import TracebackType
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlsplit

if TYPE_CHECKING:
    from edge.config import LaneConfig

REDACTED = "<redacted>"
MIN_SECRET_LEN = 4
_SECRET_WORD = r"pass(?:word|wd|phrase)?|pwd|secret|token|api_?key|private_?key|credential"
# In a URL's query also these (``?auth=``, ``&key=``, ``&sig=``); in free text they are words.
_QUERY_WORD = rf"{_SECRET_WORD}|auth|key|sig|signature"
# Keys of structured data whose value is a secret (the config, driver options).
SECRET_KEY = re.compile(_SECRET_WORD, re.I)
# scheme://userinfo@ : greedy up to the netloc's last '@' (the netloc ends at / ? # or space;
# quotes and backslashes end it too, so a match never spans JSON or repr quoting).
URL_USERINFO = re.compile(r"(?P<scheme>\b[a-z][a-z0-9+.-]{0,31}://)[^/?#\s\"'\\]{1,512}@", re.I)
# name=value where the name says secret; bounded quantifiers keep it linear on long lines.
_VALUE = r"[^&#;\s'\"<>]+"
SECRET_PARAMETER = re.compile(
    rf"(?P<name>\b[\w.-]{{0,32}}(?:{_SECRET_WORD})[\w.-]{{0,32}}=){_VALUE}", re.I
)
QUERY_PARAMETER = re.compile(
    rf"(?P<name>[?&;][\w.-]{{0,32}}(?:{_QUERY_WORD})[\w.-]{{0,32}}=){_VALUE}", re.I
)
QUERY_NAME = re.compile(_QUERY_WORD, re.I)


def _variants(secret: str) -> set[str]:
    """How a value may be written in an output: as is, in a URL, in JSON, in a repr."""
    return {
        secret,
        quote(secret, safe=""),
        quote_plus(secret, safe=""),
        json.dumps(secret)[1:-1],
        repr(secret)[1:-1],
    }


def url_secrets(url: str) -> list[str]:
    """The password in a URL's userinfo and the values of its secret-named query parameters."""
    found: list[str] = []
    try:
        parts = urlsplit(url)
        password = parts.password
    except ValueError:
        return found
    if password:
        found += [password, unquote(password)]
    for name, value in parse_qsl(parts.query, keep_blank_values=False):
        if QUERY_NAME.search(name):
            found.append(value)
    return found


def _strings(value: Any) -> Iterable[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for item in value.values():
            yield from _strings(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from _strings(item)


def config_secrets(config: LaneConfig) -> list[str]:
    """Every secret value of ``config`` that can be read here, and those inside its URLs."""
    from edge.errors import SecretError

    found: list[str] = []
    for _path, ref in config.secrets():
        with contextlib.suppress(SecretError):  # one not readable here cannot be printed here
            found.append(ref.read())
    for device in config.devices:
        for text in _strings(device.model_extra or {}):
            if "://" in text:
                found += url_secrets(text)
    return found


class Redactor:
    """Replaces remembered secret values and URL credentials in text and data."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets: set[str] = set()
        self._pattern: re.Pattern[str] | None = None
        self._lock = threading.Lock()
        self.add(secrets)

    def add(self, secrets: Iterable[str]) -> None:
        with self._lock:
            for secret in secrets:
                if len(secret) >= MIN_SECRET_LEN:
                    self._secrets |= {v for v in _variants(secret) if len(v) >= MIN_SECRET_LEN}
            if self._secrets:
                ordered = sorted(self._secrets, key=len, reverse=True)  # longest first
                self._pattern = re.compile("|".join(map(re.escape, ordered)))

    def text(self, text: str) -> str:
        pattern = self._pattern
        if pattern is not None:
            text = pattern.sub(REDACTED, text)
        text = URL_USERINFO.sub(rf"\g<scheme>{REDACTED}@", text)
        text = QUERY_PARAMETER.sub(rf"\g<name>{REDACTED}", text)
        return SECRET_PARAMETER.sub(rf"\g<name>{REDACTED}", text)

    def value(self, value: Any, path: str = "", found: list[str] | None = None) -> Any:
        """A copy with secret-named keys' values and every string redacted; ``found`` gets
        the key paths that changed."""
        if isinstance(value, dict):
            out = {}
            for key, item in value.items():
                where = f"{path}.{key}" if path else str(key)
                if SECRET_KEY.search(str(key)) and item is not None and not isinstance(item, bool):
                    out[key] = REDACTED
                    if found is not None:
                        found.append(where)
                else:
                    out[key] = self.value(item, where, found)
            return out
        if isinstance(value, list | tuple):
            return [self.value(item, f"{path}.{i}", found) for i, item in enumerate(value)]
        if isinstance(value, str):
            clean = self.text(value)
            if clean != value and found is not None:
                found.append(path)
            return clean
        return value

    def data(self, data: bytes) -> bytes:
        """Bytes of a text file (a log tail may hold any byte: kept as they were)."""
        return self.text(data.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")


# The process's redactor: `lane run` and `lane diag` feed it the config they loaded.
REDACTOR = Redactor()


def remember(config: LaneConfig) -> None:
    REDACTOR.add(config_secrets(config))


def redact_text(text: str) -> str:
    return REDACTOR.text(text)


def redact_value(value: Any, found: list[str] | None = None) -> Any:
    return REDACTOR.value(value, found=found)


_installed = False


def install_log_redaction() -> None:
    """From now on every log record's text (message, arguments, traceback) is redacted when
    the record is made, and uncaught exceptions are logged (redacted) instead of printed."""
    global _installed
    if _installed:
        return
    _installed = True
    make_record = logging.getLogRecordFactory()

    def redacting_record(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = make_record(*args, **kwargs)
        try:
            message = record.getMessage()
        except Exception:  # a bad format string must not lose the line
            message = f"{record.msg!r} {record.args!r}"
        if record.exc_info and record.exc_info[0] is not None:
            message += "\n" + "".join(traceback.format_exception(*record.exc_info)).rstrip()
        if record.stack_info:
            message += "\n" + record.stack_info
        record.msg = redact_text(message)
        record.args = None
        record.exc_info = None
        record.exc_text = None
        record.stack_info = None
        return record

    logging.setLogRecordFactory(redacting_record)
    crash = logging.getLogger("lane")

    def process_hook(
        kind: type[BaseException], error: BaseException, tb: TracebackType | None
    ) -> None:
        crash.critical("uncaught %s", kind.__name__, exc_info=(kind, error, tb))

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        # The exception carries its own traceback (args.exc_traceback is the same object).
        crash.critical("thread %s died", name, exc_info=args.exc_value)

    sys.excepthook = process_hook
    threading.excepthook = thread_hook
