"""read_csv and read_parquet on real files; relative paths come from the base directory."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from pandas.api import types

from tests.components.helpers import run_component, sandbox_for


def write_orders_csv(directory: Path) -> Path:
    path = directory / "data" / "orders.csv"
    path.parent.mkdir()
    path.write_text(
        "order_id,order_date,zip,amount\n1,2026-01-01,0101,10.5\n2,2026-01-02,0202,NA\n",
        encoding="utf-8",
    )
    return path


def test_read_csv_reads_a_path_relative_to_the_base_dir(tmp_path: Path) -> None:
    write_orders_csv(tmp_path)

    result = run_component(
        "read_csv",
        {"path": "data/orders.csv", "parse_dates": ["order_date"], "dtype": {"zip": "string"}},
        base_dir=tmp_path,
    )

    frame = result.value
    assert list(frame.columns) == ["order_id", "order_date", "zip", "amount"]
    assert types.is_datetime64_any_dtype(frame["order_date"])
    assert frame["zip"].tolist() == ["0101", "0202"]  # kept as text, leading zeros intact
    assert frame["amount"].isna().tolist() == [False, True]
    assert result.metrics == {"rows": 2, "columns": 4}
    assert result.metadata["path"] == str(tmp_path / "data" / "orders.csv")


def test_read_csv_options_select_columns_and_separator(tmp_path: Path) -> None:
    (tmp_path / "semi.csv").write_text("a;b;c\n1;x;-\n2;y;3\n", encoding="utf-8")

    result = run_component(
        "read_csv",
        {"path": str(tmp_path / "semi.csv"), "sep": ";", "usecols": ["a", "c"], "na_values": ["-"]},
        base_dir=tmp_path / "elsewhere",
        sandbox=sandbox_for(tmp_path / "elsewhere", sandbox_roots=[tmp_path]),
    )

    assert list(result.value.columns) == ["a", "c"]
    assert result.value["c"].isna().tolist() == [True, False]


def test_read_csv_of_a_missing_file_names_it(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"nope\.csv"):
        run_component("read_csv", {"path": "nope.csv"}, base_dir=tmp_path)


def test_read_parquet_reads_all_or_some_columns(tmp_path: Path, orders: pd.DataFrame) -> None:
    orders.to_parquet(tmp_path / "orders.parquet", index=False)

    everything = run_component("read_parquet", {"path": "orders.parquet"}, base_dir=tmp_path)
    some = run_component(
        "read_parquet",
        {"path": "orders.parquet", "columns": ["order_id", "amount"]},
        base_dir=tmp_path,
    )

    pd.testing.assert_frame_equal(everything.value, orders)
    assert everything.metrics == {"rows": 4, "columns": 4}
    assert list(some.value.columns) == ["order_id", "amount"]
    assert some.metrics == {"rows": 4, "columns": 2}


def test_readers_ignore_upstream_values(tmp_path: Path, orders: pd.DataFrame) -> None:
    orders.to_parquet(tmp_path / "orders.parquet", index=False)

    result = run_component(
        "read_parquet", {"path": "orders.parquet"}, {"save": None}, base_dir=tmp_path
    )

    assert len(result.value) == 4
