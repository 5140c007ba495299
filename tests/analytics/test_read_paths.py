"""How analyst queries are read: both ways give the same frame, on every backend.

A query's shape decides how it is read (``etl_meta.analytics.fetch``): small results (one run,
short pages, one metric's aggregates, latest values) as driver rows, large ones as Arrow
(through ADBC on PostgreSQL, row batches on SQLite); whole metric frames without ``ORDER BY``,
sorted by id afterwards. Statements are compiled once per shape and bound per call
(``etl_meta.analytics._compiled``). None of this may change a frame: values, order, dtypes and
categories must be exactly those of the other way and of pandas' own ``astype``.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pyarrow as pa
import pytest
import sqlalchemy as sa

from etl_meta import MetadataStore
from etl_meta.analytics import aggregate_metrics, latest_metrics, metrics_frame, metrics_page
from etl_meta.analytics._arrow import sorted_by
from etl_meta.analytics._compiled import clear_caches
from etl_meta.analytics._select import component, job, metric_latest, table_of
from etl_meta.analytics.fetch import read_frame
from etl_meta.analytics.metrics import LATEST_COLUMNS, METRIC_COLUMNS
from etl_meta.analytics.queries import (
    aggregate_shaped,
    latest_shaped,
    metrics_query,
    metrics_shaped,
)
from etl_meta.errors import NotFoundError, ValidationError
from etl_meta.models import MetricName, MetricPointRow, MetricSeries
from tests.backends import postgresql_only
from tests.factories import T0, Factory, sample_points

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
def runs(store: MetadataStore, factory: Factory):
    """Two jobs; ``sales`` has two runs, one with a retried step. Points are recorded out of
    name order, so categories must be sorted, not in order of appearance."""
    for name in ("sales", "other"):
        factory.job(name=name, components=COMPONENTS)
    first = factory.finished_run("sales", run_id="paths-1")
    second = factory.finished_run("sales", run_id="paths-2")
    other = factory.finished_run("other", run_id="paths-3")
    for offset, run in enumerate((first, second, other)):
        store.metrics.record(
            sample_points(offset, AT + timedelta(days=offset)), execution_id=run.id
        )
    return first, second, other


def _reference(frame: pd.DataFrame) -> pd.DataFrame:
    """``frame`` rebuilt with plain pandas: what the store's dtypes must equal."""
    rebuilt = {}
    for name in frame.columns:
        column = frame[name]
        if isinstance(column.dtype, pd.CategoricalDtype):
            rebuilt[name] = column.astype(str).astype("category")
        elif isinstance(column.dtype, pd.DatetimeTZDtype):
            rebuilt[name] = pd.to_datetime(column.astype(str), utc=True).dt.as_unit("us")
        else:
            rebuilt[name] = column.to_numpy().tolist()
            rebuilt[name] = pd.Series(rebuilt[name], dtype=column.dtype)
    return pd.DataFrame(rebuilt)


def _both_ways(store: MetadataStore, shaped, columns) -> tuple[pd.DataFrame, pd.DataFrame]:
    small = read_frame(store, dataclasses.replace(shaped, small=True), columns)
    large = read_frame(store, dataclasses.replace(shaped, small=False), columns)
    return small, large


def test_one_runs_points_are_the_same_frame_as_rows_and_as_a_stream(store, runs):
    first, _, _ = runs
    shaped = metrics_shaped(store, run=first.id, attempts="all")
    assert shaped.small
    small, large = _both_ways(store, shaped, METRIC_COLUMNS)
    pd.testing.assert_frame_equal(small, large)
    pd.testing.assert_frame_equal(small, _reference(small))
    assert small["metric_id"].is_monotonic_increasing
    assert small["name"].cat.categories.tolist() == ["alpha", "rows", "zeta"]
    assert small["recorded_at"].iloc[0] == pd.Timestamp(AT)  # microseconds kept


RUN_FILTERS = [
    {},
    {"name": "rows"},
    {"name": ["rows", "zeta"], "attempts": "final"},
    {"component": "load"},
    {"job": "other"},  # not the run's job: nothing
    {"since": AT + timedelta(minutes=1), "until": AT + timedelta(hours=25)},
    {"filter": "value > 0 or name = 'alpha'"},
    {"tags": {"env": "prod"}},  # no job has tags: nothing
]


