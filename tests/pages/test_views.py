"""The pages as Django serves them (no browser): behind the login, owner-scoped, one shell
that loads the bundle."""

import uuid

import pytest
from django.utils import timezone

from graphs.services import graph_create
from tests.graphs.factories import haiku_document
from workflows.models import Execution

pytestmark = pytest.mark.django_db

PAGES = ["/canvas/", "/chat/", "/keys/"]


@pytest.fixture
def graph(user):
    document = haiku_document()
    return graph_create(
        owner=user, name=document["name"], nodes=document["nodes"], edges=document["edges"]
    ).graph


@pytest.mark.parametrize("path", [*PAGES, "/canvas/{graph}/", "/canvas/{graph}/runs/"])
def test_pages_send_strangers_to_the_login_page(client, graph, path):
    path = path.format(graph=graph.pk)
    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_login_page_is_djangos_form(client):
    response = client.get("/accounts/login/")

    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="username"' in html
    assert 'name="password"' in html
    assert '<button type="submit">Log in</button>' in html


def test_logging_in_lands_on_the_canvases(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "alice-pass-123"})
    assert response.status_code == 302
    assert response["Location"] == "/canvas/"


def test_a_wrong_password_is_said_plainly(client, user):
    response = client.post("/accounts/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert b"did not match" in response.content


@pytest.mark.parametrize(
    ("path", "page"),
    [("/canvas/", "graphs"), ("/chat/", "chat"), ("/keys/", "keys")],
)
def test_each_page_is_the_shell_that_loads_the_bundle(client, user, path, page):
    client.force_login(user)
    response = client.get(path)

    assert response.status_code == 200
    html = response.content.decode()
    assert f'data-page="{page}"' in html
    assert "/static/canvas/dist/app.js" in html
    assert "/static/canvas/dist/app.css" in html
    assert 'name="csrf-token"' in html


def test_the_editor_names_its_graph(client, user, graph):
    client.force_login(user)
    response = client.get(f"/canvas/{graph.pk}/")

    assert response.status_code == 200
    assert 'data-page="editor"' in response.content.decode()
    assert f'"graph": "{graph.pk}"' in response.content.decode()


@pytest.mark.parametrize(
    "path", ["/canvas/{graph}/", "/canvas/{graph}/runs/", "/canvas/runs/{execution}/"]
)
def test_another_users_graph_or_run_is_not_found(client, other_user, graph, path):
    execution = Execution.objects.create(
        owner=graph.owner,
        graph=graph,
        graph_version=graph.version,
        snapshot={},
        queued_at=timezone.now(),
    )
    client.force_login(other_user)

    response = client.get(path.format(graph=graph.pk, execution=execution.pk))

    assert response.status_code == 404


@pytest.mark.parametrize("path", ["/canvas/not-a-uuid/", f"/canvas/runs/{uuid.uuid4()}/"])
def test_a_malformed_or_missing_id_is_not_found(client, user, path):
    client.force_login(user)
    assert client.get(path).status_code == 404
