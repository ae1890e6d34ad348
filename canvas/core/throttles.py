"""Request throttles (DRF scoped throttles); rates from ``settings.THROTTLE_RATES``.

Scopes: ``auth`` (``POST /api/auth/token/``, counted per client address and, separately, per
username), ``start`` (run starts), ``chat`` (message sends and regenerations) and ``keys``
(key writes), each counted per user. The counters live in Django's default cache: Redis when
``REDIS_URL`` is set, so every process of a deployment shares them. A scope whose rate is
``None`` is not throttled. A replayed ``Idempotency-Key`` request (``start``, ``chat``) is not
counted. A refusal is DRF's ``Throttled``: 429 ``{"detail", "code":
"throttled"}`` with ``Retry-After``.

The socket's ``chat.send`` is counted too (``count_socket_message``), in the very bucket of the
user's REST sends, so switching transport neither dodges nor resets the limit; its refusal is
``ThrottledError``, an ``error`` message ``throttled`` with ``retry_after``.
"""

from __future__ import annotations

import hashlib
from types import SimpleNamespace

from django.conf import settings
from django.http import HttpResponse, JsonResponse
from rest_framework.throttling import BaseThrottle, SimpleRateThrottle

from canvas.core.exceptions import ThrottledError


class ScopedThrottle(SimpleRateThrottle):
    """Counted per user (per client address when anonymous) under ``scope``."""

    scope: str = ""

    def get_rate(self):
        # Read per request (not at import as DRF does), so settings overrides apply.
        return settings.THROTTLE_RATES.get(self.scope)

    def get_cache_key(self, request, view):
        user = request.user
        ident = f"user-{user.pk}" if user and user.is_authenticated else self.get_ident(request)
        return f"throttle:{self.scope}:{ident}"

    def allow_user(self, user) -> bool:
        """``allow_request`` for a message of ``user`` that is not an HTTP request (a socket
        message): the same per-user cache key, history and rate as the user's requests."""
        return SimpleRateThrottle.allow_request(self, SimpleNamespace(user=user), None)


class StartingThrottle(ScopedThrottle):
    """For POSTs that honour ``Idempotency-Key``: a replay of a request whose answer is stored
    is neither refused nor counted (it creates nothing, and a client retrying after a lost
    answer must get that answer, not a 429). A retry while the first is in flight (409) or
    with another body (422) is counted like any request."""

    def allow_request(self, request, view):
        from canvas.core.idempotency import is_replay

        if self.rate is not None and is_replay(request):
            return True
        return super().allow_request(request, view)


class StartThrottle(StartingThrottle):
    scope = "start"


class ChatThrottle(StartingThrottle):
    scope = "chat"


class KeysThrottle(ScopedThrottle):
    scope = "keys"


def count_socket_message(throttle_class: type[ScopedThrottle], *, user) -> None:
    """Count a socket message of ``user`` against ``throttle_class``'s scope, in the bucket the
    user's REST requests of that scope use. Past the rate it is refused and not counted, as DRF
    does: ``ThrottledError`` with the wait. Sync (the cache may be Redis): call it from a
    thread."""
    throttle = throttle_class()
    if not throttle.allow_user(user):
        raise ThrottledError(wait=throttle.wait())


class AuthAddressThrottle(ScopedThrottle):
    """Token requests per client address (``REMOTE_ADDR``, or ``X-Forwarded-For`` with
    ``NUM_PROXIES``, as DRF reads it)."""

    scope = "auth"

    def get_cache_key(self, request, view):
        return f"throttle:auth:address:{self.get_ident(request)}"


class AuthUsernameThrottle(ScopedThrottle):
    """Token requests per username, from any address (a spread-out guess at one account)."""

    scope = "auth"

    def get_cache_key(self, request, view):
        data = request.data
        username = data.get("username") if hasattr(data, "get") else None
        if not isinstance(username, str) or not username:
            return None
        # Hashed: a cache key is a bounded, safe string whatever the client sent.
        digest = hashlib.sha256(username.casefold().encode()).hexdigest()[:32]
        return f"throttle:auth:username:{digest}"


def client_address(request) -> str:
    """The client's address as every throttle reads it (``REMOTE_ADDR``, or the address the
    last of ``NUM_PROXIES`` proxies saw); django-axes uses it too (``AXES_CLIENT_IP_CALLABLE``)."""
    return BaseThrottle().get_ident(request)


def login_lockout_response(request, original_response=None, credentials=None):
    """django-axes' answer to a locked-out login: 429 with ``Retry-After``; JSON ``{"detail",
    "code": "throttled"}`` under ``/api/``, a plain page elsewhere."""
    from canvas.core.exceptions import error_body
    from canvas.core.middleware import is_api_path

    seconds = int(settings.AXES_COOLOFF_TIME.total_seconds())
    detail = f"Too many failed login attempts: try again in {max(1, seconds // 60)} minutes."
    if is_api_path(request.path):
        response = JsonResponse(error_body(429, detail, "throttled"), status=429)
    else:
        response = HttpResponse(detail, status=429, content_type="text/plain; charset=utf-8")
    response["Retry-After"] = str(seconds)
    return response
