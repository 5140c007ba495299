"""validate: every rule catches a real violation; failures name columns and counts, not values."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from etl_meta.components import ComponentResult, DataclassInfo
from etl_meta.components.errors import ComponentFailed
from tests.components.helpers import run_component

SCHEMA = {
    "columns": {
        "order_id": "int64",
        "customer_id": "int64",
        "order_date": "datetime64[ns]",
        "email": "string",
        "amount": "float64",
        "status": "string",
    },
    "primary_key": ["order_id"],
}
RULES = {
    "not_null": ["order_id", "email"],
    "unique": ["order_id", "email"],
    "ranges": {"amount": {"min": 0, "max": 1000}, "order_date": {"min": "2026-01-01"}},
    "allowed_values": {"status": ["placed", "shipped", "cancelled"]},
    "min_rows": 1,
}


def sales(**changes: list[Any]) -> pd.DataFrame:
    """A table that passes SCHEMA and RULES, with ``changes`` replacing whole columns."""
    data: dict[str, list[Any]] = {
        "order_id": [1, 2, 3],
        "customer_id": [10, 20, 10],
        "order_date": pd.to_datetime(["2026-01-01", "2026-01-02", "2026-01-02"]).tolist(),
        "email": ["ada@example.com", "grace@example.com", "alan@example.com"],
        "amount": [12.5, 80, 7.25],
        "status": ["placed", "shipped", "cancelled"],
    }
    data.update(changes)
    return pd.DataFrame(data)


def validate(
    frame: pd.DataFrame,
    *,
    config: Mapping[str, Any] | None = None,
    schema: Mapping[str, Any] = SCHEMA,
    rules: Mapping[str, Any] = RULES,
    tmp_path: Path,
) -> ComponentResult:
    info = DataclassInfo("sales", "table", schema, rules, version=3)
    return run_component(
        "validate",
        {"dataclass": "sales", **(config or {})},
        {"join_customers": frame},
        base_dir=tmp_path,
        name="validate_sales",
        reads=("sales",),
        dataclasses={"sales": info},
    )


def failure(frame: pd.DataFrame, tmp_path: Path, **kwargs: Any) -> ComponentFailed:
    with pytest.raises(ComponentFailed) as caught:
        validate(frame, tmp_path=tmp_path, **kwargs)
    return caught.value


def test_a_conforming_table_passes_unchanged_with_metrics_and_metadata(tmp_path: Path) -> None:
    frame = sales()

    result = validate(frame, tmp_path=tmp_path)

    assert result.value is frame
    # min_rows, 6 x (column, dtype), primary key, 2 not_null, 2 unique, 2 ranges, 1 allowed.
    assert result.metrics == {"rows": 3, "checks_passed": 21, "checks_failed": 0}
    assert result.metadata["dataclass"] == "sales"
    assert result.metadata["row_count"] == 3
    assert result.metadata["columns"]["order_id"] == "int64"
    assert {"rule": "not_null", "column": "email", "passed": True, "failing_rows": 0} in [
        {k: v for k, v in check.items() if k != "detail"} for check in result.metadata["checks"]
    ]


@pytest.mark.parametrize(
    ("column", "values", "metric", "count"),
    [
        ("email", ["ada@example.com", None, None], "failed.not_null.email", 2),
        (
            "email",
            ["dup@example.com", "dup@example.com", "x@example.com"],
            "failed.unique.email",
            2,
        ),
        ("amount", [-1.0, 80.0, 1000.01], "failed.ranges.amount", 2),
        ("status", ["placed", "lost", "returned"], "failed.allowed_values.status", 2),
        ("order_id", [1, 1, 3], "failed.primary_key.order_id", 2),
    ],
)
def test_each_row_rule_counts_the_offending_rows(
    tmp_path: Path, column: str, values: list[Any], metric: str, count: int
) -> None:
    failed = failure(sales(**{column: values}), tmp_path)

    assert failed.component == "validate_sales"
    rule = metric.split(".")[1]
    assert f"{rule}({column}): {count} rows" in str(failed)
    assert {(c["rule"], c["column"], c["failing_rows"]) for c in failed.checks} >= {
        (rule, column, count)
    }


def test_check_records_are_plain_json(tmp_path: Path) -> None:
    # Dagster puts a failed step's check records into its Failure as JSON metadata and refuses
    # what json cannot write: counts from pandas came as numpy scalars, ``passed`` a numpy bool.
    failed = failure(
        sales(order_id=[1, 1, 3], email=["a@example.com", None, "a@example.com"]), tmp_path
    )
    passed = validate(sales(), tmp_path=tmp_path)

    records = [*failed.checks, *passed.metadata["checks"]]
    assert {type(record["passed"]) for record in records} == {bool}
    assert {type(record["failing_rows"]) for record in records} <= {int, type(None)}
    assert json.loads(json.dumps(records)) == records


def test_metrics_record_every_failed_check(tmp_path: Path) -> None:
    frame = sales(email=["ada@example.com", None, "ada@example.com"], amount=[1.0, -2.0, 3.0])

    result = validate(frame, config={"on_failure": "warn"}, tmp_path=tmp_path)

    assert result.metrics == {
        "rows": 3,
        "checks_passed": 18,
        "checks_failed": 3,
        "failed.not_null.email": 1,
        "failed.unique.email": 2,
        "failed.ranges.amount": 1,
    }


def test_a_failing_step_records_its_metrics_before_raising(tmp_path: Path) -> None:
    recorded: list[Mapping[str, float]] = []
    info = DataclassInfo("sales", "table", SCHEMA, RULES, version=1)

    with pytest.raises(ComponentFailed):
        run_component(
            "validate",
            {"dataclass": "sales"},
            {"join": sales(email=["a@example.com", None, "c@example.com"])},
            base_dir=tmp_path,
            dataclasses={"sales": info},
            record_metrics=recorded.append,
        )

    assert recorded == [
        {"rows": 3, "checks_passed": 20, "checks_failed": 1, "failed.not_null.email": 1}
    ]


def test_dates_in_ranges_compare_as_timestamps(tmp_path: Path) -> None:
    early = pd.to_datetime(["2025-12-31", "2026-01-02", "2026-01-02"]).tolist()

    failed = failure(sales(order_date=early), tmp_path)

    assert "ranges(order_date): 1 row" in str(failed)


def test_unique_combinations_and_nulls(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {"sku": ["a", "a", "b", None, None], "site": ["AMS", "AMS", "AMS", "LON", "LON"]}
    )
    rules = {"unique": [["sku", "site"], "site"]}

    result = validate(
        frame, schema={}, rules=rules, config={"on_failure": "warn"}, tmp_path=tmp_path
    )

    # Rows 0 and 1 repeat (a, AMS); rows with a missing sku are not compared.
    assert result.metrics["failed.unique.sku,site"] == 2
    assert result.metrics["failed.unique.site"] == 5


def test_primary_key_must_not_be_null(tmp_path: Path) -> None:
    frame = sales(order_id=[1.0, None, 3.0])

    failed = failure(frame, tmp_path)

    assert "primary_key(order_id): 1 row" in str(failed)
    assert "dtype(order_id): expected int64, got float64" in str(failed)


def test_row_count_bounds(tmp_path: Path) -> None:
    empty = sales().iloc[0:0]

    too_few = failure(empty, tmp_path)
    too_many = failure(sales(), tmp_path, rules={"max_rows": 2})

    assert "min_rows: 0 rows, at least 1 required" in str(too_few)
    assert "max_rows: 3 rows, at most 2 allowed" in str(too_many)


def test_schema_checks_missing_columns_and_dtypes(tmp_path: Path) -> None:
    frame = sales(amount=["12.50", "80", "7.25"]).drop(columns=["customer_id"])

    failed = failure(frame, tmp_path)

    message = str(failed)
    assert "column(customer_id): column missing" in message
    assert "dtype(amount): expected float64, got" in message
    assert "ranges(amount): " in message  # text does not compare with numbers either


def test_dtypes_compare_by_kind(tmp_path: Path) -> None:
    frame = pd.DataFrame(
        {
            "small_int": pd.Series([1, 2], dtype="int32"),
            "nullable_int": pd.Series([1, None], dtype="Int64"),
            "whole_floats": [1, 2],  # an integer column fits a float schema
            "text_objects": pd.Series(["a", None], dtype=object),
            "seconds": pd.to_datetime(["2026-01-01", "2026-01-02"]).as_unit("s"),
            "anything": [object(), 1],
        }
    )
    schema = {
        "columns": {
            "small_int": "int64",
            "nullable_int": "int64",
            "whole_floats": "float64",
            "text_objects": "string",
            "seconds": "datetime64[ns]",
            "anything": "object",
        }
    }

    result = validate(frame, schema=schema, rules={}, tmp_path=tmp_path)
    assert result.metrics["checks_failed"] == 0

    mixed = frame.assign(text_objects=pd.Series(["a", 1], dtype=object))
    failed = failure(mixed, tmp_path, schema=schema, rules={})
    assert "dtype(text_objects)" in str(failed)


def test_extra_columns_fail_only_when_not_allowed(tmp_path: Path) -> None:
    frame = sales(internal_note=["x", "y", "z"])

    assert validate(frame, tmp_path=tmp_path).metrics["checks_failed"] == 0
    failed = failure(frame, tmp_path, config={"allow_extra_columns": False})
    assert "unexpected_column(internal_note): not in the schema" in str(failed)


def test_failures_never_quote_row_values(tmp_path: Path) -> None:
    frame = sales(
        email=["leak@example.com", "leak@example.com", None],
        status=["placed", "SECRET-STATUS", "placed"],
    )

    failed = failure(frame, tmp_path)

    text = str(failed) + repr(failed.checks)
    assert "leak@example.com" not in text
    assert "SECRET-STATUS" not in text
    assert "3 of 21 checks failed against dataclass 'sales'" in str(failed)


def test_warn_logs_the_failures_and_passes_the_table_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    frame = sales(email=["a@example.com", None, "c@example.com"])

    with caplog.at_level(logging.WARNING):
        result = validate(frame, config={"on_failure": "warn"}, tmp_path=tmp_path)

    assert result.value is frame
    assert result.metrics["checks_failed"] == 1
    assert "not_null(email): 1 row" in caplog.text
    assert "on_failure=warn" in caplog.text


def test_dataclass_defaults_to_the_single_input_dataclass(tmp_path: Path) -> None:
    info = DataclassInfo("sales", "table", SCHEMA, RULES, version=1)

    result = run_component(
        "validate",
        {},
        {"join": sales()},
        base_dir=tmp_path,
        reads=("sales",),
        dataclasses={"sales": info},
    )

    assert result.metadata["dataclass"] == "sales"


def test_an_unknown_dataclass_or_no_default_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(ComponentFailed, match="has no dataclass 'orders'"):
        run_component("validate", {"dataclass": "orders"}, {"a": sales()}, base_dir=tmp_path)
    with pytest.raises(ComponentFailed, match="set `dataclass`"):
        run_component("validate", {}, {"a": sales()}, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("rules", "field"),
    [
        ({"not_nul": ["a"]}, "validation_rules.not_nul"),
        ({"ranges": {"amount": {"minimum": 0}}}, "validation_rules.ranges.amount.minimum"),
        ({"min_rows": -1}, "validation_rules.min_rows"),
    ],
)
def test_rules_it_does_not_understand_are_errors(tmp_path: Path, rules: dict, field: str) -> None:
    failed = failure(sales(), tmp_path, rules=rules)
    assert f"cannot use the dataclass: {field}" in str(failed)
