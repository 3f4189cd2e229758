"""Bounded HTTP for cameras: httpx with a deadline, a body limit and header limits.

httpx does HTTP/1.1 and digest authentication (RFC 7616: MD5, SHA-256 and their -sess
variants). What a broken or hostile camera needs on top is added here, below httpx:

- **A deadline per exchange** (connect, the digest round trip, headers, body). httpx's own
  timeouts are per socket operation, so a camera trickling one byte at a time never trips
  them; here every socket read and write of the exchange gets ``min(timeout, time left)``
  from a network backend under httpcore, and none starts after the deadline.
- **A body limit** counted on the raw bytes as they arrive: a Content-Length over it is
  refused before the body is read, a chunked or close-delimited body is cut at the limit.
  It also bounds the 401 bodies httpx reads during the digest handshake. Streams (MJPEG)
  have no total, their parts are bounded by the multipart parser.
- **Header limits**: count and total size (h11 itself refuses a header block over 100 KiB,
  so that much is the most ever buffered). No content coding (``Accept-Encoding: identity``;
  a compressed answer is refused, never inflated).
- **No downgrade**: digest unless the config says ``auth: basic``. A camera that answers a
  digest client with only a Basic challenge is refused and the password never leaves the
  agent; credentials in the URL are never sent as Basic by httpx's URL fallback.

A client is used by one thread at a time (the camera's one capture worker, or one fetch).
"""

from __future__ import annotations

import contextlib
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, Literal

import httpcore
import httpx
from pydantic import Field, SecretStr

from drivers.errors import (
    DriverConfigError,
    DriverConnectionError,
    DriverError,
    DriverProtocolError,
    DriverTimeoutError,
)
from drivers.options import StrictOptions

MAX_BODY_BYTES = 16 * 1024 * 1024
H11_HEADER_LIMIT = 100 * 1024  # httpcore's h11 max_incomplete_event_size


class HttpOptions(StrictOptions):
    """Limits and auth of a camera's HTTP exchanges (snapshot, MJPEG ``reader: http``, ISAPI)."""

    auth: Literal["digest", "basic"] = Field(
        "digest",
        description="digest (RFC 7616); basic sends the password in clear on every request: "
        "only for a camera that cannot do digest. A Basic challenge under digest is refused.",
    )
    max_body_bytes: int = Field(
        MAX_BODY_BYTES, ge=64 * 1024, le=256 * 1024 * 1024, description="Largest HTTP body."
    )
    max_headers: int = Field(100, ge=8, le=1000, description="Most header lines in an answer.")
    max_header_bytes: int = Field(
        16 * 1024, ge=1024, le=H11_HEADER_LIMIT, description="Largest header block."
    )
    connect_timeout_ms: int | None = Field(
        None, ge=10, le=120_000, description="TCP connect. Default: the device's timeout_ms."
    )
    read_timeout_ms: int | None = Field(
        None, ge=10, le=120_000, description="Silence mid-answer. Default: the device's timeout_ms."
    )
    exchange_timeout_ms: int | None = Field(
        None,
        ge=10,
        le=300_000,
        description="A whole exchange (connect, digest round trip, headers, body); for an MJPEG "
        "stream each part. Default: the device's timeout_ms.",
    )


class HttpLimitError(DriverProtocolError):
    """The camera's answer breaks a configured limit (body, headers, coding)."""

    fault = "http_limit"


class AuthRefusedError(DriverConnectionError):
    """401/403: the login is wrong or missing (transient: a camera can be re-provisioned)."""

    fault = "auth"


class AuthDowngradeError(DriverConnectionError):
    """The camera asked for Basic while the config says digest: refused, password not sent."""

    fault = "auth_downgrade"


@dataclass(frozen=True, slots=True)
class HttpReply:
    content_type: str
    body: bytes