@pytest.mark.parametrize("attempts", ["all", "final"])
@pytest.mark.parametrize("filters", RUN_FILTERS, ids=lambda f: ",".join(f) or "none")
def test_one_runs_points_are_the_same_frame_both_ways_for_every_filter(
    store, runs, filters, attempts
):
    first, _, _ = runs
    filters = {"attempts": attempts, **filters}
    shaped = metrics_shaped(store, run=first.id, **filters)
    assert shaped.small
    read = metrics_frame(store, run="paths-1", **filters)  # the orchestrator's run id
    small, large = _both_ways(store, shaped, METRIC_COLUMNS)
    pd.testing.assert_frame_equal(read, small)
    pd.testing.assert_frame_equal(small, large)
    with store.transaction():  # inside a transaction: the transaction's connection
        pd.testing.assert_frame_equal(read, metrics_frame(store, run=first.id, **filters))
    pd.testing.assert_frame_equal(read, _reference(read))
    if not filters.keys() - {"attempts"}:
        assert len(read) == (4 if attempts == "all" else 3)
        assert read["external_run_id"].unique().tolist() == ["paths-1"]


def test_a_point_outside_the_runs_job_reads_that_jobs_names(store, runs):
    first, _, _ = runs
    # A point of the run naming a component of another job, which the run's names (its own
    # job's components) lack.
    _insert_point(store, first.id, "stray", AT, job_name="other")
    frame = metrics_frame(store, run=first.id, attempts="all")
    with store.transaction():
        joined = metrics_frame(store, run=first.id, attempts="all")
    pd.testing.assert_frame_equal(frame, joined)
    assert frame.loc[frame["name"] == "stray", "job"].tolist() == ["other"]
    assert sorted(frame["job"].cat.categories) == ["other", "sales"]


def test_a_run_of_a_job_without_components_reads_its_stray_point(store, runs, factory):
    factory.job(name="bare", components=[])
    bare = factory.finished_run("bare", run_id="paths-bare")
    assert metrics_frame(store, run=bare.id, attempts="all").empty  # no points: no names needed
    _insert_point(store, bare.id, "stray", AT)  # on the sales job's load component
    frame = metrics_frame(store, run=bare.id, attempts="all")
    with store.transaction():
        joined = metrics_frame(store, run=bare.id, attempts="all")
    pd.testing.assert_frame_equal(frame, joined)
    assert frame[["job", "component", "name"]].astype(str).values.tolist() == [
        ["sales", "load", "stray"]
    ]


def test_aggregates_and_latest_values_are_the_same_frame_either_way(store, runs):
    shaped = aggregate_shaped(store, job="sales", name=["rows", "zeta"], every="1d")
    assert shaped.small
    small, large = _both_ways(store, shaped, _aggregate_columns())
    pd.testing.assert_frame_equal(small, large)
    assert len(small) == 4  # 2 days × 2 metrics
    latest = latest_shaped("sales", runs=5)
    small, large = _both_ways(store, latest, LATEST_COLUMNS)
    pd.testing.assert_frame_equal(small, large)
    pd.testing.assert_frame_equal(small, _reference(small))


@pytest.mark.parametrize("count", [1, 2, 3, 10])
def test_latest_values_are_the_same_frame_both_ways(store, runs, factory, count):
    # A failed run that recorded nothing, and a queued one without a start: their run ids and
    # statuses are no categories of a frame without them.
    factory.execution("sales", run_id="paths-failed", status="failed", ended_at=AT)
    factory.execution("sales", run_id="paths-queued", status="queued", started_at=None)
    last = factory.finished_run("sales", run_id="paths-last")
    store.metrics.record(sample_points(3, AT), execution_id=last.id)
    read = latest_metrics(store, "sales", runs=count)
    small, large = _both_ways(store, latest_shaped("sales", runs=count), LATEST_COLUMNS)
    pd.testing.assert_frame_equal(read, small)
    pd.testing.assert_frame_equal(small, large)
    pd.testing.assert_frame_equal(read, _reference(read))
    assert read["status"].cat.categories.tolist() == ["success"]
    assert read["run_id"].iloc[0] == last.id and read["run_id"].is_monotonic_decreasing


def test_latest_values_of_a_component_outside_the_job_keep_its_name(store, runs):
    first, _, _ = runs
    with store.transaction() as session:  # a row written by hand, on another job's component
        connection = session.connection()
        owner = connection.execute(
            sa.select(component.c.id)
            .join(job, job.c.id == component.c.job_id)
            .where(job.c.name == "other", component.c.name == "load")
        ).scalar_one()
        connection.execute(
            metric_latest.insert().values(
                execution_id=first.id,
                component_id=owner,
                name="stray",
                attempt=1,
                step=0,
                value=1.0,
                recorded_at=AT,
            )
        )
    read = latest_metrics(store, "sales", runs=5)
    small, large = _both_ways(store, latest_shaped("sales", runs=5), LATEST_COLUMNS)
    pd.testing.assert_frame_equal(read, small)
    pd.testing.assert_frame_equal(read, large)
    assert read.loc[read["name"] == "stray", "component"].tolist() == ["load"]


def _aggregate_columns() -> dict:
    return {
        "bucket": "timestamp",
        "job": "category",
        "component": "category",
        "name": "category",
        **dict.fromkeys(("count", "mean", "min", "max", "last", "p50", "p95"), "float"),
    } | {"count": "int"}


