"""The JSON Schema for editors agrees with the loader, and the checked-in copy is current."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from etl_meta.cli import app
from etl_meta.components import ComponentType, register
from etl_meta.components.contracts import SecretText
from etl_meta.config import Settings
from etl_meta.definitions import DefinitionsError, validate_definitions
from etl_meta.definitions.contracts import contract_problems
from etl_meta.definitions.json_schema import definitions_json_schema
from etl_meta.definitions.loader import load_yaml
from tests.backends import isolated_settings
from tests.definitions.helpers import EXAMPLES

SCHEMA_FILE = EXAMPLES / "definitions.schema.json"
MODELINE = "# yaml-language-server: $schema=./definitions.schema.json"
#: YAML under examples/ that is not a definitions file.
NOT_DEFINITIONS = {"dagster.yaml"}  # Dagster's instance configuration


@register
class _Upper(ComponentType):
    """Upper-cases one column (a plugin the schema must pick up)."""

    name = "schema_test.upper"
    description = "Upper-case a column."

    class Config(ComponentType.Config):
        column: str
        api_token: SecretText | None = None


def example_definitions_files() -> list[Path]:
    return sorted(
        path
        for pattern in ("*.yaml", "*.yml")
        for path in EXAMPLES.rglob(pattern)
        if path.name not in NOT_DEFINITIONS
    )


def valid_file() -> dict[str, Any]:
    return {
        "version": 1,
        "dataclasses": [{"name": "orders", "schema_definition": {"columns": {"id": "int64"}}}],
        "jobs": [
            {
                "name": "daily",
                "num_of_retries": 2,
                "strategy_type": "Parallel",  # any letter case, as the loader takes it
                "tags": {"team": "finance"},
                "components": [
                    {
                        "name": "extract",
                        "component_type": "read_csv",
                        "configuration": {"path": "orders.csv"},
                        "outputs": ["orders"],
                    },
                    {
                        "name": "load",
                        "component_type": "write_table",
                        "status": "ACTIVE",
                        "configuration": {"table": "t", "connection_url": "sqlite:///w.db"},
                        "depends_on": ["extract"],
                    },
                ],
            },
            {"name": "empty", "components": None},  # `components:` with nothing after it
        ],
    }


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return isolated_settings(tmp_path)


def schema_errors(schema: dict[str, Any], data: Any) -> list[str]:
    return [error.message for error in Draft202012Validator(schema).iter_errors(data)]


def loader_problems(data: dict[str, Any], settings: Settings) -> list[Any]:
    """What ``etl-meta apply`` refuses before touching the store."""
    try:
        definitions = validate_definitions(copy.deepcopy(data))
    except DefinitionsError as exc:
        return list(exc.problems)
    return contract_problems(definitions, settings)


def test_the_schema_is_a_valid_draft_2020_12_schema(settings: Settings) -> None:
    schema = definitions_json_schema(settings)

    Draft202012Validator.check_schema(schema)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"


def test_the_checked_in_schema_is_what_the_command_generates(tmp_path: Path) -> None:
    generated = tmp_path / "definitions.schema.json"

    result = CliRunner().invoke(app, ["schema", "--builtin-only", "-o", str(generated)])

    assert result.exit_code == 0, result.output
    assert SCHEMA_FILE.read_text(encoding="utf-8") == generated.read_text(encoding="utf-8"), (
        "examples/definitions.schema.json is stale: run `make schema`"
    )


def test_every_example_definitions_file_names_the_schema_and_validates_against_it() -> None:
    files = example_definitions_files()
    schema = json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))

    assert EXAMPLES / "pipeline.yaml" in files
    for path in files:
        text = path.read_text(encoding="utf-8")
        assert text.splitlines()[0] == MODELINE, path
        data, _ = load_yaml(text, str(path))
        assert schema_errors(schema, data) == [], path


def test_a_valid_file_is_accepted_by_both(settings: Settings) -> None:
    schema = definitions_json_schema(settings)

    assert loader_problems(valid_file(), settings) == []
    assert schema_errors(schema, valid_file()) == []


def _first_component(data: dict[str, Any]) -> dict[str, Any]:
    return data["jobs"][0]["components"][0]


def _set(path: tuple[Any, ...], value: Any) -> Any:
    def change(data: dict[str, Any]) -> None:
        target: Any = data
        for part in path[:-1]:
            target = target[part]
        target[path[-1]] = value

    return change


def _drop_path(data: dict[str, Any]) -> None:
    del _first_component(data)["configuration"]["path"]


def _drop_configuration(data: dict[str, Any]) -> None:
    del _first_component(data)["configuration"]


COMPONENT = ("jobs", 0, "components", 0)


@pytest.mark.parametrize(
    "change",
    [
        pytest.param(_set(("jobz",), []), id="unknown top-level key"),
        pytest.param(_set(("jobs", 0, "retries"), 3), id="unknown job key"),
        pytest.param(_set((*COMPONENT, "config"), {}), id="unknown component key"),
        pytest.param(
            _set((*COMPONENT, "configuration", "delimiter"), ";"),
            id="unknown read_csv configuration key",
        ),
        pytest.param(_drop_path, id="read_csv configuration without path"),
        pytest.param(_drop_configuration, id="read_csv without configuration"),
        pytest.param(_set(("jobs", 0, "num_of_retries"), "3"), id="retries as a string"),
        pytest.param(_set(("jobs", 0, "num_of_retries"), True), id="retries as a boolean"),
        pytest.param(_set(("jobs", 0, "num_of_retries"), 101), id="too many retries"),
        pytest.param(_set((*COMPONENT, "component_type"), "read_cvs"), id="unknown type"),
        pytest.param(_set((*COMPONENT, "name"), "bad name"), id="name not an identifier"),
        pytest.param(_set(("jobs", 0, "strategy_type"), "eager"), id="unknown strategy"),
        pytest.param(_set(("jobs", 0, "tags"), {"bad key": "x"}), id="tag key not a label"),
        pytest.param(_set(("version",), 2), id="unsupported version"),
    ],
)
def test_the_schema_refuses_what_the_loader_refuses(change: Any, settings: Settings) -> None:
    data = valid_file()
    change(data)

    assert loader_problems(data, settings) != []
    assert schema_errors(definitions_json_schema(settings), data) != []


def test_a_registered_plugin_type_is_checked_against_its_config(settings: Settings) -> None:
    schema = definitions_json_schema(settings)
    data = valid_file()
    _first_component(data).update(
        component_type="schema_test.upper", configuration={"column": "name", "api_token": "t"}
    )

    assert (
        "schema_test.upper"
        in schema["$defs"]["ComponentSpec"]["properties"]["component_type"]["enum"]
    )
    config = schema["$defs"]["config:schema_test.upper"]
    assert config["required"] == ["column"]
    assert config["additionalProperties"] is False
    assert config["description"].startswith("Upper-cases one column")
    assert schema_errors(schema, data) == []
    _first_component(data)["configuration"] = {"colum": "name"}
    errors = schema_errors(schema, data)
    assert len(errors) == 2
    assert "'colum' was unexpected" in errors[0]
    assert "'column' is a required property" in errors[1]


def test_secret_fields_are_write_only_and_say_they_are_encrypted(settings: Settings) -> None:
    definitions = definitions_json_schema(settings)["$defs"]

    plugin = definitions["config:schema_test.upper"]["properties"]
    table = definitions["config:write_table"]["properties"]
    for secret in (plugin["api_token"], table["password"], table["connection_url"]):
        assert secret["writeOnly"] is True
        assert "encrypted at rest" in secret["description"]
    assert "writeOnly" not in table["table"]


def test_builtin_only_leaves_out_plugins_and_worker_only_types(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path, worker_component_types=["spark.*"])

    schema = definitions_json_schema(settings, builtin_only=True)

    component_type = schema["$defs"]["ComponentSpec"]["properties"]["component_type"]
    assert "schema_test.upper" not in component_type["enum"]
    assert "read_csv" in component_type["enum"]
    assert "config:schema_test.upper" not in schema["$defs"]


@pytest.mark.parametrize("component_type", ["spark.load", "spark.jobs.nightly", "legacy_loader"])
def test_a_worker_only_type_is_accepted_with_any_configuration(
    component_type: str, tmp_path: Path
) -> None:
    settings = isolated_settings(tmp_path, worker_component_types=["spark.*", "legacy_loader"])
    data = valid_file()
    _first_component(data).update(component_type=component_type, configuration={"any": [1]})

    assert loader_problems(data, settings) == []
    assert schema_errors(definitions_json_schema(settings), data) == []


@pytest.mark.parametrize("component_type", ["sparkle", "spark", "legacy_loader2"])
def test_a_type_merely_like_a_worker_only_one_is_refused(
    component_type: str, tmp_path: Path
) -> None:
    settings = isolated_settings(tmp_path, worker_component_types=["spark.*", "legacy_loader"])
    data = valid_file()
    _first_component(data).update(component_type=component_type, configuration={})

    assert loader_problems(data, settings) != []
    assert schema_errors(definitions_json_schema(settings), data) != []
