"""The key manager: stored provider keys, and resolving the one a call should use.

Other apps call ``key_resolve``, ``key_is_set`` and ``key_get_secret_by_name``; the API, the
admin and the commands write through ``api_key_create``, ``api_key_update`` and
``api_key_delete``, which keep the rules: at most one active key per owner and provider
(activating one deactivates the other), names unique per owner and provider, the hint derived
from the secret.

The plaintext leaves this module only as the return value of the three resolvers. It is never
logged, never put in an exception message, and the functions that hold it are marked
``sensitive_variables()`` (every local of theirs and of the frames they call, such as
``transaction.atomic``'s wrapper whose ``kwds`` carry it) so Django's error reports show stars.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.exceptions import ValidationError
from django.db import transaction
from django.db.models import QuerySet
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from canvas.core.exceptions import ApplicationError, NotFoundError
from integrations.models import ApiKey, Provider

logger = logging.getLogger(__name__)

SECRET_MAX_LENGTH = 4096
DEFAULT_KEY_NAME = "default"
# ``last_used_at`` is refreshed at most this often, so resolving a key on every LLM call does not
# turn into a write on every call.
LAST_USED_RESOLUTION = timedelta(minutes=1)
# A hint reveals a prefix and the last 4 characters only while at least this many stay hidden.
_HINT_MIN_HIDDEN = 12
_HINT_MAX_PREFIX = 8


class ApiKeyMissing(ApplicationError):
    """No key to use: the user has no active key for the provider (or none with that name)."""

    code = "api_key_missing"

    def __init__(self, message: str, *, provider: str | None = None, name: str | None = None):
        super().__init__(message, code=self.code)
        self.provider = provider
        self.name = name


class ApiKeyUnreadable(ApiKeyMissing):
    """A stored key that cannot be used: it was encrypted under another ``CRYPTOGRAPHY_KEY``
    (a rotation that missed it), or it holds characters an HTTP header cannot carry."""

    code = "api_key_unreadable"


def _unreadable(api_key: ApiKey, reason: str) -> ApiKeyUnreadable:
    label = Provider(api_key.provider).label
    return ApiKeyUnreadable(
        f"Your stored {label} key {api_key.name!r} cannot be used: {reason}. Store it again "
        f'with PATCH /api/keys/{api_key.pk}/ {{"secret": "…"}}.',
        provider=api_key.provider,
        name=api_key.name,
    )


@sensitive_variables()
def _fetch_keys(queryset: QuerySet[ApiKey], limit: int) -> list[ApiKey]:
    """Up to ``limit`` keys with their secrets (one query), or ``ApiKeyUnreadable`` naming a
    key whose secret cannot be decrypted or sent."""
    from integrations.encryption import DecryptionError

    try:
        found = list(queryset[:limit])
    except DecryptionError:
        # Which one: each row again, its secret alone (rare, and at most ``limit`` rows).
        for api_key in queryset.defer("secret")[:limit]:
            try:
                ApiKey.objects.values_list("secret", flat=True).get(pk=api_key.pk)
            except DecryptionError:
                logger.error(
                    "api key %s cannot be decrypted with CRYPTOGRAPHY_KEY (owner=%s provider=%s)",
                    api_key.pk,
                    api_key.owner_id,
                    api_key.provider,
                )
                raise _unreadable(
                    api_key, "it was stored under another server encryption key"
                ) from None
        raise
    for api_key in found:
        if not _latin1(api_key.secret):
            raise _unreadable(api_key, "it holds characters an HTTP header cannot carry")
    return found


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


# --- Hints and validation ---------------------------------------------------------------------


@sensitive_variables()
def secret_hint(secret: str) -> str:
    """What a key may show of itself: ``gsk_…3f9a`` (prefix up to the first ``_``, last 4).

    Parts are shown only while at least 12 characters stay hidden, so a short secret shows as
    ``…`` alone.
    """
    underscore = secret.find("_")
    prefix = secret[: underscore + 1] if 0 < underscore < _HINT_MAX_PREFIX else ""
    if len(secret) - len(prefix) - 4 >= _HINT_MIN_HIDDEN:
        return f"{prefix}…{secret[-4:]}"
    if len(secret) - 4 >= _HINT_MIN_HIDDEN:
        return f"…{secret[-4:]}"
    return "…"


@sensitive_variables()
def api_key_validate_secret(secret: str) -> str:
    """The secret as it will be stored (trimmed), or a ValidationError on ``secret``."""
    # Messages describe the problem, never the value.
    secret = secret.strip() if isinstance(secret, str) else ""
    if not secret:
        raise ValidationError({"secret": "The secret may not be blank."})
    if len(secret) > SECRET_MAX_LENGTH:
        raise ValidationError(
            {"secret": f"The secret is longer than {SECRET_MAX_LENGTH} characters."}
        )
    # It ends up in HTTP headers: a newline there would split the header.
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in secret):
        raise ValidationError({"secret": "The secret contains control characters."})
    # HTTP header values are Latin-1 (requests encodes them so): anything else could never
    # be sent.
    if not _latin1(secret):
        raise ValidationError(
            {
                "secret": "The secret contains characters outside Latin-1; an HTTP header cannot "
                "carry them."
            }
        )
    return secret


def _clean_provider(provider: str) -> str:
    if provider not in Provider.values:
        raise ValidationError(
            {"provider": f"Unknown provider {provider!r}: choose one of {', '.join(Provider)}."}
        )
    return provider


def api_key_validate_name(*, owner, provider: str, name: str, exclude_id=None) -> str:
    """The name as it will be stored (trimmed); a ValidationError on ``name`` if taken."""
    name = name.strip() if isinstance(name, str) else ""
    if not name:
        raise ValidationError({"name": "The name may not be blank."})
    taken = ApiKey.objects.filter(owner=owner, provider=provider, name=name)
    if exclude_id is not None:
        taken = taken.exclude(pk=exclude_id)
    if taken.exists():
        raise ValidationError({"name": f"You already have a {provider} key named {name!r}."})
    return name


def _lock_owner(owner) -> None:
    # Serialises key writes per owner, so two concurrent activations cannot both pass the
    # "deactivate the others" step (the partial unique constraint would turn that into a 500).
    get_user_model().objects.select_for_update().filter(pk=owner.pk).exists()


def _deactivate_others(*, owner, provider: str, keep_id=None) -> None:
    others = ApiKey.objects.filter(owner=owner, provider=provider, is_active=True)
    if keep_id is not None:
        others = others.exclude(pk=keep_id)
    others.update(is_active=False, updated_at=timezone.now())


# --- Services ---------------------------------------------------------------------------------


@sensitive_variables()
@transaction.atomic
def api_key_create(
    *, owner, provider: str, secret: str, name: str = DEFAULT_KEY_NAME, is_active: bool = True
) -> ApiKey:
    """Store a new key; when active (the default) it replaces the owner's active key."""
    provider = _clean_provider(provider)
    secret = api_key_validate_secret(secret)
    _lock_owner(owner)
    name = api_key_validate_name(owner=owner, provider=provider, name=name)
    if is_active:
        _deactivate_others(owner=owner, provider=provider)
    api_key = ApiKey(
        owner=owner,
        provider=provider,
        name=name,
        secret=secret,
        hint=secret_hint(secret),
        is_active=is_active,
    )
    api_key.full_clean()
    api_key.save()
    logger.info(
        "api key %s created: owner=%s provider=%s hint=%s active=%s",
        api_key.pk,
        owner.pk,
        provider,
        api_key.hint,
        is_active,
    )
    return api_key


