"""The canvas in a browser: log in, build a graph by hand, run it, watch it live, cancel,
reload mid-run, two windows on one graph. Headless Chromium against a real Daphne."""

import re

import pytest
import requests
from playwright.sync_api import expect
from rest_framework.authtoken.models import Token

from graphs.models import Graph
from tests.fakes.base import Behaviour
from tests.graphs.factories import edge, node
from tests.live import wait_until
from workflows.models import Execution

from .conftest import screenshot

pytestmark = pytest.mark.django_db(transaction=True)

REPLY = (
    "Waves fold into foam, the tide keeps its slow promise, salt wind writes the shore. "
    "Gulls stitch grey to blue; a shell holds the whole ocean, quiet in my palm."
)


def slow_reply(ollama, text, interval):
    ollama.enqueue(Behaviour(reply=text, token_interval=interval), path="/api/chat")


def haiku(api_client, name="Haiku", x_gap=260):
    topic = node("input", {"name": "topic"}, label="Topic", x=0, y=40)
    prompt = node("template", {"template": "A haiku about {topic}."}, x=x_gap, y=40)
    llm = node("llm", {"provider": "ollama", "model": "llama3.2"}, label="Model", x=2 * x_gap, y=40)
    out = node("output", {"name": "haiku"}, x=3 * x_gap, y=40)
    document = {
        "name": name,
        "nodes": [topic, prompt, llm, out],
        "edges": [
            edge(topic, "value", prompt, "topic"),
            edge(prompt, "text", llm, "prompt"),
            edge(llm, "text", out, "value"),
        ],
    }
    response = api_client.post("/api/graphs/", document, format="json")
    assert response.status_code == 201, response.content
    return response.json()


def node_el(page, node_id):
    return page.locator(f'[data-node-id="{node_id}"]')


def by_type(page, type_):
    return page.locator(f'.react-flow__node [data-type="{type_}"]')


def handle(node_locator, kind, port):
    return node_locator.locator(f'.react-flow__handle.{kind}[data-handleid="{port}"]')


def drag(page, source, target):
    """Press on ``source``, move to ``target`` in steps, release: as a hand on a mouse."""
    a = source.bounding_box()
    b = target.bounding_box()
    page.mouse.move(a["x"] + a["width"] / 2, a["y"] + a["height"] / 2)
    page.mouse.down()
    page.mouse.move(b["x"] + b["width"] / 2, b["y"] + b["height"] / 2, steps=12)
    page.mouse.up()


def connect(page, source_node, source_port, target_node, target_port):
    drag(
        page, handle(source_node, "source", source_port), handle(target_node, "target", target_port)
    )


def wait_saved(page):
    expect(page.locator("[data-save-state]")).to_have_attribute("data-save-state", "saved")


def test_login_form_then_the_list_of_canvases(browser, site, user, api_client):
    haiku(api_client, name="Sea haiku")
    context = browser.new_context(viewport={"width": 1280, "height": 800}, base_url=site)
    try:
        page = context.new_page()
        page.goto("/canvas/")
        expect(page).to_have_url(re.compile(r"/accounts/login/\?next=/canvas/"))
        page.fill('input[name="username"]', "alice")
        page.fill('input[name="password"]', "alice-pass-123")
        page.get_by_role("button", name="Log in").click()

        expect(page).to_have_url(re.compile(r"/canvas/$"))
        expect(page.get_by_text("Sea haiku")).to_be_visible()

        page.get_by_label("New canvas").fill("Built by hand")
        page.get_by_role("button", name="Create").click()
        expect(page.locator(".graph-name")).to_have_text("Built by hand")
        assert Graph.objects.filter(owner=user, name="Built by hand").exists()

        page.get_by_role("button", name="Log out").click()
        expect(page).to_have_url(re.compile(r"/accounts/login/"))
    finally:
        context.close()


