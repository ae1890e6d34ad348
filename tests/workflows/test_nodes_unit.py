"""Node behaviour that needs no run: condition operators, template rendering, extract paths."""

import pytest

from workflows.nodes.base import NodeContext, NodeError
from workflows.nodes.condition import evaluate
from workflows.nodes.extract import ExtractNode
from workflows.nodes.template import TemplateNode


@pytest.mark.parametrize(
    ("operator", "value", "operand", "expected"),
    [
        ("equals", "yes", "yes", True),
        ("equals", "5", 5, True),
        ("equals", 5.0, "5", True),
        ("equals", "Yes", "yes", False),
        ("equals", {"a": 1}, '{"a": 1}', True),
        ("equals", True, "true", True),
        ("not_equals", "a", "b", True),
        ("contains", "hello world", "wor", True),
        ("contains", ["a", "b"], "b", True),
        ("contains", {"key": 1}, "key", True),
        ("contains", "hello", "xyz", False),
        ("matches", "order #1234", r"#\d{4}", True),
        ("matches", "no digits", r"\d", False),
        ("gt", "10", 9, True),
        ("gt", 3, 9, False),
        ("lt", 2.5, "3", True),
        ("truthy", "false", "", False),
        ("truthy", "0", "", False),
        ("truthy", "text", "", True),
        ("truthy", [], "", False),
        ("truthy", 1, "", True),
        ("is_empty", "   ", "", True),
        ("is_empty", None, "", True),
        ("is_empty", {}, "", True),
        ("is_empty", [0], "", False),
        ("is_empty", 0, "", False),
    ],
)
def test_condition_operators(operator, value, operand, expected):
    assert evaluate(operator, value, operand) is expected


def test_gt_on_text_that_is_not_a_number_is_a_node_error():
    with pytest.raises(NodeError, match="is not a number"):
        evaluate("gt", "abc", 3)


def test_catastrophic_regex_is_stopped_by_its_time_bound():
    with pytest.raises(NodeError, match="took longer than"):
        evaluate("matches", "a" * 40 + "!", r"(a|aa)+$")


def ctx(config, inputs):
    return NodeContext(
        execution_id=None,
        owner_id=1,
        node_id="n",
        node_type="t",
        label="n",
        config=config,
        inputs=inputs,
        execution_inputs={},
    )


def test_template_renders_values_without_str_format():
    node = TemplateNode()
    out = node.run(
        ctx(
            {"template": "{a} {b} {c} {{literal}} {missing}"},
            {"a": "x", "b": {"k": [1]}, "c": None},
        )
    )
    assert out == {"text": 'x {"k": [1]}  {literal} '}
    # A value that looks like a format string is inserted as text, never evaluated.
    out = node.run(ctx({"template": "{a}"}, {"a": "{a.__class__}"}))
    assert out == {"text": "{a.__class__}"}


@pytest.mark.parametrize(
    ("path", "data", "expected"),
    [
        ("", {"a": 1}, {"a": 1}),
        ("a", {"a": 1}, 1),
        ("a.b[0].c", {"a": {"b": [{"c": "x"}]}}, "x"),
        ("[-1]", [1, 2, 3], 3),
        ("items[1]", '{"items": ["p", "q"]}', "q"),
    ],
)
def test_extract_paths(path, data, expected):
    assert ExtractNode().run(ctx({"path": path}, {"data": data})) == {"value": expected}


@pytest.mark.parametrize(
    ("path", "data", "message"),
    [
        ("a", [1], "not an object"),
        ("[5]", [1], "out of range"),
        ("[0]", {"a": 1}, "not a list"),
        ("a.b", {"a": {}}, "No key 'b' in a"),
    ],
)
def test_extract_errors_say_where(path, data, message):
    with pytest.raises(NodeError, match=message):
        ExtractNode().run(ctx({"path": path}, {"data": data}))


@pytest.mark.parametrize(
    ("template", "values", "expected"),
    [
        (
            "https://x.test/search?q={q}",
            {"q": "cats & dogs"},
            "https://x.test/search?q=cats%20%26%20dogs",
        ),
        ("https://x.test/items/{id}/view", {"id": "a b/c"}, "https://x.test/items/a%20b/c/view"),
        (
            "{base}/items?page={n}",
            {"base": "https://x.test", "n": 2},
            "https://x.test/items?page=2",
        ),
        ("https://x.test/{{literal}}?a={a}", {"a": "é"}, "https://x.test/{literal}?a=%C3%A9"),
    ],
)
def test_http_url_placeholders_are_encoded_for_where_they_land(template, values, expected):
    from workflows.nodes.http import render_url

    assert render_url(template, values) == expected


def test_every_registered_node_type_subclasses_the_node_base():
    from graphs.registry import registry
    from workflows.nodes import NODE_TYPES
    from workflows.nodes.base import Node, node_class

    assert {cls.type for cls in registry.all()} >= {cls.type for cls in NODE_TYPES}
    for cls in registry.all():
        assert node_class(cls.type) is cls
        assert issubclass(cls, Node)
        # The contract is declared, typed, on the class: no attribute is left to a default
        # the engine would have to guess.
        assert isinstance(cls.blocking, bool)
        assert isinstance(cls.cacheable, bool)
        assert isinstance(cls.safe_to_repeat, bool)


def test_node_class_refuses_a_type_without_behaviour():
    from graphs.registry import NodeType, registry
    from workflows.nodes.base import node_class

    class Described(NodeType):
        type = "test_described_only"

    registry.register(Described)
    try:
        with pytest.raises(TypeError, match="does not subclass Node"):
            node_class("test_described_only")
    finally:
        registry.unregister("test_described_only")