@sensitive_variables()
@transaction.atomic
def api_key_update(
    *,
    api_key: ApiKey,
    name: str | None = None,
    secret: str | None = None,
    is_active: bool | None = None,
) -> ApiKey:
    """Rename, rotate the secret and/or (de)activate a key; arguments left None stay as they are.

    Activating a key deactivates the owner's other key for the same provider.
    """
    _lock_owner(api_key.owner)
    api_key = ApiKey.objects.select_for_update().get(pk=api_key.pk)
    changed = []
    if name is not None:
        api_key.name = api_key_validate_name(
            owner=api_key.owner, provider=api_key.provider, name=name, exclude_id=api_key.pk
        )
        changed.append("name")
    if secret is not None:
        secret = api_key_validate_secret(secret)
        api_key.secret = secret
        api_key.hint = secret_hint(secret)
        changed.append("secret")
    if is_active is not None:
        if is_active:
            _deactivate_others(owner=api_key.owner, provider=api_key.provider, keep_id=api_key.pk)
        api_key.is_active = is_active
        changed.append("is_active")
    api_key.full_clean()
    api_key.save()
    logger.info(
        "api key %s updated (%s): owner=%s provider=%s hint=%s active=%s",
        api_key.pk,
        ", ".join(changed) or "nothing",
        api_key.owner_id,
        api_key.provider,
        api_key.hint,
        api_key.is_active,
    )
    return api_key


