"""The node-type registry: port types, ports, the ``NodeType`` description and the registry.

``graphs`` owns the registry and never imports ``workflows``. What ``graphs`` needs of a node
type is its description (``NodeType``: name, label, ports, config schema), so that is all it
declares; behaviour is declared in ``workflows/nodes/base.py`` (``Node``, a subclass of
``NodeType`` with ``run``, ``blocking``, ``cacheable``, ``safe_to_repeat``). Each node type is
one module in ``workflows/nodes/`` that ``WorkflowsConfig.ready()`` registers here. Graph
validation, the ``/api/node-types/`` endpoint and the engine all look types up through
``registry``.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any, ClassVar

from jsonschema import Draft202012Validator
from jsonschema.exceptions import ValidationError as SchemaError

FieldError = dict[str, str]


class PortType(enum.StrEnum):
    TEXT = "text"
    JSON = "json"
    NUMBER = "number"
    BOOL = "bool"
    ANY = "any"


def ports_compatible(source: PortType, target: PortType) -> bool:
    """Whether an edge may join an output of type ``source`` to an input of type ``target``.

    ``any`` joins every type in both directions; otherwise the types must be equal.
    """
    return source == target or PortType.ANY in (source, target)


@dataclass(frozen=True)
class Port:
    name: str
    type: PortType
    required: bool = True
    description: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type.value,
            "required": self.required,
            "description": self.description,
        }


def error(field: str, message: str) -> FieldError:
    """One entry of the design's error map: ``{"field", "message"}``."""
    return {"field": field, "message": message}


def _schema_path(path: Iterable[Any]) -> str:
    field = "config"
    for part in path:
        field += f"[{part}]" if isinstance(part, int) else f".{part}"
    return field


