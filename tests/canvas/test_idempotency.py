"""Idempotency-Key on the two starting POSTs, and 503 (never 500) when the database or Redis
is away.

Replays answer the first status and body with ``Idempotent-Replayed: true`` and create nothing;
another body with the key is 422; a request still in flight is 409 (a chat reply that streams
slowly from the fake Ollama, in a thread, against a live server).
"""

from __future__ import annotations

import threading
import time
from datetime import timedelta

import pytest
import requests
from django.db import OperationalError
from django.utils import timezone
from redis.exceptions import ConnectionError as RedisConnectionError
from rest_framework.authtoken.models import Token

from canvas.core.models import IdempotencyKey
from chat import services as chat_services
from chat.models import Message
from tests.fakes.base import Behaviour
from tests.fakes.fixtures import fake_ollama  # noqa: F401 - fixture
from tests.workflows.conftest import build_graph, wait_for
from workflows import selectors as workflow_selectors
from workflows.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def graph(user):
    return build_graph(
        user,
        {"in": ("input", {"name": "who"}), "out": ("output", {"name": "o"})},
        [("in", "value", "out", "value")],
    )


def start(client, graph, inputs, key=None):
    headers = {"HTTP_IDEMPOTENCY_KEY": key} if key is not None else {}
    return client.post(
        f"/api/graphs/{graph.id}/executions/", {"inputs": inputs}, format="json", **headers
    )


def test_same_key_replays_the_first_answer_and_creates_nothing(api_client, graph):
    first = start(api_client, graph, {"who": "ann"}, key="run-1")
    assert first.status_code == 202, first.content
    assert "Idempotent-Replayed" not in first
    wait_for(Execution.objects.get(pk=first.json()["id"]))

    again = start(api_client, graph, {"who": "ann"}, key="run-1")

    assert again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert again.json() == first.json()
    assert Execution.objects.count() == 1


def test_same_key_with_another_body_is_422_and_other_keys_or_users_are_apart(
    api_client, other_api_client, graph, other_user
):
    assert start(api_client, graph, {"who": "ann"}, key="k").status_code == 202

    reused = start(api_client, graph, {"who": "bob"}, key="k")
    assert reused.status_code == 422
    assert reused.json()["code"] == "idempotency_key_reused"

    assert start(api_client, graph, {"who": "ann"}, key="k2").status_code == 202
    other_graph = build_graph(other_user, {"in": ("input", {"name": "who", "default": "x"})}, [])
    assert start(other_api_client, other_graph, {}, key="k").status_code == 202
    assert Execution.objects.count() == 3
    assert start(api_client, graph, {"who": "ann"}).status_code == 202  # no key: a new run
    assert Execution.objects.count() == 4


def test_a_key_older_than_24_h_starts_anew_and_a_bad_key_is_400(api_client, graph):
    assert start(api_client, graph, {"who": "ann"}, key="old").status_code == 202
    IdempotencyKey.objects.update(created_at=timezone.now() - timedelta(hours=24, seconds=1))

    again = start(api_client, graph, {"who": "ann"}, key="old")
    assert again.status_code == 202
    assert "Idempotent-Replayed" not in again
    assert Execution.objects.count() == 2

    bad = start(api_client, graph, {"who": "ann"}, key="x" * 256)
    assert bad.status_code == 400
    assert bad.json()["code"] == "invalid_idempotency_key"


