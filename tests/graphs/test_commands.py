"""export_graph, import_graph and seed_demo."""

import io
import json

import pytest
from django.contrib.auth import get_user_model
from django.core.management import CommandError, call_command

from graphs.models import Edge, Graph, Node
from graphs.selectors import graph_nodes_and_edges
from graphs.services import graph_create
from graphs.validation import validate_document

pytestmark = pytest.mark.django_db


def run(*args, **kwargs):
    out = io.StringIO()
    call_command(*args, stdout=out, **kwargs)
    return out.getvalue()


def test_export_then_import_round_trip_with_new_ids(graph, other_user, tmp_path):
    exported = json.loads(run("export_graph", str(graph.graph.id)))
    path = tmp_path / "graph.json"
    path.write_text(json.dumps(exported))

    output = run("import_graph", str(path), "--owner", other_user.username)

    assert "Imported 'Haiku'" in output
    copy = Graph.objects.get(owner=other_user)
    assert copy.id != graph.graph.id
    copied = json.loads(run("export_graph", str(copy.id)))
    assert {n["id"] for n in copied["nodes"]}.isdisjoint({n["id"] for n in exported["nodes"]})
    assert {e["id"] for e in copied["edges"]}.isdisjoint({e["id"] for e in exported["edges"]})

    def shape(document):
        labels = {n["id"]: n["label"] for n in document["nodes"]}
        nodes = sorted((n["type"], n["label"], json.dumps(n["config"])) for n in document["nodes"])
        edges = sorted(
            (labels[e["source"]], e["source_port"], labels[e["target"]], e["target_port"])
            for e in document["edges"]
        )
        return document["name"], document["description"], nodes, edges

    assert shape(copied) == shape(exported)


def test_the_same_file_imports_twice(graph, user, tmp_path):
    path = tmp_path / "graph.json"
    path.write_text(run("export_graph", str(graph.graph.id)))

    run("import_graph", str(path), "--owner", user.username)
    run("import_graph", str(path), "--owner", user.username, "--name", "Third")

    assert Graph.objects.filter(owner=user).count() == 3
    assert Node.objects.count() == 12
    assert Graph.objects.filter(name="Third").exists()


@pytest.mark.parametrize("graph_id", ["nope", "5f0c1d7e-4a5b-4c6d-8e9f-0a1b2c3d4e5f"])
def test_export_unknown_graph_is_a_command_error(graph_id):
    with pytest.raises(CommandError, match="No graph"):
        run("export_graph", graph_id)


def test_import_errors_are_one_readable_line(user, tmp_path):
    missing = tmp_path / "missing.json"
    with pytest.raises(CommandError, match="Cannot read"):
        run("import_graph", str(missing), "--owner", user.username)

    broken = tmp_path / "broken.json"
    broken.write_text("{not json")
    with pytest.raises(CommandError, match="not valid JSON"):
        run("import_graph", str(broken), "--owner", user.username)

    shapeless = tmp_path / "shapeless.json"
    shapeless.write_text(json.dumps({"nodes": [{"type": "text", "label": "x" * 300}]}))
    with pytest.raises(CommandError, match="not a graph document") as excinfo:
        run("import_graph", str(shapeless), "--owner", user.username)
    assert "\n" not in str(excinfo.value)

    cyclic = tmp_path / "cyclic.json"
    a = {
        "id": "11111111-1111-4111-8111-111111111111",
        "type": "template",
        "config": {"template": "{x}"},
    }
    b = {**a, "id": "22222222-2222-4222-8222-222222222222"}
    cyclic.write_text(
        json.dumps(
            {
                "name": "c",
                "nodes": [a, b],
                "edges": [
                    {
                        "source": a["id"],
                        "source_port": "text",
                        "target": b["id"],
                        "target_port": "x",
                    },
                    {
                        "source": b["id"],
                        "source_port": "text",
                        "target": a["id"],
                        "target_port": "x",
                    },
                ],
            }
        )
    )
    with pytest.raises(CommandError, match="cycle"):
        run("import_graph", str(cyclic), "--owner", user.username)

    with pytest.raises(CommandError, match="No user named 'ghost'"):
        run("import_graph", str(cyclic), "--owner", "ghost")
    assert not Graph.objects.exists()


def test_seed_demo_on_an_empty_database_then_idempotent():
    output = run("seed_demo", "--if-empty", "--password", "demo-pass-123")

    assert "demo / demo-pass-123" in output
    user = get_user_model().objects.get(username="demo")
    assert user.check_password("demo-pass-123")
    graph = Graph.objects.get(owner=user)
    assert Node.objects.filter(graph=graph).count() == 4
    assert Edge.objects.filter(graph=graph).count() == 3

    again = run("seed_demo", "--if-empty")
    assert "no demo seeded" in again
    assert Graph.objects.count() == 1
    with pytest.raises(CommandError, match="only seeds an empty database"):
        run("seed_demo")


def test_seeded_demo_graph_is_valid():
    run("seed_demo", "--if-empty")

    graph = Graph.objects.get(owner__username="demo")
    assert validate_document(*graph_nodes_and_edges(graph=graph)) == {"valid": True, "errors": {}}


def test_seed_demo_names_the_port_served_and_how_to_reset_the_password():
    output = run("seed_demo", "--if-empty", "--host", "127.0.0.1", "--port", "8765")
    assert "http://127.0.0.1:8765/api/graphs/" in output
    assert "8000" not in output

    again = run("seed_demo", "--if-empty", "--port", "8765")
    assert "manage.py changepassword demo" in again
    assert "http://127.0.0.1:8765/" in again


def test_export_graph_accepts_a_name_as_run_workflow_does(user):
    saved = graph_create(owner=user, name="Haiku maker", description="", nodes=[], edges=[])

    exported = json.loads(run("export_graph", "Haiku maker"))

    assert exported["id"] == str(saved.graph.id)
    with pytest.raises(CommandError, match="No graph with id or name 'nope'"):
        run("export_graph", "nope")