class NodeType:
    """A node type as graphs see it: its ports and its config JSON schema (its behaviour is
    ``workflows.nodes.base.Node``'s).

    Subclasses set the class attributes; the methods are classmethods so callers can use the
    class straight from ``registry.get(...)``. Fields named in ``config_schema["required"]`` that
    are missing or blank make a node *incomplete* (it saves; ``validate`` reports it); every
    other schema violation is *structural* (writes reject it).
    """

    type: ClassVar[str] = ""
    label: ClassVar[str] = ""
    description: ClassVar[str] = ""
    inputs: ClassVar[tuple[Port, ...]] = ()
    outputs: ClassVar[tuple[Port, ...]] = ()
    config_schema: ClassVar[dict[str, Any]] = {"type": "object"}
    # True when input ports come from the config (template and http variables).
    dynamic_inputs: ClassVar[bool] = False

    # --- ports ------------------------------------------------------------------------------

    @classmethod
    def input_ports(cls, config: dict[str, Any] | None = None) -> list[Port]:
        """Static inputs plus the ones the config derives (``dynamic_input_ports``)."""
        ports = list(cls.inputs)
        if cls.dynamic_inputs:
            static = {port.name for port in ports}
            for port in cls.dynamic_input_ports(config if isinstance(config, dict) else {}):
                if port.name not in static:
                    ports.append(port)
                    static.add(port.name)
        return ports

    @classmethod
    def output_ports(cls, config: dict[str, Any] | None = None) -> list[Port]:
        return list(cls.outputs)

    @classmethod
    def dynamic_input_ports(cls, config: dict[str, Any]) -> list[Port]:
        """Config-derived inputs; types with ``dynamic_inputs`` override this.

        Called with configs that may be structurally invalid: derive what can be derived and
        never raise (``config_errors`` reports the problems).
        """
        return []

    # --- config -----------------------------------------------------------------------------

    @classmethod
    def _validator(cls) -> Draft202012Validator:
        # One compiled validator per class (not inherited: each subclass has its own schema).
        validator = cls.__dict__.get("_compiled_validator")
        if validator is None:
            Draft202012Validator.check_schema(cls.config_schema)
            validator = Draft202012Validator(cls.config_schema)
            cls._compiled_validator = validator
        return validator

    @classmethod
    def required_fields(cls) -> list[str]:
        return list(cls.config_schema.get("required", []))

    @classmethod
    def _blank_required(cls, config: dict[str, Any]) -> list[str]:
        return [
            name
            for name in cls.required_fields()
            if config.get(name) is None
            or (isinstance(config.get(name), str) and not config[name].strip())
        ]

    @classmethod
    def config_errors(cls, config: Any) -> list[FieldError]:
        """Structural config errors: schema violations except missing or blank required fields,
        plus what ``extra_config_errors`` finds (template syntax, a regex that does not compile).
        """
        if not isinstance(config, dict):
            return [error("config", "Config must be a JSON object.")]
        blank = set(cls._blank_required(config))
        errors = []
        for problem in sorted(cls._validator().iter_errors(config), key=_error_order):
            if problem.validator == "required":
                continue  # reported by incomplete()
            top = problem.absolute_path[0] if problem.absolute_path else None
            if top in blank:
                continue  # a blank required field is incomplete, not wrong
            if problem.validator == "additionalProperties" and isinstance(problem.instance, dict):
                known = problem.schema.get("properties", {})
                errors.extend(
                    error(_schema_path([*problem.absolute_path, key]), "Unknown field.")
                    for key in problem.instance
                    if key not in known
                )
                continue
            if problem.validator == "propertyNames":
                field = _schema_path(problem.absolute_path)
                errors.append(error(field, f"{problem.instance!r} is not a valid name."))
                continue
            errors.append(error(_schema_path(problem.absolute_path), _message(problem)))
        if not errors:
            # Type-specific checks assume the config matched the schema.
            errors.extend(cls.extra_config_errors(config))
        return errors

    @classmethod
    def extra_config_errors(cls, config: dict[str, Any]) -> list[FieldError]:
        """Checks a JSON schema cannot express; called only on schema-valid configs."""
        return []

    @classmethod
    def incomplete(cls, config: Any) -> list[FieldError]:
        """Required config fields not filled yet (missing, null or blank)."""
        if not isinstance(config, dict):
            return []
        return [
            error(f"config.{name}", "This field is required.")
            for name in cls._blank_required(config)
        ]

    @classmethod
    def config_with_defaults(cls, config: dict[str, Any]) -> dict[str, Any]:
        """The config with each missing top-level property filled from its schema ``default``."""
        merged = dict(config)
        for name, schema in cls.config_schema.get("properties", {}).items():
            if name not in merged and "default" in schema:
                merged[name] = schema["default"]
        return merged

    # --- description ------------------------------------------------------------------------

    @classmethod
    def describe(cls) -> dict[str, Any]:
        """The ``/api/node-types/`` entry of this type."""
        return {
            "type": cls.type,
            "label": cls.label,
            "description": cls.description,
            "inputs": [port.as_dict() for port in cls.inputs],
            "outputs": [port.as_dict() for port in cls.outputs],
            "dynamic_inputs": cls.dynamic_inputs,
            "config_schema": cls.config_schema,
        }


def _error_order(problem: SchemaError) -> tuple:
    return tuple(str(part) for part in problem.absolute_path), problem.message


def _message(problem: SchemaError) -> str:
    if problem.validator == "enum":
        choices = ", ".join(repr(choice) for choice in problem.validator_value)
        return f"{problem.instance!r} is not one of {choices}."
    return problem.message


class UnknownNodeType(LookupError):
    def __init__(self, type_name: str):
        super().__init__(f"Unknown node type {type_name!r}.")
        self.type_name = type_name


class NodeTypeRegistry:
    def __init__(self) -> None:
        self._types: dict[str, type[NodeType]] = {}

    def register(self, cls: type[NodeType]) -> type[NodeType]:
        """Register a node type class; usable as a decorator. A second class for one name
        is a programming error (two modules claiming one type)."""
        if not cls.type:
            raise ValueError(f"{cls.__name__} has no `type`")
        existing = self._types.get(cls.type)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"node type {cls.type!r} is already registered by {existing.__module__}"
            )
        cls._validator()  # a broken schema fails at start-up, not on a user's request
        self._types[cls.type] = cls
        return cls

    def get(self, type_name: str) -> type[NodeType]:
        try:
            return self._types[type_name]
        except (KeyError, TypeError):
            raise UnknownNodeType(type_name) from None

    def has(self, type_name: str) -> bool:
        return isinstance(type_name, str) and type_name in self._types

    def all(self) -> list[type[NodeType]]:
        return list(self._types.values())

    def unregister(self, type_name: str) -> None:
        """For tests that register throwaway types."""
        self._types.pop(type_name, None)


registry = NodeTypeRegistry()
