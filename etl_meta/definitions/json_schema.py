"""The JSON Schema of a definitions file, for editors: completion, hover help, errors as you type.

Built from the models the loader validates with (:mod:`etl_meta.definitions.spec`) and from the
installed component types: a component's ``configuration`` is checked against the ``Config``
model of its ``component_type``. Editors that use yaml-language-server (VS Code's YAML extension,
Neovim, Helix, JetBrains IDEs…) read it from a modeline on a definitions file's first line::

    # yaml-language-server: $schema=./definitions.schema.json

The schema helps while typing; it is not the gate. ``etl-meta apply`` still checks everything,
including what JSON Schema cannot say: names declared twice, dependency cycles, control
characters in text, dataclasses that must exist in the store, the operator's size limits.
"""

from __future__ import annotations

import inspect
from typing import TYPE_CHECKING, Any

from pydantic.json_schema import GenerateJsonSchema, JsonSchemaValue
from pydantic_core import core_schema

from etl_meta.components.problems import WORKER_TYPES_ENV
from etl_meta.components.registry import known_component_types
from etl_meta.definitions.spec import _EMPTY_MEANS_NONE, FORMAT_VERSION, DefinitionsFile
from etl_meta.validation import (
    IDENTIFIER_MAX,
    IDENTIFIER_RE,
    TYPE_NAME_RE,
    check_identifier,
    check_type_name,
)

if TYPE_CHECKING:
    from etl_meta.components.base import ComponentType
    from etl_meta.config import Settings

DIALECT = "https://json-schema.org/draft/2020-12/schema"
_BUILTIN_PACKAGE = "etl_meta.components.builtin."
#: ``$defs`` key of a type's configuration schema. Type names cannot hold ``:``, so these keys
#: collide neither with the spec models' definitions nor with each other.
_CONFIG_DEF = "config:{}"

# The store's name checks are plain functions (AfterValidator) that pydantic cannot describe;
# these are the same rules as JSON Schema keywords.
_NAME_RULES: dict[Any, dict[str, Any]] = {
    check_identifier: {"pattern": IDENTIFIER_RE.pattern, "maxLength": IDENTIFIER_MAX},
    check_type_name: {"pattern": TYPE_NAME_RE.pattern, "maxLength": 100},
}

_SECRET_HELP = {
    "value": "Secret: encrypted at rest, and shown as *** wherever etl-meta prints or records it.",
    "url": (
        "Secret URL: encrypted at rest; wherever etl-meta prints or records it, its password "
        "(and any sensitive query parameter) shows as ***."
    ),
}

# ECMA-262 (the regex dialect of JSON Schema) refuses needless escapes under the `u` flag, so
# escape exactly its syntax characters rather than use re.escape.
_REGEX_SYNTAX = frozenset("^$\\.*+?()[]{}|/")


def _regex_literal(text: str) -> str:
    return "".join(f"\\{char}" if char in _REGEX_SYNTAX else char for char in text)


def _any_case(value: str) -> str:
    return "".join(
        f"[{char.upper()}{char.lower()}]" if char.upper() != char.lower() else _regex_literal(char)
        for char in value
    )


class _Schema(GenerateJsonSchema):
    """Pydantic's generator, plus what the store's own validators enforce."""

    def function_after_schema(
        self, schema: core_schema.AfterValidatorFunctionSchema
    ) -> JsonSchemaValue:
        json_schema = super().function_after_schema(schema)
        rules = _NAME_RULES.get(schema["function"].get("function"))
        return {**json_schema, **rules} if rules else json_schema

    def dict_schema(self, schema: core_schema.DictSchema) -> JsonSchemaValue:
        json_schema = super().dict_schema(schema)
        # A key that breaks the key pattern is refused by pydantic, not let through.
        if "patternProperties" in json_schema:
            json_schema.setdefault("additionalProperties", False)
        return json_schema


class _SpecSchema(_Schema):
    """For the file format's models, whose enums accept any letter case (``lenient_enum``)."""

    def enum_schema(self, schema: core_schema.EnumSchema) -> JsonSchemaValue:
        json_schema = super().enum_schema(schema)
        values = json_schema.pop("enum")
        any_case = "|".join(_any_case(str(value)) for value in values)
        # The enum branch is what editors offer for completion; the pattern what the loader takes.
        json_schema["anyOf"] = [{"enum": values}, {"pattern": rf"^\s*(?:{any_case})\s*$"}]
        return json_schema


def _allow_null_lists(model_schema: dict[str, Any]) -> None:
    # `components:` with nothing after it is YAML null, which the loader reads as "none".
    for name, prop in model_schema.get("properties", {}).items():
        if name in _EMPTY_MEANS_NONE and isinstance(prop.get("type"), str):
            prop["type"] = [prop["type"], "null"]


