"""The one HTTP path out of the system.

``ApiAdapter`` owns a ``requests.Session`` (connection reuse), separate connect and read
timeouts, bounded retries and the mapping of failures to the typed errors of
``integrations.errors``. Provider clients (``ollama.py``, ``groq.py``) and the workflow ``http``
node call it; nothing else imports ``requests``.

Retries (design, Execution): the adapter retries a request that failed before its response
began: connection errors, connect/read timeouts, and the statuses 408, 409, 429 and 5xx, at most
``HTTP_MAX_RETRIES`` times (default 2, so 3 attempts), with capped exponential backoff and jitter,
and never sooner than ``Retry-After`` / ``retry-after-ms`` asked. A ``Retry-After`` beyond
``HTTP_RETRY_AFTER_CAP`` (default 60 s) is not waited for: it surfaces at once as
``RateLimited(retry_after=...)``. 400, 401, 403, 404, 413, 422 and Groq's 498 are never retried.
A stream that broke after it began is the caller's (the engine's) to retry.

Usage::

    adapter = ApiAdapter(provider="groq", base_url=settings.GROQ_BASE_URL,
                         headers={"Authorization": f"Bearer {key}"})
    data = adapter.request_json("GET", "models")
    stream = adapter.open_stream("POST", "chat/completions", json={...})  # ResponseStream

For user-supplied URLs pass ``guard=AddressGuard.from_settings()``: every request (and every
redirect hop, followed by hand) is checked and pinned to the checked address.
"""

from __future__ import annotations

import contextlib
import email.utils
import json as jsonlib
import logging
import random
import socket
import threading
import time
import weakref
from collections.abc import Callable, Iterable, Mapping
from datetime import UTC
from urllib.parse import urljoin, urlsplit

import requests
from django.conf import settings

from .errors import (
    AuthError,
    BadRequest,
    Cancelled,
    IntegrationError,
    NotFound,
    ProviderError,
    RateLimited,
    Unavailable,
)
from .guard import AddressGuard, PinnedHTTPAdapter
from .streaming import ResponseStream

logger = logging.getLogger(__name__)

RETRYABLE_STATUSES = frozenset({408, 409, 429})
REDIRECT_STATUSES = frozenset({301, 302, 303, 307, 308})
MAX_REDIRECTS = 5
MAX_ERROR_BODY = 64 * 1024

# (message, code) from an error response; clients parse their provider's error body.
ErrorParser = Callable[[requests.Response], tuple[str, str | None]]


class CancellableHTTPAdapter(PinnedHTTPAdapter):
    """Remembers every connection its pools create, so ``ApiAdapter.cancel()`` can shut them.

    A request blocked waiting for its response headers (Ollama loading a model, a slow server)
    sits in ``recv`` on a socket that nothing else can reach; shutting that socket down from
    another thread is what ends the wait at once.
    """

    def __init__(
        self,
        registry: weakref.WeakSet,
        lock: threading.Lock,
        cancelled: threading.Event | None = None,
        **kwargs,
    ):
        self._registry = registry
        self._registry_lock = lock
        self._cancelled = cancelled
        self._tracked_classes: dict[type, type] = {}
        super().__init__(**kwargs)

    def get_connection_with_tls_context(self, request, verify, proxies=None, cert=None):
        pool = super().get_connection_with_tls_context(request, verify, proxies, cert)
        base = pool.ConnectionCls
        if not getattr(base, "_canvas_tracked", False):
            tracked = self._tracked_classes.get(base)
            if tracked is None:
                registry, lock, cancelled = self._registry, self._registry_lock, self._cancelled

                def __init__(conn, *args, **kwargs):  # noqa: N807
                    base.__init__(conn, *args, **kwargs)
                    with lock:
                        registry.add(conn)

                def connect(conn):
                    base.connect(conn)
                    if cancelled is not None and cancelled.is_set():
                        # Cancelled while this connection was being made: cancel() found no
                        # socket to shut down, and the request would wait on this one.
                        with contextlib.suppress(OSError):
                            conn.sock.shutdown(socket.SHUT_RDWR)

                tracked = type(
                    f"Tracked{base.__name__}",
                    (base,),
                    {"__init__": __init__, "connect": connect, "_canvas_tracked": True},
                )
                self._tracked_classes[base] = tracked
            pool.ConnectionCls = tracked
        return pool


