"""write_csv, write_parquet and write_table (SQLite and PostgreSQL); secrets stay out of sight."""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from etl_meta.components.errors import ComponentFailed, ComponentInputError
from etl_meta.config import normalize_database_url
from tests.components.helpers import run_component

# -- files --------------------------------------------------------------------------------------


def test_write_parquet_creates_parent_dirs_and_round_trips(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    result = run_component(
        "write_parquet", {"path": "output/nested/orders.parquet"}, {"v": orders}, base_dir=tmp_path
    )

    target = tmp_path / "output" / "nested" / "orders.parquet"
    assert result.value is None
    assert result.metrics == {"rows_written": 4}
    assert result.metadata == {"path": str(target)}
    pd.testing.assert_frame_equal(pd.read_parquet(target), orders)
    assert [p.name for p in target.parent.iterdir()] == ["orders.parquet"]  # no temp files


def test_write_csv_writes_without_the_index_by_default(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    run_component("write_csv", {"path": "out/a.csv"}, {"v": orders}, base_dir=tmp_path)
    run_component(
        "write_csv",
        {"path": "out/b.csv", "index": True, "sep": ";"},
        {"v": orders},
        base_dir=tmp_path,
    )

    assert (tmp_path / "out" / "a.csv").read_text().splitlines()[0] == (
        "order_id,customer_id,amount,status"
    )
    assert (tmp_path / "out" / "b.csv").read_text().splitlines()[1] == "0;1;10;12.5;placed"
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "out" / "a.csv"), orders)


def test_a_failed_write_leaves_the_previous_file_in_place(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    target = tmp_path / "orders.parquet"
    run_component("write_parquet", {"path": "orders.parquet"}, {"v": orders}, base_dir=tmp_path)
    unwritable = orders.assign(amount=[object(), 1, 2, 3])  # pyarrow cannot store an object()

    with pytest.raises(Exception):  # noqa: B017  (whatever pyarrow raises, the file survives)
        run_component(
            "write_parquet", {"path": "orders.parquet"}, {"v": unwritable}, base_dir=tmp_path
        )

    pd.testing.assert_frame_equal(pd.read_parquet(target), orders)
    assert [p.name for p in tmp_path.iterdir()] == ["orders.parquet"]


@pytest.mark.parametrize("component_type", ["write_csv", "write_parquet"])
def test_file_writers_need_exactly_one_table(
    tmp_path: Path, orders: pd.DataFrame, component_type: str
) -> None:
    with pytest.raises(ComponentInputError, match="needs exactly 1 DataFrame input"):
        run_component(component_type, {"path": "x"}, {"a": orders, "b": orders}, base_dir=tmp_path)


# -- write_table --------------------------------------------------------------------------------


def table_rows(url: str, table: str) -> int:
    engine = sa.create_engine(normalize_database_url(url))
    try:
        with engine.connect() as connection:
            return connection.execute(sa.text(f'SELECT COUNT(*) FROM "{table}"')).scalar_one()
    finally:
        engine.dispose()


def test_write_table_replaces_appends_and_refuses(
    warehouse_url: str, tmp_path: Path, orders: pd.DataFrame
) -> None:
    def write(if_exists: str) -> None:
        run_component(
            "write_table",
            {"table": "daily_sales", "connection_url": warehouse_url, "if_exists": if_exists},
            {"validate_sales": orders},
            base_dir=tmp_path,
            name="load_warehouse",
        )

    write("replace")
    write("replace")
    assert table_rows(warehouse_url, "daily_sales") == 4
    write("append")
    assert table_rows(warehouse_url, "daily_sales") == 8
    with pytest.raises(ComponentFailed, match=r"writing table 'daily_sales' to .* failed"):
        write("fail")
    assert table_rows(warehouse_url, "daily_sales") == 8


def test_write_table_reports_rows_and_where_without_credentials(
    warehouse_url: str, tmp_path: Path, orders: pd.DataFrame
) -> None:
    result = run_component(
        "write_table",
        {"table": "t", "connection_url": warehouse_url},
        {"v": orders},
        base_dir=tmp_path,
    )

    assert result.value is None
    assert result.metrics == {"rows_written": 4}
    assert result.metadata["table"] == "t"
    url = make_url(warehouse_url)
    assert str(url.database) in result.metadata["database"]
    assert "@" not in result.metadata["database"]


def test_write_table_takes_user_and_password_from_the_configuration(
    backend: str, warehouse_url: str, tmp_path: Path, orders: pd.DataFrame
) -> None:
    url = make_url(warehouse_url)
    # The URL without credentials; they come from separate keys (SQLite ignores them).
    config = {
        "table": "t",
        "connection_url": url.set(username=None, password=None).render_as_string(False),
        "user": url.username or "etl",
        "password": url.password or "not-checked-by-the-test-server",
    }
    if backend == "sqlite":
        config.pop("user")

    run_component("write_table", config, {"v": orders}, base_dir=tmp_path)

    assert table_rows(warehouse_url, "t") == 4


def test_write_table_into_a_schema(
    backend: str, warehouse_url: str, tmp_path: Path, orders: pd.DataFrame
) -> None:
    engine = sa.create_engine(normalize_database_url(warehouse_url))
    schema = "main"  # SQLite's schemas are its attached databases; "main" always exists
    if backend == "postgresql":
        schema = "finance"
        with engine.begin() as connection:
            connection.exec_driver_sql("CREATE SCHEMA finance")

    run_component(
        "write_table",
        {"table": "daily_sales", "connection_url": warehouse_url, "schema": schema},
        {"v": orders},
        base_dir=tmp_path,
    )

    with engine.connect() as connection:
        count = connection.exec_driver_sql(f"SELECT COUNT(*) FROM {schema}.daily_sales").scalar()
    engine.dispose()
    assert count == 4


def test_a_relative_sqlite_path_is_taken_from_the_base_dir(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    base = tmp_path / "pipeline"
    base.mkdir()

    run_component(
        "write_table",
        # As in the example pipeline: a dummy password, which SQLite ignores.
        {"table": "t", "connection_url": "sqlite:///output/warehouse.db", "password": "x"},
        {"v": orders},
        base_dir=base,
    )

    assert table_rows(f"sqlite:///{base / 'output' / 'warehouse.db'}", "t") == 4


def test_connection_failures_never_show_the_url_or_password(
    tmp_path: Path, orders: pd.DataFrame, caplog: pytest.LogCaptureFixture
) -> None:
    config = {
        "table": "t",
        # Port 1 refuses connections; both secrets must stay out of the error.
        "connection_url": "postgresql://etl:url-secret-1@127.0.0.1:1/warehouse?connect_timeout=2",
        "password": "config-secret-2",
    }

    with caplog.at_level(logging.DEBUG), pytest.raises(ComponentFailed) as caught:
        run_component("write_table", config, {"v": orders}, base_dir=tmp_path, name="load")

    failed = caught.value
    message = str(failed)
    assert message.startswith("component 'load': writing table 't' to ")
    assert "postgresql database 'warehouse' on 127.0.0.1:1" in message
    for secret in ("url-secret-1", "config-secret-2"):
        assert secret not in message
        assert secret not in caplog.text
    assert failed.__cause__ is None
    assert failed.__suppress_context__


def test_an_unparsable_url_is_reported_without_quoting_it(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    with pytest.raises(ComponentFailed) as caught:
        run_component(
            "write_table",
            {"table": "t", "connection_url": "not a url secret-3"},
            {"v": orders},
            base_dir=tmp_path,
        )
    assert "connection_url is not a valid SQLAlchemy URL" in str(caught.value)
    assert "secret-3" not in str(caught.value)