def test_an_error_answer_is_replayed_but_a_503_is_forgotten(api_client, graph, monkeypatch):
    missing = start(api_client, graph, {}, key="bad-inputs")
    assert missing.status_code == 400
    assert start(api_client, graph, {}, key="bad-inputs")["Idempotent-Replayed"] == "true"

    def database_down(**_kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr(workflow_selectors, "execution_get_for_user", database_down)
    # A start that committed its run answers it (202), even if reading it back fails.
    committed = start(api_client, graph, {"who": "ann"}, key="late-failure")
    assert committed.status_code == 202, committed.content
    assert committed.json()["status"] == "queued"
    assert committed.json()["node_runs"] == []
    run = Execution.objects.get(pk=committed.json()["id"])
    assert IdempotencyKey.objects.get(key="late-failure").resource_id == run.id
    monkeypatch.undo()
    assert start(api_client, graph, {"who": "ann"}, key="late-failure").json()["id"] == str(run.id)


def test_a_lost_answer_is_replayed_from_the_committed_run(api_client, graph):
    # Given a start whose run committed but whose answer was never stored (the database went
    # away after the commit), left in flight for longer than the view's window
    first = start(api_client, graph, {"who": "ann"}, key="lost")
    IdempotencyKey.objects.filter(key="lost").update(
        status_code=None, response=None, created_at=timezone.now() - timedelta(seconds=31)
    )

    again = start(api_client, graph, {"who": "ann"}, key="lost")

    assert again.status_code == 202
    assert again["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert Execution.objects.count() == 1


def test_a_replay_is_not_throttled_nor_counted(api_client, graph, settings):
    # One start a minute: the second new run is refused, a replay of the first is not.
    settings.THROTTLE_RATES = {**settings.THROTTLE_RATES, "start": "1/min"}
    first = start(api_client, graph, {"who": "ann"}, key="once")
    assert first.status_code == 202, first.content

    replays = [start(api_client, graph, {"who": "ann"}, key="once") for _ in range(3)]
    other_body = start(api_client, graph, {"who": "bob"}, key="once")
    new_run = start(api_client, graph, {"who": "ann"}, key="twice")

    assert [r.status_code for r in replays] == [202, 202, 202]
    assert all(r["Idempotent-Replayed"] == "true" for r in replays)
    # Not a replay: counted, and over the rate.
    assert other_body.status_code == 429
    assert new_run.status_code == 429
    assert new_run.json()["code"] == "throttled"
    assert Execution.objects.count() == 1


def test_chat_message_in_flight_is_409_then_replayed(live_server, user, fake_ollama, settings):  # noqa: F811
    settings.OLLAMA_BASE_URL = fake_ollama.url
    fake_ollama.enqueue(Behaviour(first_token_delay=1.5), path="/api/chat")
    conversation = chat_services.conversation_create(
        owner=user, provider="ollama", model="llama3.2"
    )
    token = Token.objects.create(user=user)
    url = f"{live_server.url}/api/conversations/{conversation.id}/messages/"
    headers = {"Authorization": f"Token {token.key}", "Idempotency-Key": "msg-1"}
    answers = {}

    def send():
        answers["first"] = requests.post(url, json={"content": "hi"}, headers=headers, timeout=30)

    thread = threading.Thread(target=send)
    thread.start()
    deadline = time.monotonic() + 10
    while not fake_ollama.requests and time.monotonic() < deadline:
        time.sleep(0.02)
    in_flight = requests.post(url, json={"content": "hi"}, headers=headers, timeout=30)
    thread.join(30)

    assert in_flight.status_code == 409
    assert in_flight.json()["code"] == "idempotency_in_flight"
    first = answers["first"]
    assert first.status_code == 201
    replay = requests.post(url, json={"content": "hi"}, headers=headers, timeout=30)
    assert replay.status_code == 201
    assert replay.headers["Idempotent-Replayed"] == "true"
    assert replay.json() == first.json()
    assert Message.objects.filter(conversation=conversation).count() == 2
    other = requests.post(url, json={"content": "bye"}, headers=headers, timeout=30)
    assert other.status_code == 422


@pytest.mark.parametrize(
    "error", [OperationalError("server closed the connection"), RedisConnectionError("refused")]
)
def test_database_or_redis_away_is_503_with_retry_after(api_client, monkeypatch, error):
    def away(*_args, **_kwargs):
        raise error

    monkeypatch.setattr(workflow_selectors, "execution_list", away)

    response = api_client.get("/api/executions/")

    assert response.status_code == 503
    assert response.json() == {"detail": response.json()["detail"], "code": "unavailable"}
    assert int(response["Retry-After"]) > 0


def test_a_page_with_the_database_away_is_503_too(client, monkeypatch):
    def away(*_args, **_kwargs):
        raise OperationalError("connection refused")

    monkeypatch.setattr("django.contrib.auth.views.LoginView.get", away)
    response = client.get("/admin/login/")
    assert response.status_code == 503
    assert response["Retry-After"]