def is_retryable_status(status: int) -> bool:
    return status in RETRYABLE_STATUSES or 500 <= status <= 599


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    current = now if now is not None else time.time()
    return max(0.0, when.timestamp() - current)


def default_error_parser(response: requests.Response) -> tuple[str, str | None]:
    """Read ``{"error": "..."}``, ``{"error": {"message", "code"}}`` or plain text."""
    body = response.content[:MAX_ERROR_BODY]
    try:
        data = jsonlib.loads(body)
    except ValueError:
        text = body.decode("utf-8", errors="replace").strip()
        return (text[:500] or response.reason or f"HTTP {response.status_code}"), None
    if isinstance(data, dict):
        error = data.get("error", data)
        if isinstance(error, str):
            return error, None
        if isinstance(error, dict):
            message = error.get("message") or error.get("detail") or jsonlib.dumps(error)
            code = error.get("code") or error.get("type")
            return str(message), (str(code) if code is not None else None)
    return jsonlib.dumps(data)[:500], None


def error_for_status(
    *,
    provider: str,
    status: int,
    message: str,
    code: str | None = None,
    request_id: str | None = None,
    retry_after: float | None = None,
) -> IntegrationError:
    kwargs = {"provider": provider, "status": status, "request_id": request_id}
    if status == 429 or code == "rate_limit_exceeded":
        return RateLimited(message, retry_after=retry_after, **kwargs)
    if status in (401, 403):
        return AuthError(message, **kwargs)
    if status == 404:
        return NotFound(message, **kwargs)
    if status == 498:  # Groq: flex tier capacity exceeded
        return Unavailable(message, **kwargs)
    if status in (408, 409):
        return ProviderError(message, **kwargs)
    if 400 <= status < 500:
        return BadRequest(message, **kwargs)
    return ProviderError(message, **kwargs)


