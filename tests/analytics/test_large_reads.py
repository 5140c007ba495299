"""Large reads: Arrow through ADBC outside a transaction, driver rows inside one.

Outside a transaction, a large metric result is read through ADBC (binary ``COPY`` into Arrow on
PostgreSQL, the file read in C on SQLite), on a connection of its own. Inside
``store.transaction()`` the same calls read driver rows on the transaction's connection. Both
must give the same frame, for every filter, on both backends.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
import pytest

from etl_meta import MetadataStore
from etl_meta.analytics import metrics_frame, run_history, step_attempts
from etl_meta.analytics._arrow import arrow_stream
from etl_meta.analytics._connections import ReadConnection
from etl_meta.analytics.queries import metrics_shaped
from tests.backends import isolated_settings, postgresql_only, sqlite_only
from tests.factories import Factory, sample_points

AT = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
COMPONENTS = [
    {"name": "extract", "component_type": "read_csv", "configuration": {"path": "in.csv"}},
    {
        "name": "load",
        "component_type": "write_table",
        "configuration": {"table": "t", "connection_url": "sqlite:///out.db"},
        "depends_on": ["extract"],
    },
]


@pytest.fixture
def points(store: MetadataStore, factory: Factory) -> list:
    """Three jobs (one tagged), four runs, retried steps, names recorded out of order."""
    factory.job(name="sales", components=COMPONENTS, tags={"env": "prod"})
    factory.job(name="other", components=COMPONENTS)
    factory.job(name="quiet", components=COMPONENTS)  # a job with no points
    runs = [
        factory.finished_run("sales", run_id="large-1"),
        factory.execution("sales", run_id="large-2", status="failed", ended_at=AT),
        factory.finished_run("other", run_id="large-3"),
        factory.finished_run("other", run_id="large-4"),
    ]
    for offset, run in enumerate(runs):
        at = AT + timedelta(days=offset)
        nulls = ("extract", "nulls", 0.0, 3, 1, at + timedelta(hours=26))
        store.metrics.record([*sample_points(offset, at), nulls], execution_id=run.id)
    return runs


FILTERS = [
    {},
    {"job": "sales"},
    {"job": ["sales", "other", "quiet"]},
    {"job": []},
    {"component": "load"},
    {"job": "other", "component": ["extract"]},
    {"name": ["rows", "zeta"]},
    {"tags": {"env": "prod"}},
    {"tags": {"env": "dev"}},
    {"since": AT + timedelta(days=1), "until": AT + timedelta(days=3)},
    {"filter": "job = 'sales' or value < 0"},
    {"filter": "status = 'failed' and name in ('rows', 'zeta')"},
    {"filter": "tag.env = 'prod' or component = 'extract'", "job": ["other"]},
]


@pytest.mark.parametrize("attempts", ["all", "final"])
@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f) or "none")
def test_a_whole_frame_is_the_frame_the_joined_statement_reads(store, points, filters, attempts):
    shaped = metrics_shaped(store, attempts=attempts, unordered=True, **filters)
    assert not shaped.small  # read through Arrow
    whole = metrics_frame(store, attempts=attempts, **filters)
    with store.transaction():  # the joined statement, on the transaction's connection
        joined = metrics_frame(store, attempts=attempts, **filters)
    pd.testing.assert_frame_equal(whole, joined)
    assert whole["metric_id"].is_monotonic_increasing
    # "final": a step's last attempt is 2 for extract, so its attempt-1 points drop out.
    expected = 20 if attempts == "all" else 12
    if not filters:
        assert len(whole) == expected
        assert whole["job"].cat.categories.tolist() == ["other", "sales"]
        names = ["alpha", "rows", "zeta"] + (["nulls"] if attempts == "all" else [])
        assert whole["name"].cat.categories.tolist() == sorted(names)


def test_an_empty_whole_frame_keeps_its_columns_and_types(store, points):
    empty = metrics_frame(store, job="quiet")
    with store.transaction():
        joined = metrics_frame(store, job="quiet")
    assert empty.empty
    pd.testing.assert_frame_equal(empty, joined)
    assert str(empty["recorded_at"].dtype) == "datetime64[us, UTC]"


def test_other_large_reads_are_the_same_outside_and_inside_a_transaction(store, points):
    ids = [run.id for run in points]
    outside = (run_history(store), step_attempts(store, run_ids=ids))
    with store.transaction():
        inside = (run_history(store), step_attempts(store, run_ids=ids))
    assert len(outside[0]) == 4
    for left, right in zip(outside, inside, strict=True):
        pd.testing.assert_frame_equal(left, right)


# -- PostgreSQL: the ADBC connection ----------------------------------------------------------


def _adbc_backends(admin: psycopg.Connection, database: str) -> set[int]:
    """Backend pids of the large reads' ADBC connections to ``database``."""
    rows = admin.execute(
        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND application_name LIKE %s",
        (database, "% (adbc)"),
    ).fetchall()
    return {pid for (pid,) in rows}