class _Exchange:
    """The running exchange of one client: its deadline and body limit (read by the sockets)."""

    def __init__(self) -> None:
        self.deadline: float | None = None
        self.budget_s = 0.0
        self.max_body: int | None = None

    def start(self, budget_s: float, max_body: int | None) -> None:
        self.budget_s = budget_s
        self.deadline = time.monotonic() + budget_s
        self.max_body = max_body

    def extend(self) -> None:
        """A new budget from now (an MJPEG stream: one per part)."""
        self.deadline = time.monotonic() + self.budget_s

    def end(self) -> None:
        self.deadline = None

    def clamp(self, timeout: float | None) -> float | None:
        if self.deadline is None:
            return timeout
        left = self.deadline - time.monotonic()
        if left <= 0:
            raise _DeadlinePassed()
        return left if timeout is None else min(timeout, left)

    def passed(self) -> bool:
        return self.deadline is not None and time.monotonic() >= self.deadline


class _DeadlinePassed(httpcore.TimeoutException):
    pass


class _DeadlineStream(httpcore.NetworkStream):
    def __init__(self, inner: httpcore.NetworkStream, exchange: _Exchange) -> None:
        self._inner = inner
        self._exchange = exchange

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        try:
            return self._inner.read(max_bytes, self._exchange.clamp(timeout))
        except httpcore.ReadTimeout:
            if self._exchange.passed():
                raise _DeadlinePassed() from None
            raise

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        try:
            self._inner.write(buffer, self._exchange.clamp(timeout))
        except httpcore.WriteTimeout:
            if self._exchange.passed():
                raise _DeadlinePassed() from None
            raise

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self,
        ssl_context: Any,
        server_hostname: str | None = None,
        timeout: float | None = None,
    ) -> httpcore.NetworkStream:
        inner = self._inner.start_tls(ssl_context, server_hostname, self._exchange.clamp(timeout))
        return _DeadlineStream(inner, self._exchange)

    def get_extra_info(self, info: str) -> Any:
        return self._inner.get_extra_info(info)


class _DeadlineBackend(httpcore.NetworkBackend):
    def __init__(self, exchange: _Exchange) -> None:
        self._inner = httpcore.SyncBackend()
        self._exchange = exchange

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        stream = self._inner.connect_tcp(
            host, port, self._exchange.clamp(timeout), local_address, socket_options
        )
        return _DeadlineStream(stream, self._exchange)

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Any = None
    ) -> httpcore.NetworkStream:
        raise httpcore.UnsupportedProtocol("cameras are reached over TCP")

    def sleep(self, seconds: float) -> None:
        self._inner.sleep(seconds)


class _LimitedBody(httpx.SyncByteStream):
    def __init__(self, response: httpcore.Response, exchange: _Exchange, errors: _Errors) -> None:
        self._response = response
        self._limit = exchange.max_body
        self._errors = errors

    def __iter__(self) -> Iterator[bytes]:
        received = 0
        stream: Iterable[bytes] = self._response.stream  # type: ignore[assignment]
        with self._errors.mapped(received=lambda: received):
            for chunk in stream:
                received += len(chunk)
                if self._limit is not None and received > self._limit:
                    raise HttpLimitError(
                        f"{self._errors.where}: body over {self._limit} bytes (max_body_bytes)"
                    )
                yield chunk

    def close(self) -> None:
        self._response.close()


class _Errors:
    """httpcore's exceptions as driver errors that say what happened and where."""

    def __init__(self, where: str, connect_s: float, read_s: float, exchange: _Exchange) -> None:
        self.where = where
        self.connect_s = connect_s
        self.read_s = read_s
        self.exchange = exchange

    @contextlib.contextmanager
    def mapped(self, *, received: Any = None) -> Iterator[None]:
        try:
            yield
        except DriverError:
            raise
        except _DeadlinePassed:
            got = f" ({received()} body bytes in)" if received is not None else ""
            raise DriverTimeoutError(
                f"{self.where}: exchange not finished within "
                f"{self.exchange.budget_s * 1000:.0f} ms{got} (stalled or trickling)"
            ) from None
        except httpcore.ConnectTimeout:
            raise DriverTimeoutError(
                f"{self.where}: no connection within {self.connect_s * 1000:.0f} ms"
            ) from None
        except httpcore.TimeoutException:
            where = "mid-answer" if received is not None else "before the answer"
            raise DriverTimeoutError(
                f"{self.where}: no data for {self.read_s * 1000:.0f} ms {where}"
            ) from None
        except httpcore.RemoteProtocolError as exc:
            if "too long" in str(exc):
                raise HttpLimitError(
                    f"{self.where}: header block over {H11_HEADER_LIMIT} bytes"
                ) from None
            raise DriverProtocolError(f"{self.where}: malformed HTTP: {exc}") from None
        except (httpcore.NetworkError, httpcore.UnsupportedProtocol, OSError) as exc:
            raise DriverConnectionError(f"{self.where}: {exc or type(exc).__name__}") from None
        except httpcore.ProtocolError as exc:
            raise DriverProtocolError(f"{self.where}: {exc}") from None


