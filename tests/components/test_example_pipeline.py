"""The example pipeline, run for real in-process on a copy of ``examples/``."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pandas as pd
import pytest

from etl_meta.components.errors import ComponentFailed
from etl_meta.definitions import DefinitionsFile, load_definitions
from tests.components.helpers import EXAMPLES, example_copy, run_job


@pytest.fixture(scope="module")
def definitions() -> DefinitionsFile:
    return load_definitions(EXAMPLES / "pipeline.yaml")


@pytest.fixture
def base_dir(tmp_path: Path) -> Path:
    return example_copy(tmp_path)


def warehouse_rows(base_dir: Path) -> int:
    with sqlite3.connect(base_dir / "output" / "warehouse.db") as connection:
        return connection.execute("SELECT COUNT(*) FROM daily_sales").fetchone()[0]


def test_daily_sales_runs_end_to_end(definitions: DefinitionsFile, base_dir: Path) -> None:
    run = run_job(definitions, "daily_sales", base_dir)

    assert list(run.results) == [
        "extract_orders",
        "extract_customers",
        "join_customers",
        "validate_sales",
        "save_parquet",
        "load_warehouse",
    ]
    assert run.errors == {}
    assert run.results["join_customers"].metrics == {"rows": 30, "rows_left": 30, "rows_right": 10}
    assert run.results["validate_sales"].metrics["checks_failed"] == 0
    sales = pd.read_parquet(base_dir / "output" / "daily_sales.parquet")
    assert len(sales) == 30
    assert sales["name"].notna().all()  # every order found its customer
    assert warehouse_rows(base_dir) == 30
    assert run.results["load_warehouse"].metrics == {"rows_written": 30}


def test_inventory_snapshot_retries_the_flaky_rates_step(
    definitions: DefinitionsFile, base_dir: Path
) -> None:
    run = run_job(definitions, "inventory_snapshot", base_dir)

    assert run.attempts == {
        "extract_inventory": 1,
        "flag_reorders": 1,
        "save_snapshot": 1,
        "fetch_fx_rates": 2,
    }
    (error,) = run.errors["fetch_fx_rates"]
    assert isinstance(error, ConnectionError)
    rates = pd.read_csv(base_dir / "output" / "fx_rates.csv")
    assert rates["currency"].tolist() == ["GBP", "USD"]
    snapshot = pd.read_parquet(base_dir / "output" / "inventory_snapshot.parquet")
    assert len(snapshot) == 15
    assert {"stock_value", "needs_reorder"} <= set(snapshot.columns)
    assert snapshot["needs_reorder"].dtype == bool


def test_the_quality_report_reads_what_daily_sales_wrote(
    definitions: DefinitionsFile, base_dir: Path
) -> None:
    run_job(definitions, "daily_sales", base_dir)

    run = run_job(definitions, "customer_quality_report", base_dir)

    report = pd.read_csv(base_dir / "output" / "customer_quality.csv")
    # Ten customers, of whom nine ordered; revenue leaves cancelled orders out.
    assert len(report) == 9
    assert run.results["write_report"].metrics == {"rows_written": 9}
    assert report["orders"].sum() == 30
    assert report["revenue"].is_monotonic_decreasing
    assert report.loc[report["cancelled_orders"] > 0, "customer_id"].tolist() == [101]


def test_a_failed_validation_stops_the_job_before_the_writers(
    definitions: DefinitionsFile, base_dir: Path
) -> None:
    orders = base_dir / "data" / "orders.csv"
    orders.write_text(orders.read_text().replace(",delivered\n", ",lost\n", 1))

    with pytest.raises(ComponentFailed, match=r"allowed_values\(status\): 1 row"):
        run_job(definitions, "daily_sales", base_dir)

    assert not (base_dir / "output" / "daily_sales.parquet").exists()
