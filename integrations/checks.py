"""Refuse to run with a CRYPTOGRAPHY_KEY that cannot read the stored secrets.

A wrong key would otherwise surface later, as a failed run on a user's first LLM call. The
check decrypts one stored row (they all share a key: rotation re-encrypts every row in one
transaction), so it costs one small query.

It is a Django system check tagged ``database``, as Django asks of checks that query: it runs in
``migrate`` and ``manage.py check --database default``. Daphne runs no system checks, so
``canvas/asgi.py`` and the workflow worker call ``verify_encryption_key()`` at start.
"""

from __future__ import annotations

import logging

from django.core import checks
from django.core.exceptions import ImproperlyConfigured
from django.db import DEFAULT_DB_ALIAS, connections, router

from integrations.encryption import DecryptionError

logger = logging.getLogger(__name__)

CHECK_ID = "integrations.E001"
HINT = (
    "Set CRYPTOGRAPHY_KEY to the key the secrets were stored with, or re-encrypt them with "
    "`manage.py rotate_encryption_key --old-key <old> --new-key <new>`. SECRET_KEY plays no part."
)


def stored_secrets_readable(*, using: str = DEFAULT_DB_ALIAS) -> bool:
    """Whether the configured key decrypts a stored secret; True when none is stored.

    A database without the table yet (before ``migrate``) counts as nothing stored. Database
    errors other than that propagate.
    """
    from integrations.models import ApiKey

    connection = connections[using]
    if ApiKey._meta.db_table not in connection.introspection.table_names():
        return True
    try:
        # Loading the field decrypts it and verifies its MAC; no row, nothing to verify.
        list(ApiKey.objects.using(using).only("secret").order_by()[:1])
    except DecryptionError:
        return False
    return True


@checks.register(checks.Tags.database)
def check_encryption_key(app_configs=None, databases=None, **kwargs) -> list[checks.CheckMessage]:
    from integrations.models import ApiKey

    errors = []
    for alias in databases or ():
        if not router.allow_migrate_model(alias, ApiKey):
            continue
        if not stored_secrets_readable(using=alias):
            errors.append(
                checks.Error(
                    f"CRYPTOGRAPHY_KEY cannot decrypt the API keys stored in database {alias!r}.",
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
        readable = stored_secrets_readable(using=using)
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
    if not readable:
        raise ImproperlyConfigured(
            f"CRYPTOGRAPHY_KEY cannot decrypt the API keys stored in database {using!r}. {HINT}"
        )