def test_wide_reads_stream_and_match_the_paged_reads(store, runs):
    whole = metrics_frame(store, attempts="all")
    assert not metrics_shaped(store, attempts="all").small
    assert whole["metric_id"].is_monotonic_increasing  # sorted by id after an unordered read
    pages, cursor = [], None
    while True:
        page = metrics_page(store, cursor=cursor, limit=5, attempts="all")
        pages.append(page.frame)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    paged = pd.concat(pages, ignore_index=True)
    for column in ("metric_id", "value", "recorded_at"):
        pd.testing.assert_series_equal(whole[column], paged[column])
    assert (whole["name"].astype(str) == paged["name"].astype(str)).all()


def test_an_unordered_table_is_sorted_by_id_and_a_sorted_one_is_left_alone():
    table = pa.table({"metric_id": [3, 1, 2], "value": [30.0, 10.0, 20.0]})
    assert sorted_by(table, "metric_id").column("value").to_pylist() == [10.0, 20.0, 30.0]
    ordered = pa.table({"metric_id": [1, 2, 3]})
    assert sorted_by(ordered, "metric_id") is ordered


def test_the_statement_that_runs_is_the_one_metrics_query_returns(store, runs):
    first, _, _ = runs
    query = metrics_query(store, run=first.id, name=["rows", "zeta"], since=T0)
    shaped = metrics_shaped(store, run=first.id, name=["rows", "zeta"], since=T0)
    dialect = store.engine.dialect
    bound = query.compile(dialect=dialect, compile_kwargs={"render_postcompile": True})
    assert bound.string == shaped.compiled(dialect).sql
    assert metrics_query(store).compile(dialect=dialect).string.rstrip().endswith("metric.id")


def test_one_shape_serves_calls_with_different_values(store, runs):
    clear_caches()
    first, second, _ = runs
    for run, value in ((first, 0.0), (second, 11.0), (first, 0.0)):
        frame = metrics_frame(store, run=run.id, name="rows")
        assert frame["run_id"].unique().tolist() == [run.id]
        assert frame["value"].tolist() == [value]  # final attempt only
    assert metrics_frame(store, name=[]).empty  # an empty list is its own shape
    assert len(metrics_frame(store, name=["rows"], attempts="all")) == 6
    assert len(metrics_frame(store, name=["rows", "zeta"], attempts="all")) == 9


def test_filters_and_tags_are_part_of_the_shape(store, factory, runs):
    factory.job(name="tagged", tags={"env": "prod"}, components=COMPONENTS)
    tagged = factory.finished_run("tagged", run_id="paths-4")
    store.metrics.record([("load", "zeta", 99.0, 0, 1, AT)], execution_id=tagged.id)
    assert metrics_frame(store, tags={"env": "prod"})["value"].tolist() == [99.0]
    assert metrics_frame(store, tags={"env": "dev"}).empty
    low = metrics_frame(store, filter="value < 0", attempts="all")
    high = metrics_frame(store, filter="value > 50", attempts="all")
    assert set(low["value"]) == {-2.0} and high["value"].tolist() == [99.0]
    since = metrics_frame(store, filter="recorded_at >= '2026-03-03T00:00:00Z'", attempts="all")
    assert set(since["run_id"]) == {runs[1].id, runs[2].id}  # March 3 onwards


def test_a_read_inside_a_transaction_sees_its_uncommitted_points(store, runs):
    first, _, _ = runs
    with store.transaction():
        store.metrics.record([("load", "fresh", 7.0, 0, 1, AT)], execution_id=first.id)
        assert metrics_frame(store, run=first.id, name="fresh")["value"].tolist() == [7.0]
        assert "fresh" in latest_metrics(store, "sales")["name"].astype(str).tolist()


@postgresql_only()  # SQLite has no session time zone
def test_timestamps_are_utc_whatever_the_session_time_zone(store, runs):
    first, _, _ = runs
    with store.transaction() as session:
        session.connection().exec_driver_sql("SET LOCAL TIME ZONE 'America/New_York'")
        small = metrics_frame(store, run=first.id, name="zeta")
        daily = aggregate_metrics(store, job="sales", name="zeta", every="1d")
    assert small["recorded_at"].tolist() == [pd.Timestamp(AT)]
    assert daily["bucket"].iloc[0] == pd.Timestamp("2026-03-01", tz="UTC")


metric_name, metric_series = table_of(MetricName), table_of(MetricSeries)
point = table_of(MetricPointRow)


