"""``etl-meta schema``: prints the definitions file's JSON Schema, or writes it with ``-o``."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from jsonschema import Draft202012Validator
from typer.testing import CliRunner

from etl_meta.cli import app
from etl_meta.config import get_settings

runner = CliRunner()


@pytest.fixture(autouse=True)
def _fresh_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[None]:
    """The command reads the process-wide settings: read them again from this test's env."""
    monkeypatch.setenv("ETL_META_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ETL_META_WORKER_COMPONENT_TYPES", raising=False)
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def component_types(schema: dict) -> dict:
    return schema["$defs"]["ComponentSpec"]["properties"]["component_type"]


def test_schema_prints_a_valid_json_schema_of_the_installed_types() -> None:
    result = runner.invoke(app, ["schema"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    Draft202012Validator.check_schema(schema)
    assert {"read_csv", "write_table"} <= set(component_types(schema)["enum"])


def test_schema_with_o_writes_the_file_and_says_so(tmp_path: Path) -> None:
    target = tmp_path / "definitions.schema.json"

    result = runner.invoke(app, ["schema", "-o", str(target)], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"wrote {target}"
    printed = runner.invoke(app, ["schema"], catch_exceptions=False).stdout
    assert target.read_text(encoding="utf-8") == printed


def test_schema_accepts_the_worker_only_types_the_environment_declares(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ETL_META_WORKER_COMPONENT_TYPES", "spark.*, legacy_loader")

    result = runner.invoke(app, ["schema"], catch_exceptions=False)

    assert result.exit_code == 0, result.output
    enum_branch, family = component_types(json.loads(result.stdout))["anyOf"]
    assert "legacy_loader" in enum_branch["enum"]
    assert family == {"pattern": "^spark\\."}


def test_schema_into_a_missing_directory_exits_1_naming_the_file(tmp_path: Path) -> None:
    target = tmp_path / "missing" / "definitions.schema.json"

    result = runner.invoke(app, ["schema", "-o", str(target)])

    assert result.exit_code == 1
    assert f"cannot write {target}" in result.stderr
