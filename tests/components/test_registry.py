"""The built-in types: registered lazily, configurations checked, secrets declared."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from etl_meta.components import get_component_type, known_component_types
from etl_meta.definitions import load_definitions
from etl_meta.errors import ValidationError
from etl_meta.masking import MASK, mask_value
from tests.components.helpers import EXAMPLES

BUILTINS = {
    "read_csv",
    "read_parquet",
    "transform",
    "join",
    "sql",
    "validate",
    "write_csv",
    "write_parquet",
    "write_table",
    "python",
}


def test_every_builtin_is_listed_without_importing_pandas() -> None:
    code = (
        "import json, sys, etl_meta, etl_meta.components as c;"
        "names = sorted(c.known_component_types());"
        "heavy = [m for m in ('pandas', 'pyarrow') if m in sys.modules];"
        "print(json.dumps({'names': names, 'heavy': heavy}))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    found = json.loads(result.stdout)
    assert set(found["names"]) >= BUILTINS
    assert found["heavy"] == []


def test_each_builtin_has_a_description_and_a_strict_config() -> None:
    types = known_component_types()
    for name in BUILTINS:
        assert types[name].name == name
        assert types[name].description
        assert types[name].Config.model_config["extra"] == "forbid"


def test_every_configuration_in_the_example_pipeline_is_accepted() -> None:
    definitions = load_definitions(EXAMPLES / "pipeline.yaml")
    for job in definitions.jobs:
        for component in job.components:
            get_component_type(component.component_type).parse_config(component.configuration)


@pytest.mark.parametrize(
    ("component_type", "configuration", "field"),
    [
        ("read_csv", {}, "configuration.path"),
        ("read_csv", {"path": "a.csv", "delimiter": ";"}, "configuration.delimiter"),
        ("read_csv", {"path": ""}, "configuration.path"),
        ("read_parquet", {"path": "a.parquet", "columns": "a"}, "configuration.columns"),
        ("transform", {"select": "a"}, "configuration.select"),
        ("transform", {"expressions": {"a": 1}}, "configuration.expressions.a"),
        ("join", {"how": "left"}, "configuration.on"),
        ("join", {"on": "id", "how": "sideways"}, "configuration.how"),
        ("join", {"on": "id", "cardinality": "1:1"}, "configuration.cardinality"),
        ("sql", {"query": "   "}, "configuration.query"),
        ("validate", {"dataclass": "sales", "on_failure": "explode"}, "configuration.on_failure"),
        ("write_csv", {"path": "a.csv", "index": "maybe"}, "configuration.index"),
        ("write_parquet", {"path": "a.parquet", "compression": "rar"}, "configuration.compression"),
        ("write_table", {"table": "t"}, "configuration.connection_url"),
        (
            "write_table",
            {"table": "t", "connection_url": "sqlite://", "if_exists": "truncate"},
            "configuration.if_exists",
        ),
        (
            "write_table",
            {"table": "t", "connection_url": "sqlite://", "schema": ""},
            "configuration.schema",
        ),
        (
            "write_table",
            {"table": "t", "connection_url": "sqlite://", "db_schema": "x"},
            "configuration.db_schema",
        ),
        ("python", {"callable": "no_colon"}, "configuration.callable"),
        ("python", {"callable": "m:f", "kwargs": {"inputs": 1}}, "configuration.kwargs"),
    ],
)
def test_a_bad_configuration_names_the_field(
    component_type: str, configuration: dict, field: str
) -> None:
    with pytest.raises(ValidationError) as caught:
        get_component_type(component_type).parse_config(configuration)
    assert caught.value.field == field
    assert caught.value.entity == f"{component_type} configuration"


def test_a_rejected_connection_url_is_not_quoted_in_the_error() -> None:
    secret = "postgresql://etl:hunter2@db/warehouse"
    with pytest.raises(ValidationError) as caught:
        get_component_type("write_table").parse_config(
            {"table": "t", "connection_url": secret, "if_exists": secret}
        )
    assert "hunter2" not in str(caught.value)


def test_write_table_declares_its_connection_url_secret() -> None:
    known_component_types()  # registering the built-ins declares their secret keys
    configuration = {
        "table": "daily_sales",
        "connection_url": "postgresql://etl:hunter2@db/warehouse",
        "password": "change-me",
    }

    masked = mask_value(configuration, component_type="write_table")

    # A URL secret shows which database, never the password.
    shown = "postgresql://etl:***@db/warehouse"
    assert masked == {"table": "daily_sales", "connection_url": shown, "password": MASK}
    # The key is secret because the type says so: its name alone is not on the built-in list.
    plain = mask_value(configuration, component_type="read_csv")
    assert plain["connection_url"] == configuration["connection_url"]
    # Where the type is unknown (run config overrides), every declared key is masked.
    assert mask_value(configuration)["connection_url"] == shown


def test_write_table_config_keeps_secrets_out_of_its_repr() -> None:
    config = get_component_type("write_table").parse_config(
        {"table": "t", "connection_url": "postgresql://etl:hunter2@db/w", "password": "pw-42"}
    )
    assert "hunter2" not in repr(config)
    assert "pw-42" not in repr(config)