def _insert_point(
    store: MetadataStore, run_id: int, name: str, at: datetime | str, *, job_name: str = "sales"
) -> None:
    """A point written by hand, not through ``store.metrics.record``: on the ``load`` component
    of any job, at any ``recorded_at`` the database accepts (text is cast by the server)."""
    recorded_at = sa.cast(sa.literal(at), sa.DateTime(timezone=True)) if isinstance(at, str) else at
    with store.transaction() as session:
        connection = session.connection()
        owner = connection.execute(
            sa.select(component.c.id)
            .join(job, job.c.id == component.c.job_id)
            .where(job.c.name == job_name, component.c.name == "load")
        ).scalar_one()
        name_id = connection.execute(
            sa.select(metric_name.c.id).where(metric_name.c.name == name)
        ).scalar()
        if name_id is None:
            name_id = connection.execute(
                metric_name.insert().values(name=name).returning(metric_name.c.id)
            ).scalar_one()
        series_id = connection.execute(
            metric_series.insert()
            .values(execution_id=run_id, component_id=owner, attempt=1, name_id=name_id)
            .returning(metric_series.c.id)
        ).scalar_one()
        values = {"series_id": series_id, "step": 0, "value": 1.0, "recorded_at": recorded_at}
        if store.dialect == "sqlite":  # PostgreSQL takes the id from its sequence
            next_id = sa.select(sa.func.coalesce(sa.func.max(point.c.id), 0) + 1)
            values["id"] = connection.execute(next_id).scalar_one()
        connection.execute(point.insert().values(**values))


@postgresql_only()  # SQLite stores timestamps as text
def test_timestamps_at_the_ends_of_what_a_datetime_holds_read_alike(store, runs):
    first, _, _ = runs
    _insert_point(store, first.id, "first", "0001-01-01 00:00:00+00")
    _insert_point(store, first.id, "last", "9999-12-31 23:59:59.999999+00")
    shaped = metrics_shaped(store, run=first.id, name=["first", "last"])
    frame, large = _both_ways(store, shaped, METRIC_COLUMNS)
    with store.transaction():
        joined = metrics_frame(store, run=first.id, name=["first", "last"])
    pd.testing.assert_frame_equal(frame, joined)
    pd.testing.assert_frame_equal(frame, large)
    assert frame["recorded_at"].tolist() == [
        pd.Timestamp("0001-01-01", tz="UTC"),
        pd.Timestamp("9999-12-31 23:59:59.999999", tz="UTC"),
    ]


@postgresql_only()  # SQLite stores text; PostgreSQL has 'infinity' and years past 9999
@pytest.mark.parametrize("at", ["infinity", "-infinity", "10000-01-01 00:00:00+00"])
def test_a_timestamp_no_datetime_holds_fails_with_a_typed_error(store, runs, at):
    first, _, _ = runs
    _insert_point(store, first.id, "odd", at)
    with store.transaction(), pytest.raises(ValidationError) as joined:
        metrics_frame(store, run=first.id, name="odd")
    with pytest.raises(ValidationError) as run_read:
        metrics_frame(store, run=first.id, name="odd")
    assert str(run_read.value) == str(joined.value)
    assert "the driver cannot convert a value (DataError)" in str(run_read.value)
    assert "infinity" not in str(run_read.value)  # psycopg's text loader quotes the value


def test_latest_metrics_of_an_unknown_job_still_raise_not_found(store, runs, factory):
    with pytest.raises(NotFoundError):
        latest_metrics(store, "no-such-job")
    factory.job(name="idle", components=COMPONENTS)
    assert latest_metrics(store, "idle").empty  # a job without runs is not an error


def test_missing_values_keep_nullable_types_on_the_row_path():
    from etl_meta.analytics._frames import from_rows

    rows = [(1, None, None, "b", 1.0), (None, "x", "2026-01-01 00:00:00.000001", None, None)]
    columns = {"i": "int", "t": "text", "at": "timestamp", "c": "category", "f": "float"}
    frame = from_rows(rows, columns)
    assert frame["i"].dtype == pd.Int64Dtype() and frame["i"].isna().tolist() == [False, True]
    assert frame["t"].dtype == "str" and frame["t"].isna().tolist() == [True, False]
    assert frame["at"].isna().tolist() == [True, False]
    assert frame["c"].cat.categories.tolist() == ["b"] and frame["c"].isna().iloc[1]
    assert np.isnan(frame["f"].iloc[1])


def test_missing_values_keep_nullable_types_through_arrow():
    from etl_meta.analytics._arrow import rows_table
    from etl_meta.analytics._frames import from_arrow, from_rows

    rows = [(1, None, None, "b", 1.0, 1), (None, "x", "2026-01-01 00:00:00.000001", None, None, 0)]
    columns = {
        "i": "int",
        "t": "text",
        "at": "timestamp",
        "c": "category",
        "f": "float",
        "ok": "bool",
    }
    via_arrow = from_arrow(rows_table(rows, columns), columns)
    pd.testing.assert_frame_equal(via_arrow, from_rows(rows, columns))
    assert via_arrow["ok"].tolist() == [True, False]