def test_build_a_graph_by_hand_run_it_and_watch_the_tokens_stream(
    new_page, user, api_client, page_ollama
):
    graph = api_client.post("/api/graphs/", {"name": "By hand"}, format="json").json()
    page = new_page(f"/canvas/{graph['id']}/")
    palette = page.get_by_role("navigation", name="Node types")

    # Given four nodes added from the palette and configured in the side panel
    palette.get_by_role("button", name="Input", exact=True).click()
    page.locator('.config-panel [name="name"]').fill("topic")
    palette.get_by_role("button", name="Template", exact=True).click()
    page.locator('.config-panel [name="template"]').fill("A haiku about {topic}.")
    palette.get_by_role("button", name="LLM", exact=True).click()
    page.locator('.config-panel [name="provider"]').select_option("ollama")
    page.locator('.config-panel [name="model"]').fill("llama3.2")
    palette.get_by_role("button", name="Output", exact=True).click()
    page.locator('.config-panel [name="name"]').fill("haiku")
    inp, tpl, llm, out = (by_type(page, t).first for t in ("input", "template", "llm", "output"))
    expect(handle(tpl, "target", "topic")).to_have_count(1)  # the placeholder made a port

    # ...and connected by dragging from port to port
    connect(page, inp, "value", tpl, "topic")
    connect(page, tpl, "text", llm, "prompt")
    connect(page, llm, "text", out, "value")
    expect(page.locator(".react-flow__edge")).to_have_count(3)

    # A second edge into one input is refused, as the API would
    connect(page, inp, "value", llm, "prompt")
    expect(page.locator(".react-flow__edge")).to_have_count(3)

    # A json output cannot feed a text input: refused; then that extra node is deleted
    palette.get_by_role("button", name="LLM", exact=True).click()
    second_llm = by_type(page, "llm").nth(1)
    connect(page, llm, "usage", second_llm, "prompt")
    expect(page.locator(".react-flow__edge")).to_have_count(3)
    page.get_by_role("button", name="Delete node").click()
    expect(by_type(page, "llm")).to_have_count(1)
    # Undo brings it back, redo deletes it again
    page.get_by_role("button", name="Undo").click()
    expect(by_type(page, "llm")).to_have_count(2)
    page.get_by_role("button", name="Redo").click()
    expect(by_type(page, "llm")).to_have_count(1)

    # The document reached the API (one debounced PUT), complete and valid
    wait_saved(page)
    saved = api_client.get(f"/api/graphs/{graph['id']}/").json()
    assert sorted(n["type"] for n in saved["nodes"]) == ["input", "llm", "output", "template"]
    assert len(saved["edges"]) == 3
    assert api_client.post(f"/api/graphs/{graph['id']}/validate/").json()["valid"] is True

    # When it runs with an input from the form
    slow_reply(page_ollama, REPLY, 0.15)
    page.locator('.inputs-form input[name="topic"]').fill("the sea")
    with page.expect_request(
        lambda r: r.method == "POST" and r.url.endswith(f"/api/graphs/{graph['id']}/executions/")
    ):
        page.get_by_role("button", name="Run", exact=True).click()

    # Then the LLM node runs and its tokens stream in, the others light up in turn (the first
    # tokens may stream before the page's subscription is answered: tokens are live only)
    expect(llm).to_have_attribute("data-status", "running")
    expect(page.get_by_role("button", name="Cancel")).to_be_enabled()
    expect(llm.locator(".cnode-text")).to_contain_text("the tide")
    partial = llm.locator(".cnode-text").inner_text()
    screenshot(page, "canvas-running")
    assert partial.strip() in REPLY
    assert len(partial) < len(REPLY)
    expect(inp).to_have_attribute("data-status", "succeeded")
    expect(tpl).to_have_attribute("data-status", "succeeded")

    # ...and at the end every node succeeded, the full text and the outputs show
    for each in (inp, tpl, llm, out):
        expect(each).to_have_attribute("data-status", "succeeded", timeout=20_000)
    expect(llm.locator(".cnode-text")).to_have_text(REPLY)
    expect(page.locator('[data-output="haiku"]')).to_have_text(REPLY)
    expect(page.locator(".node-times tbody tr")).to_have_count(4)
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    execution = Execution.objects.get(graph_id=graph["id"])
    assert execution.inputs == {"topic": "the sea"}
    assert execution.outputs == {"haiku": REPLY}
    screenshot(page, "canvas-finished")

    # The run's own page shows it node by node, the list of runs links to it
    page.goto(f"/canvas/{graph['id']}/runs/")
    page.get_by_role("link", name=str(execution.pk)[:8]).click()
    expect(page.locator(".run-page")).to_have_attribute("data-run-status", "succeeded")
    expect(page.locator(".node-runs tbody tr")).to_have_count(4)
    expect(page.locator(f'[data-node-id="{llm_id(saved)}"]')).to_have_attribute(
        "data-status", "succeeded"
    )


def llm_id(document):
    return next(n["id"] for n in document["nodes"] if n["type"] == "llm")


