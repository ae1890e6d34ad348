"""The admin can set a key's secret but no page ever shows it."""

import pytest

from integrations import keys
from integrations.models import ApiKey
from tests.integrations.test_keys import GROQ_SECRET, OTHER_SECRET

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/integrations/apikey/"
ADD = f"{CHANGELIST}add/"


def change_url(api_key) -> str:
    return f"{CHANGELIST}{api_key.pk}/change/"


def assert_page_hides_secrets(response):
    body = response.content.decode()
    assert GROQ_SECRET not in body
    assert OTHER_SECRET not in body


def add_form(owner, **overrides) -> dict:
    return {
        "owner": owner.pk,
        "provider": "groq",
        "name": "main",
        "is_active": "on",
        "new_secret": GROQ_SECRET,
        "_save": "Save",
        **overrides,
    }


def test_add_stores_the_key_through_the_service(admin_client, user):
    page = admin_client.get(ADD)
    assert page.status_code == 200
    assert 'type="password"' in page.content.decode()

    response = admin_client.post(ADD, add_form(user))

    assert response.status_code == 302, response.content.decode()[:2000]
    api_key = ApiKey.objects.get()
    assert api_key.hint == "gsk_…3f9a"
    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET


def test_add_without_a_secret_is_a_form_error(admin_client, user):
    response = admin_client.post(ADD, add_form(user, new_secret=""))

    assert response.status_code == 200
    assert "A new key needs its secret" in response.content.decode() or (
        "may not be blank" in response.content.decode()
    )
    assert not ApiKey.objects.exists()


def test_add_with_a_taken_name_is_a_form_error_not_a_500(admin_client, user):
    keys.api_key_create(owner=user, provider="groq", name="main", secret=OTHER_SECRET)

    response = admin_client.post(ADD, add_form(user))

    assert response.status_code == 200
    assert "already have a groq key named" in response.content.decode()
    assert_page_hides_secrets(response)
    assert ApiKey.objects.count() == 1


def test_adding_a_second_active_key_deactivates_the_first(admin_client, user):
    first = keys.api_key_create(owner=user, provider="groq", name="first", secret=OTHER_SECRET)

    response = admin_client.post(ADD, add_form(user, name="second"))

    assert response.status_code == 302
    first.refresh_from_db()
    assert not first.is_active
    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET


def test_pages_never_show_the_secret(admin_client, user):
    api_key = keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)

    for url in (
        CHANGELIST,
        change_url(api_key),
        f"{CHANGELIST}{api_key.pk}/history/",
        f"{CHANGELIST}{api_key.pk}/delete/",
    ):
        response = admin_client.get(url)
        assert response.status_code == 200, url
        assert_page_hides_secrets(response)

    assert "gsk_…3f9a" in admin_client.get(CHANGELIST).content.decode()


def test_change_with_a_blank_secret_keeps_it(admin_client, user):
    api_key = keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)

    response = admin_client.post(
        change_url(api_key),
        {"name": "renamed", "is_active": "on", "new_secret": "", "_save": "Save"},
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    api_key.refresh_from_db()
    assert api_key.name == "renamed"
    assert api_key.secret == GROQ_SECRET


def test_change_with_a_new_secret_rotates_it(admin_client, user):
    api_key = keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)

    response = admin_client.post(
        change_url(api_key),
        {"name": "main", "is_active": "on", "new_secret": OTHER_SECRET, "_save": "Save"},
    )

    assert response.status_code == 302
    api_key.refresh_from_db()
    assert api_key.secret == OTHER_SECRET
    assert api_key.hint == "gsk_…77aa"
    history = admin_client.get(f"{CHANGELIST}{api_key.pk}/history/")
    assert_page_hides_secrets(history)


def test_activating_in_the_admin_deactivates_the_other(admin_client, user):
    first = keys.api_key_create(owner=user, provider="groq", name="first", secret=GROQ_SECRET)
    keys.api_key_create(owner=user, provider="groq", name="second", secret=OTHER_SECRET)

    response = admin_client.post(
        change_url(first), {"name": "first", "is_active": "on", "new_secret": "", "_save": "Save"}
    )

    assert response.status_code == 302
    assert keys.key_resolve(user=user, provider="groq") == GROQ_SECRET
    assert ApiKey.objects.filter(is_active=True).count() == 1


def test_delete_through_the_admin(admin_client, user):
    api_key = keys.api_key_create(owner=user, provider="groq", name="main", secret=GROQ_SECRET)

    response = admin_client.post(f"{CHANGELIST}{api_key.pk}/delete/", {"post": "yes"})

    assert response.status_code == 302
    assert not ApiKey.objects.exists()
