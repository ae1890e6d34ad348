"""docs/executions.md "Writing a node type": its worked example registers and runs as written."""

import re
import types
from pathlib import Path

import pytest

from graphs.registry import registry
from tests.live import BASE_DIR
from tests.workflows.conftest import build_graph, events_of, run_graph, runs_by_key

pytestmark = pytest.mark.django_db(transaction=True)


def example_module() -> types.ModuleType:
    text = (Path(BASE_DIR) / "docs" / "executions.md").read_text()
    section = text.split("## Writing a node type", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    module = types.ModuleType("word_count_example")
    exec(compile(code, "docs/executions.md", "exec"), module.__dict__)  # noqa: S102 - our docs
    return module


@pytest.fixture
def word_count():
    cls = example_module().WordCountNode
    registry.register(cls)
    yield cls
    registry.unregister(cls.type)


def count_graph(user, **config):
    return build_graph(
        user,
        {
            "words": ("text", {"text": "one two three"}),
            "count": ("word_count", config),
            "out": ("output", {"name": "n"}),
        },
        [("words", "text", "count", "text"), ("count", "count", "out", "value")],
    )


def test_the_worked_example_runs_and_answers_repeats_from_the_cache(user, word_count):
    graph = count_graph(user)

    first = run_graph(graph)
    assert first.status == "succeeded", first.error
    assert first.outputs == {"n": 3}

    second = run_graph(graph)
    assert second.outputs == {"n": 3}
    assert runs_by_key(graph, second)["count"].status == "cached"
    assert "node.cached" in [event for _seq, event, _data in events_of(second)]


def test_the_worked_example_fails_with_its_own_words(user, word_count):
    graph = count_graph(user, max_words=2)

    execution = run_graph(graph)

    assert execution.status == "failed"
    assert "3 words, more than max_words (2)." in execution.error
    assert "'count' (word_count," in execution.error


def test_the_api_lists_the_registered_example(api_client, word_count):
    types_ = {t["type"]: t for t in api_client.get("/api/node-types/").json()}
    assert types_["word_count"]["outputs"][0]["name"] == "count"
