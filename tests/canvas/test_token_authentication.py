"""canvas.core.authentication.TokenAuthentication: DRF's answers, its lookup in one statement."""

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework import authentication
from rest_framework.authtoken.models import Token
from rest_framework.exceptions import AuthenticationFailed
from rest_framework.test import APIClient

from canvas.core.authentication import TokenAuthentication

pytestmark = pytest.mark.django_db


@pytest.fixture
def token(user):
    return Token.objects.create(user=user)


def client_with(key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {key}")
    return client


def fields(instance):
    return {f.attname: getattr(instance, f.attname) for f in instance._meta.concrete_fields}


def test_it_is_the_configured_token_authentication():
    from rest_framework.settings import api_settings

    assert api_settings.DEFAULT_AUTHENTICATION_CLASSES[0] is TokenAuthentication


def test_user_and_token_are_the_orms_in_one_query(token):
    expected_user, expected_token = authentication.TokenAuthentication().authenticate_credentials(
        token.key
    )
    with CaptureQueriesContext(connection) as queries:
        user, found = TokenAuthentication().authenticate_credentials(token.key)
    assert len(queries) == 1
    assert type(found) is Token
    assert found == expected_token
    assert fields(found) == fields(expected_token)
    assert type(user) is type(expected_user)
    assert fields(user) == fields(expected_user)
    assert found.user is user
    assert not user._state.adding
    assert user._state.db == "default"


def test_unknown_key_and_inactive_user_fail_as_drfs(token, user):
    with pytest.raises(AuthenticationFailed, match="Invalid token."):
        TokenAuthentication().authenticate_credentials(token.key[:-1] + "x")
    user.is_active = False
    user.save()
    with pytest.raises(AuthenticationFailed, match="User inactive or deleted."):
        TokenAuthentication().authenticate_credentials(token.key)


def test_a_request_with_a_revoked_token_fails_at_once(token):
    client = client_with(token.key)
    assert client.get("/api/graphs/").status_code == 200
    token.delete()
    response = client.get("/api/graphs/")
    assert response.status_code == 401
    assert response.json() == {"detail": "Invalid token.", "code": "authentication_failed"}
    assert response["WWW-Authenticate"] == "Token"


def test_an_inactive_users_request_fails(token, user):
    client = client_with(token.key)
    user.is_active = False
    user.save()
    response = client.get("/api/graphs/")
    assert response.status_code == 401
    assert response.json()["detail"] == "User inactive or deleted."
