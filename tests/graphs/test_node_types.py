"""The node-type registry and the eight declared types: ports, config schemas, placeholders."""

import pytest

from graphs.registry import (
    NodeType,
    Port,
    PortType,
    UnknownNodeType,
    ports_compatible,
    registry,
)
from workflows.nodes import placeholders
from workflows.nodes.extract import PathSyntaxError, parse_path

DESIGN_TYPES = {"input", "text", "template", "llm", "http", "extract", "condition", "output"}


def names(ports):
    return [port.name for port in ports]


def test_every_design_type_is_registered_when_the_app_is_ready():
    assert {node_type.type for node_type in registry.all()} == DESIGN_TYPES


def test_unknown_type_raises_a_clear_error():
    with pytest.raises(UnknownNodeType, match="Unknown node type 'nope'"):
        registry.get("nope")


def test_registering_a_second_class_for_one_type_is_refused():
    class Impostor(NodeType):
        type = "text"

    with pytest.raises(ValueError, match="already registered"):
        registry.register(Impostor)


@pytest.mark.parametrize(
    ("source", "target", "ok"),
    [
        ("text", "text", True),
        ("text", "json", False),
        ("number", "text", False),
        ("any", "number", True),
        ("bool", "any", True),
    ],
)
def test_port_compatibility_any_joins_everything(source, target, ok):
    assert ports_compatible(PortType(source), PortType(target)) is ok


def test_port_types_of_the_design():
    llm = registry.get("llm")
    assert {p.name: (p.type, p.required) for p in llm.input_ports({})} == {
        "prompt": (PortType.TEXT, True),
        "system": (PortType.TEXT, False),
    }
    assert {p.name: p.type for p in llm.output_ports({})} == {
        "text": PortType.TEXT,
        "usage": PortType.JSON,
    }
    http = registry.get("http")
    assert {p.name: p.type for p in http.output_ports({})} == {
        "status": PortType.NUMBER,
        "body": PortType.TEXT,
        "json": PortType.JSON,
    }
    assert registry.get("input").output_ports({}) == [
        Port("value", PortType.ANY, True, "The input value.")
    ]
    assert names(registry.get("condition").output_ports({})) == ["true", "false"]
    assert registry.get("output").output_ports({}) == []


def test_template_variables_become_required_any_ports_in_order():
    ports = registry.get("template").input_ports({"template": "{b} and {a}, {{literal}}, {b}"})
    assert [(p.name, p.type, p.required) for p in ports] == [
        ("b", PortType.ANY, True),
        ("a", PortType.ANY, True),
    ]


def test_http_variables_come_from_url_header_values_and_body_but_not_secrets():
    config = {
        "url": "https://api.example.com/{path}",
        "headers": {"Authorization": "Bearer {secret:GROQ_KEY}", "X-Trace": "{trace}"},
        "body": '{{"q": "{query}"}}',
    }
    http = registry.get("http")
    assert http.config_errors(config) == []
    assert names(http.input_ports(config)) == ["path", "trace", "query"]


@pytest.mark.parametrize(
    ("template", "fragment"),
    [
        ("{x.__class__}", "Attribute access"),
        ("{x[0]}", "Index access"),
        ("{!r}", "Conversions"),
        ("{x!r}", "Conversions"),
        ("{x:>10}", "Format specs"),
        ("{}", "Positional"),
        ("{0}", "Positional"),
        ("{a", "Unclosed"),
        ("a}", "Single '}'"),
        ("{a{b}}", "Unexpected '{'"),
        ("{1a}", "not a valid placeholder"),
    ],
)
def test_bad_template_syntax_is_a_config_error_not_an_evaluation(template, fragment):
    errors = registry.get("template").config_errors({"template": template})
    assert len(errors) == 1
    assert errors[0]["field"] == "config.template"
    assert fragment in errors[0]["message"]
    # Ports derived from a broken template are empty rather than an exception.
    assert registry.get("template").input_ports({"template": template}) == []


def test_secret_reference_is_only_allowed_in_header_values():
    errors = registry.get("http").config_errors({"url": "https://x.example/{secret:K}"})
    assert errors[0]["field"] == "config.url"


def test_render_fills_placeholders_without_str_format():
    assert placeholders.render("{a}-{{b}}-{c}", {"a": "x", "c": {"k": 1}}) == 'x-{b}-{"k": 1}'
    assert placeholders.render("{missing}", {}) == ""
    rendered = placeholders.render(
        "Bearer {secret:K}", {}, secrets=lambda name: f"<{name}>", allow_secrets=True
    )
    assert rendered == "Bearer <K>"


def test_incomplete_is_required_fields_only_and_structural_errors_are_the_rest():
    llm = registry.get("llm")
    assert llm.incomplete({}) == [
        {"field": "config.provider", "message": "This field is required."},
        {"field": "config.model", "message": "This field is required."},
    ]
    # Missing or blank required fields are not structural errors.
    assert llm.config_errors({}) == []
    assert llm.config_errors({"provider": "", "model": "  "}) == []
    errors = llm.config_errors({"provider": "openai", "model": "m", "temperature": "hot", "x": 1})
    assert {e["field"] for e in errors} == {"config.provider", "config.temperature", "config.x"}
    assert registry.get("input").incomplete({"name": ""}) == [
        {"field": "config.name", "message": "This field is required."}
    ]
    assert registry.get("http").incomplete({}) == [
        {"field": "config.url", "message": "This field is required."}
    ]
    assert registry.get("output").incomplete({}) == []


def test_config_must_be_an_object():
    assert registry.get("text").config_errors(["x"]) == [
        {"field": "config", "message": "Config must be a JSON object."}
    ]


@pytest.mark.parametrize(
    ("config", "field"),
    [
        ({"operator": "matches", "operand": "("}, "config.operand"),
        ({"operator": "gt", "operand": "abc"}, "config.operand"),
        ({"operator": "between"}, "config.operator"),
    ],
)
def test_condition_config_errors(config, field):
    assert [e["field"] for e in registry.get("condition").config_errors(config)] == [field]


def test_condition_accepts_numeric_operands_for_comparisons():
    assert registry.get("condition").config_errors({"operator": "gt", "operand": "2.5"}) == []


def test_http_checks_literal_urls_and_header_names():
    http = registry.get("http")
    assert http.config_errors({"url": "ftp://example.com"})[0]["field"] == "config.url"
    assert http.config_errors({"url": "{u}", "headers": {"bad name": "x"}})[0]["field"] == (
        "config.headers"
    )
    assert http.config_errors({"url": "https://example.com", "method": "BREW"})[0]["field"] == (
        "config.method"
    )


def test_extract_path_parsing():
    assert parse_path("") == []
    assert parse_path("a.b[0].c") == ["a", "b", 0, "c"]
    assert parse_path("[1][-1].x") == [1, -1, "x"]
    for bad in ("a..b", "a[x]", "a[", ".a", "a."):
        with pytest.raises(PathSyntaxError):
            parse_path(bad)
    assert registry.get("extract").config_errors({"path": "a..b"})[0]["field"] == "config.path"


def test_defaults_fill_missing_fields():
    assert registry.get("llm").config_with_defaults({"provider": "groq", "model": "m"}) == {
        "provider": "groq",
        "model": "m",
        "temperature": 0.7,
        "max_tokens": None,
        "json": False,
        "seed": None,
        "cache": True,
    }
