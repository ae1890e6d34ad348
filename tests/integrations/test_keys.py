"""Stored keys: encryption at rest, the rules of the services, resolution, no plaintext leaks."""

import logging
import sys
import threading

import pytest
from django.conf import settings
from django.core.exceptions import ValidationError
from django.db import IntegrityError, connection, connections, transaction
from django.test import override_settings
from django.utils import timezone
from django.views.debug import ExceptionReporter
from django_cryptography.utils.crypto import FernetBytes

import canvas.settings as settings_module
from canvas.core.exceptions import ApplicationError
from integrations import keys
from integrations.encryption import DecryptionError, master_key, secret_box
from integrations.models import ApiKey

pytestmark = pytest.mark.django_db

GROQ_SECRET = "gsk_" + "Zq7Kx2Lm9Pw4Rt8Yv1Bn6Hc3Jd5Fg0Sa2Ue4Io7Op9Ql1Mk3Nj5" + "3f9a"
OTHER_SECRET = "gsk_" + "Ab1Cd2Ef3Gh4Ij5Kl6Mn7Op8Qr9St0Uv1Wx2Yz3Ab4Cd5Ef6Gh" + "77aa"


def raw_column(name: str) -> bytes:
    """The ``secret`` column as the database holds it, read with plain SQL."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT secret FROM integrations_apikey WHERE name = %s", [name])
        (value,) = cursor.fetchone()
    return bytes(value)


def reload(api_key: ApiKey) -> ApiKey:
    return ApiKey.objects.get(pk=api_key.pk)


# --- Encryption at rest -----------------------------------------------------------------------


def test_the_raw_column_never_holds_the_plaintext(user):
    keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)

    stored = raw_column("main")

    assert GROQ_SECRET.encode() not in stored
    assert b"Zq7Kx2Lm9Pw4" not in stored
    assert GROQ_SECRET.encode("utf-16-le") not in stored
    assert len(stored) > len(GROQ_SECRET)


def test_the_same_secret_encrypts_differently_each_time(user):
    keys.api_key_create(owner=user, provider="groq", name="a", secret=GROQ_SECRET)
    keys.api_key_create(owner=user, provider="groq", name="b", secret=GROQ_SECRET)

    assert raw_column("a") != raw_column("b")


def test_secret_reads_back_through_the_model(user):
    api_key = keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)

    assert reload(api_key).secret == GROQ_SECRET


def test_rotating_secret_key_alone_leaves_every_secret_readable(user):
    api_key = keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)

    with override_settings(SECRET_KEY="a-completely-different-secret-key-" + "x" * 30):
        assert reload(api_key).secret == GROQ_SECRET
        assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET


def test_the_library_default_would_not_survive_a_secret_key_rotation():
    # Why the field passes its own signer key: django-cryptography's default FernetBytes signs
    # with SECRET_KEY, so a token it wrote is rejected once SECRET_KEY changes.
    token = FernetBytes().encrypt(b"payload")
    with override_settings(SECRET_KEY="a-completely-different-secret-key-" + "x" * 30):
        rotated = FernetBytes()
        with pytest.raises(DecryptionError):
            rotated.decrypt(token)


def test_another_cryptography_key_cannot_read_the_secret(user):
    api_key = keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)

    with override_settings(CRYPTOGRAPHY_KEY="not-the-key"), pytest.raises(DecryptionError) as exc:
        reload(api_key)

    assert GROQ_SECRET not in str(exc.value)


def test_a_tampered_ciphertext_is_rejected(user):
    keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)
    stored = bytearray(raw_column("main"))
    stored[20] ^= 0x01
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE integrations_apikey SET secret = %s WHERE name = %s", [bytes(stored), "main"]
        )

    with pytest.raises(DecryptionError):
        ApiKey.objects.get(name="main")


def test_passphrase_and_the_librarys_stretched_key_name_the_same_key():
    # django-cryptography replaces settings.CRYPTOGRAPHY_KEY with its PBKDF2 output on import;
    # the passphrase (as the environment gives it) must stretch to exactly that.
    passphrase = settings_module.CRYPTOGRAPHY_KEY
    assert isinstance(passphrase, str)

    assert master_key(passphrase) == master_key(settings.CRYPTOGRAPHY_KEY)
    token = secret_box(passphrase).encrypt(b"x")
    assert secret_box(settings.CRYPTOGRAPHY_KEY).decrypt(token) == b"x"


# --- Hints ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("secret", "hint"),
    [
        (GROQ_SECRET, "gsk_…3f9a"),
        ("sk-proj-abcdefghijklmnopqrstuvwxyz12345678", "…5678"),
        ("abcdefghijklmnopqrstuvwx", "…uvwx"),
        ("short_secret1234", "…1234"),
        ("tiny_1234567890", "…"),
        ("abc", "…"),
        ("verylongprefix_abcdefghijklmnopqrstuvwxyz", "…wxyz"),
    ],
)
def test_hint_shows_prefix_and_last_four_only_while_most_stays_hidden(secret, hint):
    assert keys.secret_hint(secret) == hint


# --- Services ---------------------------------------------------------------------------------


def test_a_new_key_becomes_the_active_one(user):
    first = keys.api_key_create(owner=user, provider="groq", name="first", secret=GROQ_SECRET)
    second = keys.api_key_create(owner=user, provider="groq", name="second", secret=OTHER_SECRET)

    assert reload(second).is_active
    assert not reload(first).is_active
    assert keys.key_resolve(user=user, provider="groq") == OTHER_SECRET


def test_an_inactive_key_can_be_added_without_replacing_the_active_one(user):
    first = keys.api_key_create(owner=user, provider="groq", name="first", secret=GROQ_SECRET)
    keys.api_key_create(
        owner=user, provider="groq", name="spare", secret=OTHER_SECRET, is_active=False
    )

    assert reload(first).is_active
    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET


def test_activating_a_key_deactivates_the_other(user):
    first = keys.api_key_create(owner=user, provider="groq", name="first", secret=GROQ_SECRET)
    second = keys.api_key_create(owner=user, provider="groq", name="second", secret=OTHER_SECRET)

    keys.api_key_update(api_key=first, is_active=True)

    assert reload(first).is_active
    assert not reload(second).is_active


def test_activation_is_per_provider_and_per_owner(user, other_user):
    groq = keys.api_key_create(owner=user, provider="groq", name="k", secret=GROQ_SECRET)
    ollama = keys.api_key_create(owner=user, provider="ollama", name="k", secret=OTHER_SECRET)
    theirs = keys.api_key_create(owner=other_user, provider="groq", name="k", secret=OTHER_SECRET)

    assert reload(groq).is_active
    assert reload(ollama).is_active
    assert reload(theirs).is_active


@pytest.mark.django_db(transaction=True)
def test_concurrent_creations_leave_exactly_one_active_key(user):
    # Both services deactivate "the other" key, then insert an active one; without the per-owner
    # lock the second insert would hit the partial unique constraint (a 500).
    barrier = threading.Barrier(4)
    failures = []

    def create(index):
        try:
            barrier.wait(timeout=10)
            keys.api_key_create(owner=user, provider="groq", name=f"k{index}", secret=GROQ_SECRET)
        except Exception as exc:  # noqa: BLE001 - reported below
            failures.append(exc)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=create, args=(index,)) for index in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert failures == []
    assert ApiKey.objects.count() == 4
    assert ApiKey.objects.filter(is_active=True).count() == 1


def test_the_database_refuses_two_active_keys_for_one_provider(user):
    keys.api_key_create(owner=user, provider="groq", name="first", secret=GROQ_SECRET)

    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.create(
            owner=user, provider="groq", name="second", secret=OTHER_SECRET, is_active=True
        )


def test_the_database_refuses_a_duplicate_name(user):
    keys.api_key_create(owner=user, provider="groq", name="same", secret=GROQ_SECRET)

    with pytest.raises(IntegrityError), transaction.atomic():
        ApiKey.objects.create(
            owner=user, provider="groq", name="same", secret=OTHER_SECRET, is_active=False
        )


def test_a_name_is_unique_per_owner_and_provider(user, other_user):
    keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)
    keys.api_key_create(owner=user, provider="ollama", name="main", secret=GROQ_SECRET)
    keys.api_key_create(owner=other_user, provider="groq", name="main", secret=GROQ_SECRET)

    with pytest.raises(ValidationError) as exc:
        keys.api_key_create(owner=user, provider="groq", name=" main ", secret=OTHER_SECRET)
    assert "name" in exc.value.message_dict


def test_renaming_onto_a_taken_name_is_refused(user):
    keys.api_key_create(owner=user, provider="groq", name="a", secret=GROQ_SECRET)
    b = keys.api_key_create(owner=user, provider="groq", name="b", secret=GROQ_SECRET)

    with pytest.raises(ValidationError) as exc:
        keys.api_key_update(api_key=b, name="a")
    assert "name" in exc.value.message_dict
    keys.api_key_update(api_key=b, name="b")  # its own name is not "taken"


@pytest.mark.parametrize(
    ("field", "kwargs"),
    [
        ("secret", {"secret": "   "}),
        ("secret", {"secret": "gsk_abc\r\nX-Injected: 1"}),
        ("secret", {"secret": "x" * 4097}),
        ("name", {"name": "  "}),
        ("name", {"name": "n" * 201}),
        ("provider", {"provider": "openai"}),
    ],
)
def test_bad_input_is_a_field_error_that_does_not_echo_the_secret(user, field, kwargs):
    arguments = {"owner": user, "provider": "groq", "name": "k", "secret": GROQ_SECRET, **kwargs}

    with pytest.raises(ValidationError) as exc:
        keys.api_key_create(**arguments)

    assert field in exc.value.message_dict
    assert "gsk_abc" not in str(exc.value.message_dict)
    assert "xxxxxxxx" not in str(exc.value.message_dict)
    assert GROQ_SECRET not in str(exc.value.message_dict)
    assert not ApiKey.objects.exists()


def test_surrounding_whitespace_of_a_pasted_secret_is_trimmed(user):
    api_key = keys.api_key_create(
        owner=user, provider="groq", name="k", secret=f"  {GROQ_SECRET}\n"
    )

    assert reload(api_key).secret == GROQ_SECRET
    assert api_key.hint == "gsk_…3f9a"


def test_rotating_the_secret_keeps_the_key_and_changes_the_hint(user):
    api_key = keys.api_key_create(owner=user, provider="groq", name="k", secret=GROQ_SECRET)

    keys.api_key_update(api_key=api_key, secret=OTHER_SECRET)

    assert reload(api_key).secret == OTHER_SECRET
    assert reload(api_key).hint == "gsk_…77aa"
    assert ApiKey.objects.count() == 1


def test_deleting_the_active_key_leaves_none_active(user):
    spare = keys.api_key_create(owner=user, provider="groq", name="spare", secret=OTHER_SECRET)
    active = keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)

    keys.api_key_delete(api_key=active)

    assert not reload(spare).is_active
    assert not keys.key_is_set(user=user, provider="groq")


# --- Resolution -------------------------------------------------------------------------------


def test_resolve_returns_the_active_key_and_marks_it_used(user):
    api_key = keys.api_key_create(owner=user, provider="groq", name="k", secret=GROQ_SECRET)
    before = timezone.now()

    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET

    used = reload(api_key).last_used_at
    assert used is not None
    assert used >= before


def test_resolve_writes_last_used_at_at_most_once_a_minute(user, django_assert_num_queries):
    keys.api_key_create(owner=user, provider="groq", name="k", secret=GROQ_SECRET)
    keys.key_resolve(user=user, provider="groq")

    with django_assert_num_queries(1):  # the read only: used less than a minute ago
        keys.key_resolve(user=user, provider="groq")


@override_settings(GROQ_API_KEY="gsk_operator_fallback_key_0000000000000000")
def test_groq_falls_back_to_the_operator_key_only_without_a_user_key(user):
    assert keys.key_resolve(user=user, provider="groq") == settings.GROQ_API_KEY
    assert keys.key_resolve(user=None, provider="groq") == settings.GROQ_API_KEY
    assert keys.key_is_set(user=user, provider="groq")

    keys.api_key_create(owner=user, provider="groq", name="k", secret=GROQ_SECRET)

    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET


@override_settings(GROQ_API_KEY="gsk_operator_fallback_key_0000000000000000")
def test_the_operator_fallback_is_for_groq_only(user):
    with pytest.raises(keys.ApiKeyMissing):
        keys.key_resolve(user=user, provider="ollama")
    assert not keys.key_is_set(user=user, provider="ollama")


@override_settings(GROQ_API_KEY="")
def test_no_key_is_a_clear_application_error(user):
    keys.api_key_create(
        owner=user, provider="groq", name="spare", secret=GROQ_SECRET, is_active=False
    )

    with pytest.raises(keys.ApiKeyMissing) as exc:
        keys.key_resolve(user=user, provider="groq")

    assert isinstance(exc.value, ApplicationError)
    assert exc.value.code == "api_key_missing"
    assert exc.value.provider == "groq"
    assert "/api/keys/" in exc.value.message
    assert "set_api_key" in exc.value.message
    assert not keys.key_is_set(user=user, provider="groq")


def test_another_users_key_is_never_resolved(user, other_user):
    keys.api_key_create(owner=other_user, provider="ollama", name="k", secret=GROQ_SECRET)

    with pytest.raises(keys.ApiKeyMissing):
        keys.key_resolve(user=user, provider="ollama")
    with pytest.raises(keys.ApiKeyMissing):
        keys.key_get_secret_by_name(user=user, name="k")


def test_an_unknown_provider_is_an_application_error(user):
    with pytest.raises(ApplicationError) as exc:
        keys.key_resolve(user=user, provider="openai")
    assert exc.value.code == "unknown_provider"


def test_secret_by_name_finds_inactive_keys_too(user):
    keys.api_key_create(
        owner=user, provider="groq", name="webhook", secret=GROQ_SECRET, is_active=False
    )

    assert keys.key_get_secret_by_name(user=user, name="webhook") == GROQ_SECRET


def test_secret_by_name_names_the_missing_key(user):
    with pytest.raises(keys.ApiKeyMissing) as exc:
        keys.key_get_secret_by_name(user=user, name="webhook")

    assert "webhook" in exc.value.message
    assert exc.value.name == "webhook"
    assert exc.value.code == "api_key_missing"


def test_secret_by_name_refuses_an_ambiguous_name(user):
    keys.api_key_create(owner=user, provider="groq", name="shared", secret=GROQ_SECRET)
    keys.api_key_create(owner=user, provider="ollama", name="shared", secret=OTHER_SECRET)

    with pytest.raises(ApplicationError) as exc:
        keys.key_get_secret_by_name(user=user, name="shared")

    assert exc.value.code == "api_key_ambiguous"
    assert GROQ_SECRET not in exc.value.message
    assert OTHER_SECRET not in exc.value.message


# --- No plaintext in logs or error reports ----------------------------------------------------


def test_no_log_line_carries_the_plaintext(user, caplog):
    caplog.set_level(logging.DEBUG)

    api_key = keys.api_key_create(owner=user, provider="groq", name="k", secret=GROQ_SECRET)
    keys.api_key_update(api_key=api_key, secret=OTHER_SECRET, name="renamed")
    keys.key_resolve(user=user, provider="groq")
    keys.key_get_secret_by_name(user=user, name="renamed")
    keys.api_key_delete(api_key=api_key)

    assert "api key" in caplog.text  # the services do log
    assert GROQ_SECRET not in caplog.text
    assert OTHER_SECRET not in caplog.text
    assert "Zq7Kx2Lm9Pw4" not in caplog.text


def _report_of_a_failed_create(create, owner, rf) -> str:
    try:
        create(owner=owner, provider="groq", name="taken", secret=GROQ_SECRET)
    except ValidationError:
        return ExceptionReporter(rf.get("/"), *sys.exc_info()).get_traceback_html()
    raise AssertionError("the create should have failed")


def test_error_reports_hide_the_plaintext_in_the_services_frames(user, rf):
    # Django's 500 e-mails render the local variables of every frame (transaction.atomic's
    # wrapper holds the keyword arguments); the services are marked sensitive_variables.
    keys.api_key_create(owner=user, provider="groq", name="taken", secret=OTHER_SECRET)

    report = _report_of_a_failed_create(keys.api_key_create, user, rf)
    # The same call without the mark (the function it wraps) does show the secret.
    unmarked = _report_of_a_failed_create(keys.api_key_create.__wrapped__, user, rf)

    assert "api_key_create" in report
    assert GROQ_SECRET not in report
    assert GROQ_SECRET in unmarked