@pytest.fixture
def admin(pg_server) -> psycopg.Connection:
    url = pg_server.admin_url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(url, autocommit=True) as connection:
        yield connection


@postgresql_only()
def test_a_large_read_leaves_no_adbc_connection_open(store, points, admin):
    """Each large read opens its connection and closes it: none is left to go stale, or to be
    shared with a forked child."""
    database = store.engine.url.database
    first = metrics_frame(store, attempts="all")
    again = metrics_frame(store, attempts="all")
    pd.testing.assert_frame_equal(first, again)
    deadline = datetime.now(UTC) + timedelta(seconds=10)
    while _adbc_backends(admin, database) and datetime.now(UTC) < deadline:
        pass  # the server notices the closed socket a moment later
    assert not _adbc_backends(admin, database)


@postgresql_only()
def test_adbc_connections_carry_the_stores_connection_settings(store_url, tmp_path, points):
    """Same login, same statement timeout as the store's own connections; told apart by name."""
    settings = isolated_settings(tmp_path, statement_timeout_ms=4321)
    with MetadataStore(store_url, settings=settings) as opened, opened.engine.connect() as own:
        driver = own.connection.driver_connection
        sql = (
            "SELECT current_user, current_setting('statement_timeout'), "
            "current_setting('application_name')"
        )
        columns = {"login": "text", "timeout": "text", "name": "text"}
        read = ReadConnection(own.dialect, driver, in_transaction=False)
        with arrow_stream(read, sql, None, columns) as tables:
            seen = [row for table in tables for row in table.to_pylist()]
        expected = own.exec_driver_sql(sql).one()
    assert seen == [{"login": expected[0], "timeout": "4321ms", "name": f"{expected[2]} (adbc)"}]
    assert expected[1] == "4321ms"


@postgresql_only()
def test_a_large_read_the_server_ends_is_a_typed_error(store, points, admin):
    """The server ending the read's connection mid-way fails the read with the store's typed
    error (not the driver's message, which quotes the statement)."""
    from etl_meta.errors import EtlMetaError

    admin.execute("ALTER DATABASE " + store.engine.url.database + " SET statement_timeout = 1")
    try:
        with pytest.raises(EtlMetaError) as raised:
            metrics_frame(store, attempts="all", filter="value > 0 or value <= 0")
    finally:
        admin.execute("ALTER DATABASE " + store.engine.url.database + " RESET statement_timeout")
    assert "SELECT" not in str(raised.value)


# -- SQLite: exports read in a child process ---------------------------------------------------


@sqlite_only()
def test_a_sqlite_export_reads_in_a_child_and_sees_every_committed_point(store, points):
    """The ADBC SQLite driver links its own SQLite; it must never open the store's file in the
    store's process (two SQLite libraries break each other's locks), so exports read in a child."""
    import sys

    from etl_meta.analytics import metric_batches

    def exported() -> pd.DataFrame:
        with metric_batches(store, attempts="all") as tables:
            return pd.concat([table.to_pandas() for table in tables], ignore_index=True)

    before = exported()
    expected = metrics_frame(store, attempts="all")
    assert before["metric_id"].tolist() == expected["metric_id"].tolist()
    assert before["recorded_at"].tolist() == expected["recorded_at"].tolist()
    assert "adbc_driver_sqlite" not in sys.modules
    store.metrics.record([("load", "late", 1.0, 0, 1, AT)], execution_id=points[0].id)
    assert len(exported()) == len(before) + 1  # committed a moment ago: seen
    assert len(metrics_frame(store, attempts="all")) == len(before) + 1  # the store still reads


@sqlite_only()
def test_a_failing_child_read_is_a_typed_error(store):
    from etl_meta.analytics._arrow import arrow_stream
    from etl_meta.analytics._connections import read_connection
    from etl_meta.errors import EtlMetaError

    with (
        pytest.raises(EtlMetaError, match="no such table"),
        read_connection(store) as read,
        arrow_stream(read, "SELECT x FROM nowhere", (), {"x": "int"}, stream=True) as tables,
    ):
        list(tables)
