import pytest

from tests.workflows.conftest import build_graph, events_of, run_graph, runs_by_key

pytestmark = pytest.mark.django_db(transaction=True)


def test_text_template_output_chain(user):
    graph = build_graph(
        user,
        {
            "t": ("text", {"text": "world"}),
            "tpl": ("template", {"template": "Hello {who}!"}),
            "out": ("output", {"name": "greeting"}),
        },
        [("t", "text", "tpl", "who"), ("tpl", "text", "out", "value")],
    )
    execution = run_graph(graph)
    assert execution.status == "succeeded", execution.error
    assert execution.outputs == {"greeting": "Hello world!"}
    events = events_of(execution)
    assert [seq for seq, _, _ in events] == list(range(1, len(events) + 1))
    assert events[0][1] == "execution.queued"
    assert events[1][1] == "execution.started"
    assert events[-1][1] == "execution.completed"
    runs = runs_by_key(graph, execution)
    assert {k: r.status for k, r in runs.items()} == {
        "t": "succeeded",
        "tpl": "succeeded",
        "out": "succeeded",
    }