class _BoundedTransport(httpx.BaseTransport):
    def __init__(self, options: HttpOptions, exchange: _Exchange, errors: _Errors) -> None:
        self._options = options
        self._exchange = exchange
        self._errors = errors
        self._pool = httpcore.ConnectionPool(
            max_connections=1,
            max_keepalive_connections=1,
            keepalive_expiry=10.0,
            network_backend=_DeadlineBackend(exchange),
        )

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        core_request = httpcore.Request(
            method=request.method,
            url=httpcore.URL(
                scheme=request.url.raw_scheme,
                host=request.url.raw_host,
                port=request.url.port,
                target=request.url.raw_path,
            ),
            headers=request.headers.raw,
            content=request.stream,
            extensions=request.extensions,
        )
        with self._errors.mapped():
            response = self._pool.handle_request(core_request)
        try:
            self._check_head(response)
        except BaseException:
            response.close()
            raise
        return httpx.Response(
            status_code=response.status,
            headers=response.headers,
            stream=_LimitedBody(response, self._exchange, self._errors),
            extensions=response.extensions,
        )

    def _check_head(self, response: httpcore.Response) -> None:
        o, where = self._options, self._errors.where
        if len(response.headers) > o.max_headers:
            raise HttpLimitError(
                f"{where}: {len(response.headers)} header lines, over max_headers {o.max_headers}"
            )
        size = sum(len(k) + len(v) + 4 for k, v in response.headers)
        if size > o.max_header_bytes:
            raise HttpLimitError(
                f"{where}: {size} bytes of headers, over max_header_bytes {o.max_header_bytes}"
            )
        limit = self._exchange.max_body
        for key, value in response.headers:
            name = key.lower()
            if name == b"content-length" and limit is not None and int(value) > limit:
                raise HttpLimitError(
                    f"{where}: Content-Length {int(value)} over {limit} bytes (max_body_bytes)"
                )
            if name == b"content-encoding" and value.strip().lower() not in (b"", b"identity"):
                raise HttpLimitError(f"{where}: Content-Encoding {value.decode('latin-1')!r}")

    def close(self) -> None:
        self._pool.close()


