"""The admin pages of graphs load for a superuser; inline saves bump the version."""

import json

import pytest

from graphs.models import Graph

pytestmark = pytest.mark.django_db


@pytest.fixture
def admin_client_logged_in(client, django_user_model):
    admin = django_user_model.objects.create_superuser("root", "root@example.com", "root-pass")
    client.force_login(admin)
    return client


def test_changelist_and_change_form_load(admin_client_logged_in, graph):
    changelist = admin_client_logged_in.get("/admin/graphs/graph/")
    assert changelist.status_code == 200
    assert b"Haiku" in changelist.content

    change = admin_client_logged_in.get(f"/admin/graphs/graph/{graph.graph.id}/change/")
    assert change.status_code == 200
    assert str(graph.nodes[0]["id"]).encode() in change.content  # read-only ids inline

    assert admin_client_logged_in.get("/admin/graphs/graph/add/").status_code == 200
    assert admin_client_logged_in.get("/admin/graphs/node/").status_code == 200


def formset_data(graph, **changes):
    """The change form's POST for ``graph`` with its current nodes and edges."""
    data = {
        "owner": graph.graph.owner_id,
        "name": graph.graph.name,
        "description": graph.graph.description,
        "nodes-TOTAL_FORMS": len(graph.nodes),
        "nodes-INITIAL_FORMS": len(graph.nodes),
        "edges-TOTAL_FORMS": len(graph.edges),
        "edges-INITIAL_FORMS": len(graph.edges),
    }
    for i, node in enumerate(graph.nodes):
        data |= {
            f"nodes-{i}-id": node["id"],
            f"nodes-{i}-graph": graph.graph.id,
            f"nodes-{i}-type": node["type"],
            f"nodes-{i}-label": node["label"],
            f"nodes-{i}-position_x": 0,
            f"nodes-{i}-position_y": 0,
            f"nodes-{i}-config": json.dumps(node["config"]),
        }
    for i, edge in enumerate(graph.edges):
        data |= {
            f"edges-{i}-id": edge["id"],
            f"edges-{i}-graph": graph.graph.id,
            f"edges-{i}-source": edge["source"],
            f"edges-{i}-source_port": edge["source_port"],
            f"edges-{i}-target": edge["target"],
            f"edges-{i}-target_port": edge["target_port"],
        }
    return data | changes


def test_saving_in_the_admin_bumps_the_version(admin_client_logged_in, graph):
    data = formset_data(graph, **{"nodes-1-label": "Edited in admin"})

    response = admin_client_logged_in.post(f"/admin/graphs/graph/{graph.graph.id}/change/", data)

    assert response.status_code == 302, response.content[:2000]
    assert Graph.objects.get(pk=graph.graph.id).version == 2
    assert Graph.objects.get(pk=graph.graph.id).nodes.get(pk=graph.nodes[1]["id"]).label == (
        "Edited in admin"
    )


def test_admin_refuses_a_bad_config(admin_client_logged_in, graph):
    data = formset_data(graph, **{"nodes-2-config": '{"provider": "openai", "model": "m"}'})

    response = admin_client_logged_in.post(f"/admin/graphs/graph/{graph.graph.id}/change/", data)

    assert response.status_code == 200  # the form again, with the error
    assert b"config.provider" in response.content
    assert Graph.objects.get(pk=graph.graph.id).version == 1


def test_admin_rolls_back_a_cycle(admin_client_logged_in, graph):
    # A second placeholder on the prompt, fed by the LLM's reply: prompt → llm → prompt.
    data = formset_data(graph)
    data |= {
        "edges-TOTAL_FORMS": 4,
        "edges-3-graph": graph.graph.id,
        "edges-3-source": graph.nodes[2]["id"],
        "edges-3-source_port": "text",
        "edges-3-target": graph.nodes[1]["id"],
        "edges-3-target_port": "more",
        "nodes-1-config": '{"template": "{topic} {more}"}',
    }

    response = admin_client_logged_in.post(
        f"/admin/graphs/graph/{graph.graph.id}/change/", data, follow=True
    )

    assert "Nodes and edges not saved, the graph would be invalid" in response.content.decode()
    assert "cycle" in response.content.decode()
    stored = Graph.objects.get(pk=graph.graph.id)
    assert stored.edges.count() == 3
    assert stored.nodes.get(pk=graph.nodes[1]["id"]).config == graph.nodes[1]["config"]


def test_admin_refuses_nul_in_a_config(admin_client_logged_in, graph):
    data = formset_data(graph, **{"nodes-0-config": '{"name": "a\\u0000b"}'})

    response = admin_client_logged_in.post(f"/admin/graphs/graph/{graph.graph.id}/change/", data)

    assert response.status_code == 200
    assert b"NUL character" in response.content
