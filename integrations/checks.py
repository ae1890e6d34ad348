"""Refuse to run with a CRYPTOGRAPHY_KEY that cannot read the stored secrets.

A wrong key would otherwise surface later, as a failed run on a user's first LLM call. The
check decrypts every stored row and names the ones it cannot read: rotation re-encrypts every
row in one transaction, but a process still running on the old key may have written one after
it (one query; decrypting is microseconds a row). Such a row fails only its owner's calls, with
``api_key_unreadable`` (see ``integrations.keys``).

It is a Django system check tagged ``database``, as Django asks of checks that query: it runs in
``migrate`` and ``manage.py check --database default``. Daphne runs no system checks, so
``canvas/asgi.py`` and the workflow worker call ``verify_encryption_key()`` at start.
"""

from __future__ import annotations

import logging

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, router

from integrations.encryption import DecryptionError, configured_secret_box, decrypt_text

logger = logging.getLogger(__name__)

CHECK_ID = "integrations.E001"
HINT = (
    "Set CRYPTOGRAPHY_KEY to the key the secrets were stored with, or re-encrypt them with "
    "`manage.py rotate_encryption_key --old-key <old> --new-key <new>`. SECRET_KEY plays no part."
)


def unreadable_secrets(*, using: str = DEFAULT_DB_ALIAS) -> list[str]:
    """The stored keys the configured key cannot decrypt, each described as ``<id> (<owner>,
    <provider> key <name>)``; empty when all are readable or none is stored.

    A database without the table yet (before ``migrate``) counts as nothing stored. Database
    errors other than that propagate.
    """
    from integrations.models import ApiKey

    connection = connections[using]
    table = ApiKey._meta.db_table
    if table not in connection.introspection.table_names():
        return []
    column = ApiKey._meta.get_field("secret").column
    with connection.cursor() as cursor:
        # The raw column: the field would decrypt while loading, and stop at the first failure.
        cursor.execute(
            f"SELECT {connection.ops.quote_name('id')}, {connection.ops.quote_name(column)} "  # noqa: S608 - names from the model
            f"FROM {connection.ops.quote_name(table)}"
        )
        rows = cursor.fetchall()
    box = configured_secret_box()
    bad_ids = []
    for key_id, token in rows:
        try:
            decrypt_text(token, box=box)
        except DecryptionError:
            bad_ids.append(key_id)
    if not bad_ids:
        return []
    described = (
        ApiKey.objects.using(using)
        .filter(pk__in=bad_ids)
        .select_related("owner")
        .defer("secret")
        .order_by("owner__username", "provider", "name")
    )
    return [f"{k.pk} ({k.owner.get_username()}, {k.provider} key {k.name!r})" for k in described]


def stored_secrets_readable(*, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the configured key decrypts every stored secret; True when none is stored."""
    return not unreadable_secrets(using=using)


def _problem(unreadable: list[str], using: str) -> str:
    shown = "; ".join(unreadable[:20]) + ("; …" if len(unreadable) > 20 else "")
    return (
        f"CRYPTOGRAPHY_KEY cannot decrypt {len(unreadable)} API key(s) stored in database "
        f"{using!r}: {shown}."
    )


@checks.register(checks.Tags.database)
def check_encryption_key(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    from integrations.models import ApiKey

    errors = []
    for alias in databases or ():
        if not router.allow_migrate_model(alias, ApiKey):
            continue
        unreadable = unreadable_secrets(using=alias)
        if unreadable:
            errors.append(
                checks.Error(
                    _problem(unreadable, alias),
                    hint=HINT,
                    obj=ApiKey,
                    id=CHECK_ID,
                )
            )
    return errors


def verify_encryption_key(*, using: str = DEFAULT_DB_ALIAS) -> None:
    """Run at process start (``asgi.py``, the worker): raise when the key is wrong.

    It fails only on proof that the key is wrong. When the database cannot be asked (down, or
    not reachable yet), it logs a warning and lets the process start: requests will report that
    themselves, and refusing to start would turn a brief outage into a crash loop.
    """
    try:
        unreadable = unreadable_secrets(using=using)
    except Exception as exc:  # any reason the database cannot be asked, see the docstring
        # (DatabaseError when it is down; RuntimeError under pytest-django, which blocks
        # database access while test modules that import asgi.py are collected).
        logger.warning(
            "Could not verify CRYPTOGRAPHY_KEY against the stored API keys: %s", type(exc).__name__
        )
        return
    finally:
        # Do not keep the start-up thread's connection open (it would never be reused); inside
        # a transaction (a test) the connection is not ours to close.
        connection = connections[using]
        if not connection.in_atomic_block:
            connection.close()
            # A psycopg pool made now keeps the settings of now: in a test process that is the
            # database before the test database replaced it. The next query makes a new one.
            if getattr(connection, "close_pool", None) and connection.settings_dict["OPTIONS"].get(
                "pool"
            ):
                connection.close_pool()
    if unreadable:
        raise ImproperlyConfigured(f"{_problem(unreadable, using)} {HINT}")