class CameraHttp:
    """One camera's HTTP client. ``timeout_s`` is the device timeout (the default budgets)."""

    def __init__(
        self,
        url: str,
        options: HttpOptions,
        *,
        username: str | None,
        password: SecretStr | None,
        timeout_s: float,
    ) -> None:
        try:
            self.url, user, secret = split_credentials(url)
            parts = urllib.parse.urlsplit(self.url)
            parts.port  # noqa: B018  (raises ValueError on a port out of range)
        except ValueError as exc:
            raise DriverConfigError(f"camera URL {url!r}: {exc}") from None
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise DriverConfigError(f"camera URL {url!r}: not http:// or https://host/...")
        username = username if username is not None else user
        if password is None and secret is not None:
            password = SecretStr(secret)
        self.auth = options.auth
        self.has_login = username is not None
        # Errors name the URL as configured; the agent's one redaction (edge/redact.py) takes
        # its userinfo and secret query parameters out at every output.
        self.where = url
        self._exchange = _Exchange()
        self._exchange_s = _ms(options.exchange_timeout_ms, timeout_s)
        self._max_body = options.max_body_bytes
        connect_s = _ms(options.connect_timeout_ms, timeout_s)
        read_s = _ms(options.read_timeout_ms, timeout_s)
        self._errors = _Errors(self.where, connect_s, read_s, self._exchange)
        auth: httpx.Auth = httpx.Auth()  # no login; never httpx's URL userinfo -> Basic
        if username is not None:
            secret_text = password.get_secret_value() if password is not None else ""
            if options.auth == "basic":
                auth = httpx.BasicAuth(username, secret_text)
            else:
                auth = httpx.DigestAuth(username, secret_text)
        self._client = httpx.Client(
            transport=_BoundedTransport(options, self._exchange, self._errors),
            auth=auth,
            timeout=httpx.Timeout(read_s, connect=connect_s, pool=read_s),
            headers={"Accept-Encoding": "identity"},
            follow_redirects=False,
            trust_env=False,
        )

    def __enter__(self) -> CameraHttp:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with contextlib.suppress(Exception):
            self._client.close()

    def get(self, url: str | None = None) -> HttpReply:
        """One bounded GET: the whole body, or a DriverError."""
        with self.stream(url, budget_s=self._exchange_s, max_body=self._max_body) as response:
            body = response.read()  # through _LimitedBody: bounded, errors mapped
            return HttpReply(response.headers.get("content-type", ""), body)

    @contextlib.contextmanager
    def stream(
        self, url: str | None = None, *, budget_s: float | None = None, max_body: int | None = None
    ) -> Iterator[httpx.Response]:
        """A bounded GET whose body the caller reads (``iter_raw``), within ``budget_s``.

        ``extend()`` renews the budget (an MJPEG stream, after each part).
        """
        self._exchange.start(budget_s if budget_s is not None else self._exchange_s, max_body)
        try:
            with self._authenticated():
                request = self._client.build_request("GET", url or self.url)
                response = self._client.send(request, stream=True)
            try:
                self._check_status(response)
                yield response
            finally:
                response.close()
        finally:
            self._exchange.end()

    def extend(self, budget_s: float | None = None) -> None:
        if budget_s is not None:
            self._exchange.budget_s = budget_s
        self._exchange.extend()

    @contextlib.contextmanager
    def _authenticated(self) -> Iterator[None]:
        try:
            yield
        except DriverError:
            raise
        except (KeyError, ValueError, NotImplementedError, httpx.ProtocolError) as exc:
            # httpx's DigestAuth on a malformed or unsupported challenge (algorithm, auth-int).
            raise DriverProtocolError(f"{self.where}: unusable digest challenge: {exc}") from None
        except httpx.HTTPError as exc:  # what the URL checks in __init__ did not catch
            raise DriverConnectionError(f"{self.where}: {exc}") from None

    def _check_status(self, response: httpx.Response) -> None:
        status = response.status_code
        if 200 <= status < 300:
            return
        if status in (401, 403):
            schemes = {
                c.strip().split(" ", 1)[0].lower()
                for c in response.headers.get_list("www-authenticate")
            }
            if not self.has_login:
                raise AuthRefusedError(f"{self.where}: HTTP {status}: the camera wants a login")
            schemes.discard("")
            if status == 401 and self.auth == "digest" and schemes and "digest" not in schemes:
                offered = ", ".join(sorted(s.title() for s in schemes))
                raise AuthDowngradeError(
                    f"{self.where}: the camera asks for {offered} auth, the config says digest: "
                    "refused, the password was not sent (auth: basic only for a camera that "
                    "cannot do digest)"
                )
            raise AuthRefusedError(f"{self.where}: HTTP {status} (check username/password)")
        raise DriverConnectionError(f"{self.where}: HTTP {status}")


def split_credentials(url: str) -> tuple[str, str | None, str | None]:
    """(URL without userinfo, user, password) from ``http://user:pass@host/...``."""
    parts = urllib.parse.urlsplit(url)
    if "@" not in parts.netloc:
        return url, None, None
    userinfo, _, host = parts.netloc.rpartition("@")
    user, colon, secret = userinfo.partition(":")
    clean = urllib.parse.urlunsplit(parts._replace(netloc=host))
    return (
        clean,
        urllib.parse.unquote(user),
        urllib.parse.unquote(secret) if colon else None,
    )


def _ms(value: int | None, default_s: float) -> float:
    return value / 1000 if value is not None else default_s