def _mark_secrets(config_schema: dict[str, Any], component_type: type[ComponentType]) -> None:
    properties = config_schema.get("properties", {})
    for key, kind in component_type.secret_fields().items():
        prop = properties.get(key)
        if prop is None:
            continue
        prop["writeOnly"] = True
        prop["description"] = " ".join(filter(None, (prop.get("description"), _SECRET_HELP[kind])))


def _configuration_schema(
    name: str, component_type: type[ComponentType]
) -> tuple[dict[str, Any], dict[str, Any]]:
    """``(schema, nested definitions)`` of ``component_type``'s configuration."""
    key = _CONFIG_DEF.format(name)
    schema = component_type.Config.model_json_schema(
        mode="validation", ref_template=f"#/$defs/{key}:{{model}}", schema_generator=_Schema
    )
    nested = {f"{key}:{model}": value for model, value in schema.pop("$defs", {}).items()}
    schema["title"] = f"{name} configuration"
    # The Config's own docstring if it has one, else the type's (which describes its keys).
    type_doc = component_type.__doc__ and inspect.cleandoc(component_type.__doc__)
    description = schema.get("description") or type_doc or component_type.description
    if description:
        schema["description"] = description
    _mark_secrets(schema, component_type)
    return schema, nested


def _component_type_schema(prop: dict[str, Any], known: list[str], worker_types: list[str]) -> None:
    exact = sorted({*known, *(entry for entry in worker_types if not entry.endswith(".*"))})
    families = sorted({entry[:-2] for entry in worker_types if entry.endswith(".*")})
    prop["description"] = "The type that runs this component: " + (
        "one installed where this schema was generated (built-in or plugin)."
        if not worker_types
        else "one installed where this schema was generated (built-in or plugin), or one "
        f"declared installed only on workers ({WORKER_TYPES_ENV}), whose configuration the "
        "workers check when they run it."
    )
    if families:
        prop["anyOf"] = [
            {"enum": exact},
            *({"pattern": f"^{_regex_literal(family)}\\."} for family in families),
        ]
    else:
        prop["enum"] = exact


def _select_configuration(name: str, config_schema: dict[str, Any]) -> dict[str, Any]:
    then: dict[str, Any] = {
        "properties": {"configuration": {"$ref": f"#/$defs/{_CONFIG_DEF.format(name)}"}}
    }
    if config_schema.get("required"):  # an absent configuration is {}, which lacks them
        then["required"] = ["configuration"]
    return {
        "if": {"properties": {"component_type": {"const": name}}, "required": ["component_type"]},
        "then": then,
    }


def definitions_json_schema(
    settings: Settings | None = None, *, builtin_only: bool = False
) -> dict[str, Any]:
    """The JSON Schema (draft 2020-12) of a definitions file, as a JSON-ready dict.

    ``component_type`` must name a type installed in this process (built-ins and plugins of the
    ``etl_meta.component_types`` entry point), whose ``Config`` then checks ``configuration``,
    or one that ``settings.worker_component_types`` declares installed only on workers (its
    configuration is left unchecked, as the store does). ``settings`` defaults to the
    process-wide settings. ``builtin_only`` leaves out plugins and worker-only types: the schema
    of etl-meta itself, the same on every machine (``examples/definitions.schema.json``).

        >>> schema = definitions_json_schema(builtin_only=True)
        >>> schema["$defs"]["config:read_csv"]["required"]
        ['path']
    """
    types = known_component_types()
    worker_types: list[str] = []
    if builtin_only:
        types = {n: t for n, t in types.items() if t.__module__.startswith(_BUILTIN_PACKAGE)}
    else:
        if settings is None:
            from etl_meta.config import get_settings

            settings = get_settings()
        worker_types = list(settings.worker_component_types)

    spec = DefinitionsFile.model_json_schema(mode="validation", schema_generator=_SpecSchema)
    definitions: dict[str, Any] = spec.pop("$defs")
    for model_schema in (spec, *definitions.values()):
        _allow_null_lists(model_schema)
    spec["properties"]["version"]["const"] = FORMAT_VERSION

    selections = []
    for name, component_type in sorted(types.items()):
        config_schema, nested = _configuration_schema(name, component_type)
        definitions[_CONFIG_DEF.format(name)] = config_schema
        definitions.update(nested)
        selections.append(_select_configuration(name, config_schema))
    component = definitions["ComponentSpec"]
    _component_type_schema(component["properties"]["component_type"], sorted(types), worker_types)
    component["properties"]["configuration"]["description"] = (
        "Checked against the configuration schema of the component's type."
    )
    if selections:
        component["allOf"] = selections

    spec.pop("title", None)
    spec.pop("description", None)
    return {
        "$schema": DIALECT,
        "$comment": "Generated by `etl-meta schema`; regenerate it rather than edit it.",
        "title": "etl-meta definitions file",
        "description": (
            "Dataclasses and jobs for `etl-meta apply` (docs/definitions.md). Unknown keys are "
            "errors at every level."
        ),
        **spec,
        "$defs": definitions,
    }