def test_cancel_stops_a_run(new_page, api_client, page_ollama):
    graph = haiku(api_client)
    slow_reply(page_ollama, " ".join(f"w{i}" for i in range(200)), 0.1)
    page = new_page(f"/canvas/{graph['id']}/")
    llm = node_el(page, llm_id(graph))

    page.locator('.inputs-form input[name="topic"]').fill("rain")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(llm.locator(".cnode-text")).to_contain_text("w2")
    page.get_by_role("button", name="Cancel").click()

    expect(llm).to_have_attribute("data-status", "cancelled")
    expect(page.locator("[data-run-status]")).to_have_attribute("data-run-status", "cancelled")
    expect(page.get_by_role("button", name="Cancel")).to_be_disabled()
    assert Execution.objects.get(graph_id=graph["id"]).status == "cancelled"


def test_a_reload_mid_run_picks_up_where_it_was(new_page, api_client, page_ollama):
    graph = haiku(api_client)
    words = [f"t{i}" for i in range(60)]
    slow_reply(page_ollama, " ".join(words), 0.12)
    page = new_page(f"/canvas/{graph['id']}/")
    llm = node_el(page, llm_id(graph))
    page.locator('.inputs-form input[name="topic"]').fill("snow")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(llm.locator(".cnode-text")).to_contain_text("t3")

    page.reload()

    # The run is followed again: still running, new tokens arrive, then the whole text
    expect(llm).to_have_attribute("data-status", "running")
    expect(page.get_by_role("button", name="Cancel")).to_be_enabled()
    expect(llm.locator(".cnode-text")).to_contain_text(re.compile(r"t[2-5]\d"))
    # the tokens streamed before the reload are not replayed; the gap is marked until the end
    expect(llm.locator(".cnode-text.missed-start")).to_have_count(1)
    expect(llm).to_have_attribute("data-status", "succeeded", timeout=15_000)
    expect(llm.locator(".cnode-text")).to_have_text(" ".join(words))
    expect(llm.locator(".cnode-text.missed-start")).to_have_count(0)
    expect(page.locator('[data-output="haiku"]')).to_have_text(" ".join(words))


def position_of(document, node_id):
    return next(n["position"] for n in document["nodes"] if n["id"] == node_id)


def test_two_windows_follow_each_other(new_page, api_client, user, site):
    graph = haiku(api_client)
    topic_id, prompt_id = graph["nodes"][0]["id"], graph["nodes"][1]["id"]
    first = new_page(f"/canvas/{graph['id']}/")
    second = new_page(f"/canvas/{graph['id']}/")
    for page in (first, second):
        expect(node_el(page, topic_id)).to_be_visible()

    def box(page, node_id):
        return node_el(page, node_id).bounding_box()

    # A node dragged in the first window moves in the second
    before = box(second, topic_id)
    head = node_el(first, topic_id).locator(".cnode-head")
    drag_by(first, head, 0, 140)
    wait_until(lambda: box(second, topic_id)["y"] > before["y"] + 60, timeout=10.0)

    # ...and the other way round
    before = box(first, prompt_id)
    drag_by(second, node_el(second, prompt_id).locator(".cnode-head"), 0, 150)
    wait_until(lambda: box(first, prompt_id)["y"] > before["y"] + 60, timeout=10.0)

    # A node added in one appears in the other; deleted there, it goes here
    first.get_by_role("navigation", name="Node types").get_by_role(
        "button", name="Text", exact=True
    ).click()
    expect(by_type(second, "text")).to_have_count(1)
    by_type(second, "text").locator(".cnode-head").click()
    second.get_by_role("button", name="Delete node").click()
    expect(by_type(first, "text")).to_have_count(0)
    wait_saved(first)
    wait_saved(second)

    # Unsaved edits in one window and a change from elsewhere: a conflict is shown, nothing
    # is overwritten silently
    node_el(first, topic_id).locator(".cnode-head").click()
    first.locator('.config-panel [name="label"]').fill("Mine")
    token = Token.objects.get_or_create(user=user)[0].key
    response = requests.patch(
        f"{site}/api/graphs/{graph['id']}/nodes/{prompt_id}/",
        json={"label": "Theirs"},
        headers={"Authorization": f"Token {token}"},
        timeout=10,
    )
    assert response.status_code == 200, response.text
    expect(first.get_by_role("alert")).to_contain_text("Version conflict")
    expect(node_el(second, prompt_id)).to_contain_text("Theirs")
    first.get_by_role("button", name="Keep mine").click()
    wait_saved(first)
    saved = api_client.get(f"/api/graphs/{graph['id']}/").json()
    assert next(n for n in saved["nodes"] if n["id"] == topic_id)["label"] == "Mine"
    expect(node_el(second, topic_id)).to_contain_text("Mine")


def drag_by(page, locator, dx, dy):
    b = locator.bounding_box()
    x, y = b["x"] + b["width"] / 2, b["y"] + b["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + dx, y + dy, steps=10)
    page.mouse.up()