class ApiAdapter:
    """One remote API (or, with a guard, the open web) behind retries and typed errors."""

    def __init__(
        self,
        *,
        provider: str,
        base_url: str = "",
        headers: Mapping[str, str] | None = None,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        max_retries: int | None = None,
        retry_after_cap: float | None = None,
        backoff_base: float = 0.5,
        backoff_max: float = 8.0,
        error_parser: ErrorParser = default_error_parser,
        unreachable_hint: str = "",
        guard: AddressGuard | None = None,
        sleep: Callable[[float], None] | None = None,
    ):
        self.provider = provider
        self.base_url = base_url.rstrip("/")
        self.connect_timeout = (
            settings.HTTP_CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        )
        self.read_timeout = settings.HTTP_READ_TIMEOUT if read_timeout is None else read_timeout
        self.max_retries = settings.HTTP_MAX_RETRIES if max_retries is None else max_retries
        self.retry_after_cap = (
            settings.HTTP_RETRY_AFTER_CAP if retry_after_cap is None else retry_after_cap
        )
        self.backoff_base = backoff_base
        self.backoff_max = backoff_max
        self.error_parser = error_parser
        self.unreachable_hint = unreachable_hint
        self.guard = guard
        self._cancelled = threading.Event()
        # The default wait ends early on cancel(); a caller's sleep handles cancel itself.
        self.sleep = sleep if sleep is not None else self._cancelled.wait
        self._connections: weakref.WeakSet = weakref.WeakSet()
        self._connections_lock = threading.Lock()
        self.session = requests.Session()
        if headers:
            self.session.headers.update(headers)
        transport = CancellableHTTPAdapter(
            self._connections, self._connections_lock, self._cancelled
        )
        self.session.mount("http://", transport)
        self.session.mount("https://", transport)
        if guard is not None:
            # Proxy variables would connect on our behalf and bypass the pinned address.
            self.session.trust_env = False
        self.last_response_headers: Mapping[str, str] = {}

    # -- public API ----------------------------------------------------------------------------

    def url_for(self, path: str) -> str:
        """Join a path to the base URL, keeping the base's own path (``/openai/v1``).

        ``urljoin(base, "/models")`` would drop it, so a leading slash is ignored here.
        """
        if "://" in path or not self.base_url:
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self,
        method: str,
        path: str,
        *,
        json=None,
        data=None,
        params=None,
        headers: Mapping[str, str] | None = None,
        timeout: float | tuple[float, float] | None = None,
        stream: bool = False,
        max_retries: int | None = None,
        follow_redirects: bool = True,
        sensitive_headers: Iterable[str] = (),
    ) -> requests.Response:
        """Send with retries; a 2xx/3xx response is returned, anything else raises.

        ``sensitive_headers`` (names) carry credentials, like ``Authorization``: with a guard,
        both are dropped from every hop after a redirect to another origin (scheme, host or
        port), and stay dropped if a later hop comes back.
        """
        url = self.url_for(path)
        retries = self.max_retries if max_retries is None else max_retries
        timeout = self._timeout(timeout)
        attempt = 0
        while True:
            retry_after = None
            self._raise_if_cancelled()
            try:
                response = self._send(
                    method,
                    url,
                    json=json,
                    data=data,
                    params=params,
                    headers=headers,
                    timeout=timeout,
                    stream=stream,
                    follow_redirects=follow_redirects,
                    sensitive_headers=sensitive_headers,
                )
            except requests.exceptions.RequestException as exc:
                self._raise_if_cancelled(exc)
                error = self._transport_error(exc, timeout)
            else:
                self.last_response_headers = response.headers
                if response.status_code < 400:
                    # A ResponseStream over this body reports an adapter cancel as Cancelled.
                    response.canvas_cancel_event = self._cancelled
                    return response
                retry_after = parse_retry_after(response.headers)
                error = self._error_from(response, retry_after)
                response.close()
                if not is_retryable_status(response.status_code):
                    raise error
                if retry_after is not None and retry_after > self.retry_after_cap:
                    # Waiting that long silently would stall the run: let the caller decide.
                    if not isinstance(error, RateLimited):
                        error = RateLimited(
                            error.message,
                            retry_after=retry_after,
                            provider=self.provider,
                            status=error.status,
                            request_id=error.request_id,
                        )
                    raise error
            if attempt >= retries:
                raise error
            delay = self._backoff(attempt)
            if retry_after is not None:
                delay = max(delay, retry_after)
            logger.info(
                "%s: %s %s failed (%s); retry %d/%d in %.2f s",
                self.provider,
                method,
                urlsplit(url).path,
                error.code,
                attempt + 1,
                retries,
                delay,
            )
            self.sleep(delay)
            self._raise_if_cancelled()
            attempt += 1

    def request_json(self, method: str, path: str, **kwargs):
        """A non-streamed request whose 2xx body must be JSON."""
        response = self.request(method, path, **kwargs)
        try:
            return response.json()
        except ValueError as exc:
            raise ProviderError(
                f"expected JSON, got {response.headers.get('content-type', 'no content type')}",
                provider=self.provider,
                status=response.status_code,
                request_id=response.headers.get("x-request-id"),
            ) from exc

    def open_stream(self, method: str, path: str, **kwargs) -> ResponseStream:
        """Start a streamed request (retried until its response begins) and wrap its body."""
        response = self.request(method, path, stream=True, **kwargs)
        return ResponseStream(response, provider=self.provider)

    def close(self) -> None:
        """Cancel anything in flight and release the connections."""
        self.cancel()
        self.session.close()

    # -- internals -----------------------------------------------------------------------------

    def cancel(self) -> None:
        """Stop whatever this adapter has in flight, from any thread, within milliseconds.

        Every socket it opened is shut down: a request waiting for its response headers, a
        backoff wait and any later request end with ``Cancelled``. The adapter is done after
        this; make a new one (a new client) for more work.
        """
        self._cancelled.set()
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            sock = getattr(connection, "sock", None)
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)

    @property
    def cancelled(self) -> bool:
        return self._cancelled.is_set()

    def _raise_if_cancelled(self, cause: BaseException | None = None) -> None:
        if self._cancelled.is_set():
            raise Cancelled("the request was cancelled", provider=self.provider) from cause

    def _transport_error(self, exc: requests.exceptions.RequestException, timeout):
        if isinstance(exc, requests.exceptions.ConnectTimeout):
            error = Unavailable(
                self._unreachable(f"no connection within {timeout[0]:g} s"), provider=self.provider
            )
        elif isinstance(exc, requests.exceptions.ReadTimeout):
            error = Unavailable(
                f"no response within the read timeout of {timeout[1]:g} s", provider=self.provider
            )
        elif isinstance(exc, requests.exceptions.ConnectionError):
            error = Unavailable(self._unreachable(_describe(exc)), provider=self.provider)
        else:
            raise BadRequest(f"invalid request: {_describe(exc)}", provider=self.provider) from exc
        error.__cause__ = exc
        return error

    def _timeout(self, timeout) -> tuple[float, float]:
        if timeout is None:
            return (self.connect_timeout, self.read_timeout)
        if isinstance(timeout, tuple):
            return timeout
        return (self.connect_timeout, float(timeout))

    def _backoff(self, attempt: int) -> float:
        ceiling = min(self.backoff_max, self.backoff_base * (2**attempt))
        # Jitter spreads clients that failed together; S311: not for security.
        return ceiling * random.uniform(0.5, 1.0)  # noqa: S311

    def _unreachable(self, detail: str) -> str:
        message = f"cannot reach {self.base_url or 'the target'}: {detail}"
        return f"{message}. {self.unreachable_hint}" if self.unreachable_hint else message

    def _error_from(self, response: requests.Response, retry_after: float | None):
        try:
            message, code = self.error_parser(response)
        except Exception:  # noqa: BLE001 - a body we cannot parse still has a status
            message, code = (response.reason or f"HTTP {response.status_code}"), None
        return error_for_status(
            provider=self.provider,
            status=response.status_code,
            message=message,
            code=code,
            request_id=response.headers.get("x-request-id"),
            retry_after=retry_after,
        )

    def _send(
        self, method, url, *, headers, follow_redirects, sensitive_headers, **kwargs
    ) -> requests.Response:
        if self.guard is None:
            # Provider clients: their only credential is Authorization, which requests itself
            # strips on a redirect to another host.
            return self.session.request(
                method, url, headers=headers, allow_redirects=follow_redirects, **kwargs
            )
        return self._send_guarded(
            method,
            url,
            headers=dict(headers or {}),
            follow_redirects=follow_redirects,
            sensitive_headers=("Authorization", *sensitive_headers),
            **kwargs,
        )

    def _send_guarded(
        self,
        method,
        url,
        *,
        headers,
        follow_redirects,
        sensitive_headers,
        json,
        data,
        params,
        timeout,
        stream,
    ):
        first_origin = None
        left_origin = False
        for _hop in range(MAX_REDIRECTS + 1):
            target = self.guard.check(url)
            origin = (target.scheme, target.host.lower(), target.port)
            first_origin = first_origin or origin
            request = requests.Request(
                method, url, headers=headers, json=json, data=data, params=params
            )
            prepared = self.session.prepare_request(request)
            prepared.pinned_address = target.address
            left_origin = left_origin or origin != first_origin
            if left_origin:
                # Credentials meant for one origin never follow a redirect to another (and stay
                # dropped if a later hop comes back).
                for name in sensitive_headers:
                    prepared.headers.pop(name, None)
            # urllib3 would name the pinned IP in Host; the server must see the name.
            default_port = 443 if target.scheme == "https" else 80
            host = f"[{target.host}]" if ":" in target.host else target.host
            prepared.headers["Host"] = (
                host if target.port == default_port else f"{host}:{target.port}"
            )
            response = self.session.send(
                prepared, timeout=timeout, stream=stream, allow_redirects=False
            )
            if not (follow_redirects and response.status_code in REDIRECT_STATUSES):
                return response
            location = response.headers.get("location")
            if not location:
                return response
            response.close()
            url = urljoin(response.url, location)
            params = None  # the Location is a complete URL
            if response.status_code == 303 or (
                response.status_code in (301, 302) and method.upper() == "POST"
            ):
                method, json, data = "GET", None, None
                headers.pop("Content-Type", None)
        raise BadRequest(f"more than {MAX_REDIRECTS} redirects", provider=self.provider)


def _describe(exc: BaseException) -> str:
    """A short cause without the URL-and-traceback noise of requests' messages."""
    text = str(exc)
    for marker in ("Connection refused", "Name or service not known", "timed out", "reset"):
        if marker in text:
            return marker.lower()
    return text[:300]


class AdapterClient:
    """Base of the provider clients: each owns one ``ApiAdapter`` (one session)."""

    adapter: ApiAdapter

    def cancel(self) -> None:
        """From any thread: end a request still waiting for its response, and any retry wait.

        (A stream already handed out is cancelled with its own ``cancel()``.)
        """
        self.adapter.cancel()

    def close(self) -> None:
        """Cancel anything in flight and release the connections."""
        self.adapter.close()
