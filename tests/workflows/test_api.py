"""The executions REST API: start, list, read, cancel, events; other users get 404."""

import uuid

import pytest

from tests.workflows.conftest import build_graph, greeting_graph, wait_for
from workflows.models import Execution, ExecutionEvent

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def graph(user):
    return greeting_graph(user)


def start(client, graph, inputs):
    return client.post(f"/api/graphs/{graph.id}/executions/", {"inputs": inputs}, format="json")


def test_start_answers_202_and_the_run_completes(api_client, graph):
    response = start(api_client, graph, {"who": "ann"})
    assert response.status_code == 202, response.content
    body = response.json()
    assert body["status"] in ("queued", "running", "succeeded")
    assert body["graph"] == str(graph.id)
    assert body["graph_version"] == graph.version
    assert body["inputs"] == {"who": "ann"}
    wait_for(Execution.objects.get(pk=body["id"]))

    detail = api_client.get(f"/api/executions/{body['id']}/").json()
    # The start answers the run as created, in the detail's shape.
    assert set(body) == set(detail)
    assert body["node_runs"] == []
    assert detail["status"] == "succeeded"
    assert detail["outputs"] == {"greeting": "hi ann"}
    assert detail["error"] == ""
    assert detail["queued_at"] <= detail["started_at"] <= detail["finished_at"]
    runs = {r["node"]: r for r in detail["node_runs"]}
    tpl = runs[graph.node_ids["tpl"]]
    assert tpl["type"] == "template"
    assert tpl["status"] == "succeeded"
    assert tpl["inputs"] == {"who": "ann"}
    assert tpl["outputs"] == {"text": "hi ann"}
    assert tpl["attempts"] == 1
    assert tpl["label"] == "tpl"
    assert set(tpl) == {
        "node",
        "type",
        "label",
        "status",
        "inputs",
        "outputs",
        "error",
        "attempts",
        "started_at",
        "finished_at",
        "usage",
    }


def test_bad_inputs_answer_400_with_field_errors(api_client, graph):
    response = start(api_client, graph, {"nobody": 1})
    assert response.status_code == 400
    fields = {e["field"] for e in response.json()["errors"]["inputs"]}
    assert fields == {"inputs.nobody", "inputs.who"}
    response = api_client.post(
        f"/api/graphs/{graph.id}/executions/", {"inputs": "text"}, format="json"
    )
    assert response.status_code == 400
    assert "inputs" in response.json()["errors"]
    assert not Execution.objects.exists()


def test_incomplete_graph_answers_400_with_the_validate_map(api_client, user):
    graph = build_graph(user, {"llm": ("llm", {"provider": "ollama"})})
    response = start(api_client, graph, {})
    assert response.status_code == 400
    body = response.json()
    assert body["code"] == "invalid_graph"
    node_errors = body["errors"][graph.node_ids["llm"]]
    assert {"field": "config.model", "message": "This field is required."} in node_errors
    assert any(e["field"] == "prompt" or "prompt" in e["field"] for e in node_errors)


def test_list_filters_by_graph_and_status(api_client, user, graph):
    other_graph = build_graph(user, {"t": ("text", {"text": "x"})}, name="other")
    first = start(api_client, graph, {"who": "a"}).json()
    second = start(api_client, other_graph, {}).json()
    for body in (first, second):
        wait_for(Execution.objects.get(pk=body["id"]))
    listed = api_client.get("/api/executions/").json()
    assert listed["count"] == 2
    assert "node_runs" not in listed["results"][0]
    by_graph = api_client.get("/api/executions/", {"graph": str(graph.id)}).json()
    assert [r["id"] for r in by_graph["results"]] == [first["id"]]
    assert api_client.get("/api/executions/", {"status": "failed"}).json()["count"] == 0
    assert api_client.get("/api/executions/", {"status": "succeeded"}).json()["count"] == 2
    nested = api_client.get(f"/api/graphs/{graph.id}/executions/").json()
    assert [r["id"] for r in nested["results"]] == [first["id"]]
    bad = api_client.get("/api/executions/", {"status": "bogus"})
    assert bad.status_code == 400
    assert "status" in bad.json()["errors"]
    assert api_client.get("/api/executions/", {"graph": "nope"}).status_code == 400


def test_events_page_with_after_and_next(api_client, graph):
    body = start(api_client, graph, {"who": "z"}).json()
    execution = wait_for(Execution.objects.get(pk=body["id"]))
    page = api_client.get(f"/api/executions/{execution.id}/events/").json()
    assert page["next"] is None
    seqs = [e["seq"] for e in page["results"]]
    assert seqs == list(range(1, len(seqs) + 1))
    assert page["results"][0]["event"] == "execution.queued"
    assert page["results"][-1]["event"] == "execution.completed"
    assert set(page["results"][0]) == {"seq", "event", "data", "ts"}
    after = api_client.get(f"/api/executions/{execution.id}/events/", {"after": 3}).json()
    assert [e["seq"] for e in after["results"]] == seqs[3:]
    assert (
        api_client.get(f"/api/executions/{execution.id}/events/", {"after": "x"}).status_code == 400
    )
    bad_cursor = api_client.get(f"/api/executions/{execution.id}/events/", {"cursor": "x"})
    assert bad_cursor.status_code == 400
    assert "cursor" in bad_cursor.json()["errors"]