@transaction.atomic
def api_key_delete(*, api_key: ApiKey) -> None:
    """Delete a key. Another key does not become active by itself: the user picks one."""
    key_id, owner_id, provider = api_key.pk, api_key.owner_id, api_key.provider
    api_key.delete()
    logger.info("api key %s deleted: owner=%s provider=%s", key_id, owner_id, provider)


# --- Selectors --------------------------------------------------------------------------------


def api_key_list(*, user) -> QuerySet[ApiKey]:
    """The user's keys, without their secrets (reads never need the plaintext)."""
    return ApiKey.objects.filter(owner=user).defer("secret").order_by("provider", "name")


def api_key_get(*, user, key_id) -> ApiKey:
    """One of the user's keys; another user's, a missing or a malformed id are all 404."""
    try:
        return api_key_list(user=user).get(pk=key_id)
    except (ApiKey.DoesNotExist, ValidationError, ValueError, TypeError):
        raise NotFoundError("No such key.") from None


# --- Resolution (the interface of the clients and the engine) ----------------------------------


def _user_or_none(user):
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def _touch(api_key: ApiKey) -> None:
    now = timezone.now()
    if api_key.last_used_at is None or now - api_key.last_used_at >= LAST_USED_RESOLUTION:
        # A plain UPDATE: no lock on the row, no bump of updated_at.
        ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=now)
        api_key.last_used_at = now


def _missing_message(provider: str) -> str:
    label = Provider(provider).label
    return (
        f"No active {label} API key. Add one with POST /api/keys/ "
        f'{{"provider": "{provider}", "name": "…", "secret": "…"}}, or activate a stored one '
        f'with PATCH /api/keys/<id>/ {{"is_active": true}}; an operator can run '
        f"`manage.py set_api_key --user <username> --provider {provider}`."
    )


@sensitive_variables()
def key_resolve(*, user, provider: str) -> str:
    """The plaintext of ``user``'s active key for ``provider``.

    For Groq, the operator's ``GROQ_API_KEY`` is the fallback when the user has no active key
    (``user`` may be None for operator tasks). Raises ``ApiKeyMissing`` when there is none,
    and its subclass ``ApiKeyUnreadable`` when the stored one cannot be decrypted or sent.
    Marks the key used (``last_used_at``, to the minute).
    """
    provider = _provider_or_error(provider)
    user = _user_or_none(user)
    if user is not None:
        found = _fetch_keys(ApiKey.objects.filter(owner=user, provider=provider, is_active=True), 1)
        if found:
            _touch(found[0])
            return found[0].secret
    if provider == Provider.GROQ and settings.GROQ_API_KEY:
        return settings.GROQ_API_KEY
    raise ApiKeyMissing(_missing_message(provider), provider=provider)


def key_is_set(*, user, provider: str) -> bool:
    """Whether ``key_resolve`` would find a key (without decrypting anything)."""
    provider = _provider_or_error(provider)
    user = _user_or_none(user)
    if (
        user is not None
        and ApiKey.objects.filter(owner=user, provider=provider, is_active=True).exists()
    ):
        return True
    return provider == Provider.GROQ and bool(settings.GROQ_API_KEY)


@sensitive_variables()
def key_get_secret_by_name(*, user, name: str) -> str:
    """The plaintext of the user's key called ``name``, active or not, for any provider.

    For the HTTP node's ``{secret:NAME}`` header values. Raises ``ApiKeyMissing`` naming the key
    when there is none, and an ``ApplicationError`` (``api_key_ambiguous``) when keys of two
    providers share the name.
    """
    user = _user_or_none(user)
    matches = (
        _fetch_keys(ApiKey.objects.filter(owner=user, name=name).order_by("provider"), 2)
        if user is not None
        else []
    )
    if not matches:
        raise ApiKeyMissing(
            f"No stored key named {name!r}. Add it with POST /api/keys/ "
            f'{{"provider": …, "name": "{name}", "secret": "…"}}.',
            name=name,
        )
    if len(matches) > 1:
        raise ApplicationError(
            f"Several stored keys are named {name!r} "
            f"({', '.join(k.provider for k in matches)}): rename one so the name is unique.",
            code="api_key_ambiguous",
        )
    _touch(matches[0])
    return matches[0].secret


def _provider_or_error(provider: str) -> str:
    if provider not in Provider.values:
        raise ApplicationError(
            f"Unknown provider {provider!r}: choose one of {', '.join(Provider)}.",
            code="unknown_provider",
        )
    return provider
