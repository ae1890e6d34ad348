"""manage.py run_workflow (in process) and the read-only admin."""

import json

import pytest
from django.core.management import CommandError, call_command

from tests.workflows.conftest import build_graph, run_graph
from workflows.models import Execution

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def graph(user):
    return build_graph(
        user,
        {
            "in": ("input", {"name": "n"}),
            "cond": ("condition", {"operator": "gt", "operand": 3}),
            "big": ("template", {"template": "{n} is big"}),
            "out": ("output", {"name": "verdict"}),
            "ex": ("extract", {"path": "nope"}),
        },
        [
            ("in", "value", "cond", "value"),
            ("cond", "true", "big", "n"),
            ("big", "text", "out", "value"),
            ("cond", "false", "ex", "data"),
        ],
        name="verdict",
    )


def test_run_by_name_prints_progress_and_outputs(graph, capsys):
    call_command("run_workflow", "verdict", "--input", "n=7")
    out = capsys.readouterr().out
    assert "▶ big (template) started" in out
    assert "✓ big (template) succeeded in" in out
    assert "- ex (extract) skipped" in out
    assert "verdict: 7 is big" in out
    assert "Status: succeeded" in out
    assert Execution.objects.get().status == "succeeded"


def test_run_by_id_with_json_and_failure_exit_code(graph, capsys):
    with pytest.raises(SystemExit) as caught:
        call_command("run_workflow", str(graph.id), "--input", "n=1", "--json")
    assert caught.value.code == 1
    captured = capsys.readouterr()
    document = json.loads(captured.out.strip().splitlines()[-1])
    assert document["status"] == "failed"
    assert "Cannot take .nope: the data is not an object." in document["error"]
    assert "✗ ex (extract) failed" in captured.err


def test_bad_arguments_are_one_readable_line(graph):
    with pytest.raises(CommandError, match="No graph with id or name"):
        call_command("run_workflow", "missing")
    with pytest.raises(CommandError, match="expected KEY=VALUE"):
        call_command("run_workflow", "verdict", "--input", "novalue")
    with pytest.raises(CommandError, match=r"inputs\.n"):
        call_command("run_workflow", "verdict")


def test_admin_pages_are_read_only(graph, client, django_user_model):
    execution = run_graph(graph, {"n": 9})
    admin = django_user_model.objects.create_superuser("root", "r@example.com", "pw-123456!")
    client.force_login(admin)
    assert client.get("/admin/workflows/execution/").status_code == 200
    page = client.get(f"/admin/workflows/execution/{execution.id}/change/")
    assert page.status_code == 200
    assert b"execution.completed" in page.content
    assert b"Save" not in page.content
    assert client.get("/admin/workflows/execution/add/").status_code == 403