def test_events_are_paged_by_1000(api_client, graph, user):
    body = start(api_client, graph, {"who": "z"}).json()
    execution = wait_for(Execution.objects.get(pk=body["id"]))
    last = execution.events.count()
    ExecutionEvent.objects.bulk_create(
        ExecutionEvent(
            execution=execution,
            seq=last + i,
            event="node.completed",
            data={},
            ts=execution.finished_at,
        )
        for i in range(1, 1201)
    )
    first = api_client.get(f"/api/executions/{execution.id}/events/").json()
    assert len(first["results"]) == 1000
    assert "cursor=" in first["next"]
    second = api_client.get(first["next"]).json()
    assert [e["seq"] for e in second["results"]] == list(range(1001, last + 1201))
    assert second["next"] is None
    # Paging from `after` keeps it: the pages continue after it.
    from_after = api_client.get(f"/api/executions/{execution.id}/events/", {"after": 100}).json()
    assert [e["seq"] for e in from_after["results"]] == list(range(101, 1101))
    rest = api_client.get(from_after["next"]).json()
    assert [e["seq"] for e in rest["results"]] == list(range(1101, last + 1201))


def test_cancel_is_idempotent_on_a_finished_run(api_client, graph):
    body = start(api_client, graph, {"who": "z"}).json()
    wait_for(Execution.objects.get(pk=body["id"]))
    response = api_client.post(f"/api/executions/{body['id']}/cancel/")
    assert response.status_code == 202
    assert response.json()["status"] == "succeeded"
    assert api_client.post(f"/api/executions/{body['id']}/cancel/").status_code == 202


def test_other_users_get_404_everywhere(api_client, other_api_client, graph):
    body = start(api_client, graph, {"who": "z"}).json()
    wait_for(Execution.objects.get(pk=body["id"]))
    eid = body["id"]
    assert start(other_api_client, graph, {"who": "z"}).status_code == 404
    assert other_api_client.get(f"/api/graphs/{graph.id}/executions/").status_code == 404
    assert other_api_client.get(f"/api/executions/{eid}/").status_code == 404
    assert other_api_client.post(f"/api/executions/{eid}/cancel/").status_code == 404
    assert other_api_client.get(f"/api/executions/{eid}/events/").status_code == 404
    assert other_api_client.get("/api/executions/").json()["count"] == 0
    # Malformed and missing ids are the same 404.
    assert api_client.get("/api/executions/not-a-uuid/").status_code == 404
    assert api_client.get(f"/api/executions/{uuid.uuid4()}/").status_code == 404
    assert api_client.post(f"/api/graphs/{uuid.uuid4()}/executions/", {}).status_code == 404


def test_anonymous_is_refused(anon_client, graph):
    assert anon_client.get("/api/executions/").status_code in (401, 403)
    assert anon_client.post(f"/api/graphs/{graph.id}/executions/", {}).status_code in (401, 403)


def test_detail_and_list_query_counts(api_client, graph, django_assert_max_num_queries):
    body = start(api_client, graph, {"who": "z"}).json()
    wait_for(Execution.objects.get(pk=body["id"]))
    for _ in range(3):
        wait_for(Execution.objects.get(pk=start(api_client, graph, {"who": "q"}).json()["id"]))
    # token lookup + execution + node runs
    with django_assert_max_num_queries(3):
        api_client.get(f"/api/executions/{body['id']}/")
    # token lookup + count + page
    with django_assert_max_num_queries(3):
        api_client.get("/api/executions/")


def test_hostile_inputs_answer_400(api_client, graph):
    response = start(api_client, graph, {"who": "a\u0000b"})
    assert response.status_code == 400
    assert "NUL" in str(response.json())
    deep = "[" * 5000 + "]" * 5000
    response = api_client.post(
        f"/api/graphs/{graph.id}/executions/",
        data='{"inputs": {"who": ' + deep + "}}",
        content_type="application/json",
    )
    assert response.status_code == 400
    assert not Execution.objects.exists()


def test_node_runs_read_in_run_order_with_their_labels(api_client, graph):
    body = start(api_client, graph, {"who": "ann"}).json()
    wait_for(Execution.objects.get(pk=body["id"]))

    runs = api_client.get(f"/api/executions/{body['id']}/").json()["node_runs"]

    assert [r["label"] for r in runs] == ["in", "tpl", "out"]
    starts = [r["started_at"] for r in runs]
    assert starts == sorted(starts)


def test_timestamps_read_the_same_over_rest_and_the_socket(api_client, graph):
    from workflows.events import event_as_message

    body = start(api_client, graph, {"who": "ann"}).json()
    execution = wait_for(Execution.objects.get(pk=body["id"]))

    rest = api_client.get(f"/api/executions/{execution.id}/events/").json()["results"][0]
    socket = event_as_message(ExecutionEvent.objects.get(execution=execution, seq=1))

    assert rest["ts"].endswith("Z")
    assert socket["ts"] == rest["ts"]
    assert body["queued_at"].endswith("Z")
