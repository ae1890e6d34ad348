"""The graph:<id> topic: changes made through the REST API reach subscribers on commit."""

import asyncio
import uuid

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from canvas.asgi import application
from graphs.services import graph_create, graph_touch

pytestmark = pytest.mark.django_db(transaction=True)


def rest(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


async def call(fn, *args, **kwargs):
    response = await asyncio.to_thread(fn, *args, **kwargs)
    assert response.status_code < 300, response.content
    return response


async def subscribed_socket(user, graph_id):
    token = await database_sync_to_async(lambda: Token.objects.get_or_create(user=user)[0])()
    sock = WebsocketCommunicator(application, f"/ws/?token={token.key}")
    assert (await sock.connect())[0]
    await sock.send_json_to({"type": "subscribe", "topic": f"graph:{graph_id}"})
    return sock, await sock.receive_json_from(timeout=5)


async def next_events(sock, count):
    frames = [await sock.receive_json_from(timeout=5) for _ in range(count)]
    return [(f["event"], f["seq"], f["data"]) for f in frames]


@pytest.fixture
def graph(user):
    nodes = [
        {"id": str(uuid.uuid4()), "type": "text", "config": {"text": "hi"}},
        {"id": str(uuid.uuid4()), "type": "output", "config": {"name": "out"}},
    ]
    return graph_create(owner=user, name="canvas", nodes=nodes).graph


async def test_node_and_edge_changes_arrive_with_the_new_version(user, graph):
    sock, subscribed = await subscribed_socket(user, graph.id)
    assert subscribed == {
        "type": "subscribed",
        "topic": f"graph:{graph.id}",
        "snapshot": {"version": graph.version},
    }
    client = rest(user)
    base = f"/api/graphs/{graph.id}"
    node = (
        await call(
            client.post, f"{base}/nodes/", {"type": "text", "config": {"text": "x"}}, format="json"
        )
    ).json()
    [(event, seq, data)] = await next_events(sock, 1)
    assert (event, seq) == ("node.created", graph.version + 1)
    assert data["node"]["id"] == node["id"]
    assert data["version"] == seq

    await call(client.patch, f"{base}/nodes/{node['id']}/", {"label": "renamed"}, format="json")
    [(event, seq, data)] = await next_events(sock, 1)
    assert (event, data["node"]["label"], seq) == ("node.updated", "renamed", graph.version + 2)

    outputs = await database_sync_to_async(lambda: str(graph.nodes.get(type="output").id))()
    edge = (
        await call(
            client.post,
            f"{base}/edges/",
            {
                "source": node["id"],
                "source_port": "text",
                "target": outputs,
                "target_port": "value",
            },
            format="json",
        )
    ).json()
    [(event, seq, data)] = await next_events(sock, 1)
    assert (event, data["edge"]["id"]) == ("edge.created", edge["id"])

    # Deleting a node deletes its edges: both are told, under one new version.
    await call(client.delete, f"{base}/nodes/{node['id']}/")
    events = await next_events(sock, 2)
    assert [(e, d.get("edge", d.get("node"))["id"]) for e, _, d in events] == [
        ("edge.deleted", edge["id"]),
        ("node.deleted", node["id"]),
    ]
    assert {seq for _, seq, _ in events} == {graph.version + 4}
    assert await sock.receive_nothing(timeout=0.2)
    await sock.disconnect()


async def test_graph_fields_whole_document_admin_and_delete(user, graph):
    sock, _ = await subscribed_socket(user, graph.id)
    client = rest(user)
    base = f"/api/graphs/{graph.id}/"
    version = graph.version

    await call(client.patch, base, {"name": "renamed"}, format="json")
    [(event, seq, data)] = await next_events(sock, 1)
    assert (event, data["name"], data["replaced"]) == ("graph.updated", "renamed", False)

    document = (await call(client.get, base)).json()
    document["nodes"] = document["nodes"][:1]
    document["edges"] = []
    await call(client.put, base, document, format="json")
    [(event, seq, data)] = await next_events(sock, 1)
    assert (event, data["replaced"], seq) == ("graph.updated", True, version + 2)

    # The admin's forms end with graph_touch.
    await database_sync_to_async(graph_touch)(graph=graph)
    [(event, seq, data)] = await next_events(sock, 1)
    assert (event, data["replaced"], seq) == ("graph.updated", True, version + 3)

    await call(client.delete, base)
    [(event, _, _)] = await next_events(sock, 1)
    assert event == "graph.deleted"
    await sock.disconnect()


async def test_a_failed_write_publishes_nothing(user, graph):
    sock, _ = await subscribed_socket(user, graph.id)
    response = await asyncio.to_thread(
        rest(user).post, f"/api/graphs/{graph.id}/nodes/", {"type": "nope"}, format="json"
    )
    assert response.status_code == 400
    assert await sock.receive_nothing(timeout=0.3)
    await sock.disconnect()


async def test_another_users_graph_is_not_found(user, other_user):
    theirs = await database_sync_to_async(graph_create)(owner=other_user, name="theirs")
    sock, reply = await subscribed_socket(user, theirs.graph.id)
    assert (reply["type"], reply["code"]) == ("error", "not_found")
    await sock.disconnect()
