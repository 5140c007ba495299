"""Large reads: PostgreSQL's ADBC path and whole metric frames read as ids.

Outside a transaction, a large PostgreSQL result is read through ADBC (binary ``COPY`` into
Arrow, on connections of its own), and a whole metric frame as points with ids whose names are
joined in Arrow (``etl_meta.analytics._narrow``). Inside ``store.transaction()`` the same calls
read the joined statement through ``COPY … CSV`` on the transaction's connection. Both must give
the same frame, for every filter; on SQLite both are the same path, which the tests also hold to.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

import pandas as pd
import psycopg
import pytest

from etl_meta import MetadataStore
from etl_meta.analytics import _adbc, metrics_frame, run_history, step_attempts
from etl_meta.analytics._adbc import PING_AFTER_SECONDS
from etl_meta.analytics.queries import metrics_shaped
from tests.analytics.forking import assert_a_forked_child_reads_on_its_own
from tests.backends import isolated_settings, postgresql_only
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
    assert not shaped.small and shaped.narrow is not None
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


# -- PostgreSQL: the ADBC connections ----------------------------------------------------------


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
def test_a_large_read_replaces_an_adbc_connection_the_server_ended(store, points, admin):
    database = store.engine.url.database
    others = _adbc_backends(admin, database)  # earlier tests' stores may not be collected yet
    before = metrics_frame(store, attempts="all")
    ours = _adbc_backends(admin, database) - others
    assert len(ours) == 1  # one pooled ADBC connection, kept for the next large read
    admin.execute("SELECT pg_terminate_backend(%s)", (ours.pop(),))
    time.sleep(PING_AFTER_SECONDS + 0.1)  # idle long enough to be pinged before reuse
    after = metrics_frame(store, attempts="all")
    pd.testing.assert_frame_equal(before, after)
    assert len(_adbc_backends(admin, database) - others) == 1


@postgresql_only()
def test_closing_the_store_closes_its_adbc_connections(store_url, settings, points, admin):
    opened = MetadataStore(store_url, settings=settings)
    database = opened.engine.url.database
    others = _adbc_backends(admin, database)
    metrics_frame(opened, attempts="all")
    assert _adbc_backends(admin, database) - others
    opened.close()
    deadline = time.monotonic() + 10
    while _adbc_backends(admin, database) - others and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not _adbc_backends(admin, database) - others


def test_a_forked_child_reads_on_connections_of_its_own(store, points):
    """A process forked after a large read (Airflow's task runner, multiprocessing) must not
    use its parent's ADBC connections: both would talk on one socket."""
    assert_a_forked_child_reads_on_its_own(
        store, lambda: metrics_frame(store, attempts="all"), _adbc.POOLS
    )


@postgresql_only()
def test_adbc_connections_carry_the_stores_connection_settings(store_url, tmp_path, points):
    """Same login, same statement timeout as the store's own connections; told apart by name."""
    settings = isolated_settings(tmp_path, statement_timeout_ms=4321)
    with MetadataStore(store_url, settings=settings) as opened, opened.engine.connect() as own:
        driver = own.connection.driver_connection
        with _adbc.arrow_session(_adbc.pool_of(opened, driver)) as session:
            seen = session.table(
                "SELECT current_user AS login, current_setting('statement_timeout') AS timeout, "
                "current_setting('application_name') AS name"
            ).to_pylist()
        expected = own.exec_driver_sql(
            "SELECT current_user, current_setting('statement_timeout'), "
            "current_setting('application_name')"
        ).one()
    assert seen == [{"login": expected[0], "timeout": "4321ms", "name": f"{expected[2]} (adbc)"}]
    assert expected[1] == "4321ms"
