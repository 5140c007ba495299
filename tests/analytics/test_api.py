"""The analytics API on every backend: typed frames, filters, aggregates, runs, comparisons, pages.

Aggregates are checked against numpy on hand-built points whose buckets hold 1, 2 and many
points; percentiles against ``np.percentile(..., method="linear")``, which both backends must
match (PostgreSQL's ``percentile_cont``, SQLite's window-function interpolation).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from etl_meta import MetadataStore
from etl_meta.analytics import (
    AGGREGATES,
    FilterSyntaxError,
    aggregate_metrics,
    changes_since_last_success,
    compare_runs,
    last_success_before,
    latest_metrics,
    metrics_frame,
    metrics_page,
    run_history,
    runs_page,
    step_attempts,
    success_rate,
)
from etl_meta.errors import ValidationError
from etl_meta.masking import MASK
from tests.factories import T0, Factory

SECRET = "api-secret-4f2a"
SECRET_V2 = "api-secret-rotated-9c1b"
MONDAY = datetime(2026, 1, 5, tzinfo=UTC)  # an ISO week starts on it

# (recorded_at, value) of load/latency, listed out of time order on purpose: "last" is the value
# recorded last, not the one inserted last. Hour 10 holds 3 points, hour 11 two (one a
# microsecond before the next hour), hour 23 one; Tuesday holds 1 point, Sunday 2; that Sunday
# ends the first ISO week (9 points), the second week holds 2 points and the third 1.
LATENCY = [
    (MONDAY + timedelta(hours=10, minutes=40), 4.0),
    (MONDAY + timedelta(hours=10, minutes=5), 3.0),
    (MONDAY + timedelta(hours=11, minutes=59, seconds=59, microseconds=999_999), 5.0),
    (MONDAY + timedelta(hours=10, minutes=20), 1.0),
    (MONDAY + timedelta(hours=23, minutes=30), 9.0),
    (MONDAY + timedelta(hours=11), 1.5),
    (MONDAY + timedelta(days=1), 7.0),
    (MONDAY + timedelta(days=6, hours=23, minutes=59, seconds=59), 20.0),
    (MONDAY + timedelta(days=6, hours=12), 10.0),
    (MONDAY + timedelta(days=7, hours=1), 60.0),
    (MONDAY + timedelta(days=7), 100.0),
    (MONDAY + timedelta(days=14, hours=3), 50.0),
]
PERCENTILES = {"p50": 50, "p90": 90, "p95": 95, "p99": 99}
ALL_AGGREGATES = ("count", "mean", "min", "max", "last", "p50", "p90", "p95", "p99")


def _components(secret: str = SECRET) -> list[dict]:
    return [
        {"name": "extract", "component_type": "read_csv", "configuration": {"path": "a.csv"}},
        {
            "name": "load",
            "component_type": "write_table",
            "depends_on": ["extract"],
            "configuration": {
                "table": "t",
                "connection_url": "sqlite:///out.db",
                "password": secret,
            },
        },
    ]


@pytest.fixture
def sales(factory: Factory) -> str:
    return factory.job(name="sales", tags={"env": "prod"}, components=_components()).name


@pytest.fixture
def latency_run(store: MetadataStore, factory: Factory, sales: str):
    """Two runs of ``sales``; load/latency points split between them (aggregates span runs)."""
    first = factory.finished_run(sales, run_id="lat-1")
    second = factory.finished_run(sales, run_id="lat-2")
    for index, (at, value) in enumerate(LATENCY):
        run = first if index % 2 == 0 else second
        store.metrics.record([("load", "latency", value, index, 1, at)], execution_id=run.id)
    # Another metric in the same buckets must not leak into latency's aggregates.
    store.metrics.record(
        [("extract", "rows", 1000.0, step, 1, MONDAY + timedelta(hours=10)) for step in range(3)],
        execution_id=first.id,
    )
    return first, second


def expected_aggregates(points: list[tuple[datetime, float]], every: str) -> pd.DataFrame:
    """What every backend must return, computed with numpy per bucket."""
    frame = pd.DataFrame(points, columns=["at", "value"])
    frame["order"] = range(len(frame))  # insertion order: the tie-breaker after recorded_at
    at = pd.to_datetime(frame["at"], utc=True)
    if every == "1h":
        frame["bucket"] = at.dt.floor("h")
    elif every == "1d":
        frame["bucket"] = at.dt.floor("D")
    else:
        frame["bucket"] = at.dt.floor("D") - pd.to_timedelta(at.dt.day_of_week, unit="D")
    rows = []
    for bucket, group in frame.groupby("bucket", sort=True):
        values = group["value"].to_numpy()
        last = group.sort_values(["at", "order"])["value"].iloc[-1]
        row = {
            "bucket": bucket,
            "count": len(values),
            "mean": values.mean(),
            "min": values.min(),
            "max": values.max(),
            "last": last,
        }
        for label, q in PERCENTILES.items():
            row[label] = np.percentile(values, q, method="linear")
        rows.append(row)
    return pd.DataFrame(rows)


# --- typed frames ------------------------------------------------------------------------------


def test_metrics_frame_has_typed_columns(store, latency_run):
    frame = metrics_frame(store, name="latency")
    assert len(frame) == len(LATENCY)
    assert frame["recorded_at"].dtype == pd.DatetimeTZDtype("us", "UTC")
    for column in ("external_run_id", "orchestrator", "job", "component", "name"):
        assert isinstance(frame[column].dtype, pd.CategoricalDtype), column
    for column in ("metric_id", "run_id", "attempt", "step"):
        assert frame[column].dtype == np.int64, column
    assert frame["value"].dtype == np.float64
    assert frame["metric_id"].is_monotonic_increasing  # oldest first, by id
    recorded = dict(zip(frame["step"], frame["recorded_at"], strict=True))
    assert all(recorded[i] == pd.Timestamp(at) for i, (at, _) in enumerate(LATENCY))


def test_empty_frames_keep_their_types(store, sales):
    points = metrics_frame(store, name="nothing")
    assert points.empty and points["recorded_at"].dtype == pd.DatetimeTZDtype("us", "UTC")
    assert isinstance(points["name"].dtype, pd.CategoricalDtype)
    aggregated = aggregate_metrics(store, name="nothing", every="1d")
    assert aggregated.empty
    assert aggregated.columns.tolist()[:4] == ["bucket", "job", "component", "name"]
    assert aggregated["bucket"].dtype == pd.DatetimeTZDtype("us", "UTC")


# --- filters -----------------------------------------------------------------------------------


@pytest.fixture
def two_jobs(store: MetadataStore, factory: Factory, sales: str):
    """sales (env=prod): a retried run; other (env=dev): one run."""
    factory.job(name="other", tags={"env": "dev"})
    retried = factory.finished_run(sales, run_id="retried")
    store.metrics.record(
        [
            ("extract", "rows", 5.0, 0, 1, T0),  # attempt 1 of extract: retried
            ("extract", "rows", 6.0, 0, 2, T0 + timedelta(minutes=5)),
            ("load", "rows", 6.0, 0, 1, T0 + timedelta(minutes=6)),
            ("load", "seconds", 2.5, 0, 1, T0 + timedelta(minutes=7)),
        ],
        execution_id=retried.id,
    )
    plain = factory.finished_run("other", run_id="plain")
    store.metrics.record(
        [("extract", "rows", 50.0, 0, 1, T0 + timedelta(days=2))], execution_id=plain.id
    )
    return retried, plain


def _values(frame: pd.DataFrame) -> list[tuple]:
    return sorted(
        zip(
            frame["job"].astype(str),
            frame["component"].astype(str),
            frame["name"].astype(str),
            frame["attempt"],
            frame["value"],
            strict=True,
        )
    )


def test_final_attempts_drop_retried_points_and_all_keeps_them(store, two_jobs):
    final = metrics_frame(store, job="sales")
    assert _values(final) == [
        ("sales", "extract", "rows", 2, 6.0),
        ("sales", "load", "rows", 1, 6.0),
        ("sales", "load", "seconds", 1, 2.5),
    ]
    every = metrics_frame(store, job="sales", attempts="all")
    assert ("sales", "extract", "rows", 1, 5.0) in _values(every) and len(every) == 4
    with pytest.raises(ValidationError) as error:
        metrics_frame(store, attempts="some")  # type: ignore[arg-type]
    assert error.value.field == "attempts"


def test_filters_by_job_component_name_and_run(store, two_jobs):
    retried, plain = two_jobs
    assert set(metrics_frame(store, job="other")["run_id"]) == {plain.id}
    assert len(metrics_frame(store, job=["sales", "other"])) == 4
    assert len(metrics_frame(store, job=[])) == 0  # an empty list matches nothing
    assert set(metrics_frame(store, component="load")["name"]) == {"rows", "seconds"}
    assert len(metrics_frame(store, component="extract", name="rows")) == 2
    assert set(metrics_frame(store, name=["seconds"])["value"]) == {2.5}
    by_store_id = metrics_frame(store, run=retried.id)
    by_run_id = metrics_frame(store, run="retried")
    assert by_store_id["metric_id"].tolist() == by_run_id["metric_id"].tolist()
    assert set(by_run_id["external_run_id"]) == {"retried"}


def test_filters_by_time_window_since_inclusive_until_exclusive(store, two_jobs):
    since = metrics_frame(store, since=T0 + timedelta(minutes=6))
    assert sorted(since["value"]) == [2.5, 6.0, 50.0]
    until = metrics_frame(store, until=T0 + timedelta(minutes=6))
    assert sorted(until["value"]) == [6.0]  # the final extract point at minute 5
    window = metrics_frame(store, since=T0 + timedelta(minutes=5), until=T0 + timedelta(minutes=7))
    assert sorted(window["value"]) == [6.0, 6.0]
    with pytest.raises(ValidationError) as error:
        metrics_frame(store, since=datetime(2026, 1, 1))  # naive: ambiguous
    assert error.value.field == "since"


def test_filters_by_tags_and_filter_expressions(store, two_jobs):
    assert set(metrics_frame(store, tags={"env": "dev"})["job"]) == {"other"}
    assert set(metrics_frame(store, tags={"env": "prod"})["job"]) == {"sales"}
    assert metrics_frame(store, tags={"env": "prod", "team": "x"}).empty
    expr = metrics_frame(store, filter="value > 5 and component = 'extract'")
    assert sorted(expr["value"]) == [6.0, 50.0]
    assert set(metrics_frame(store, filter="tag.env = 'dev'")["job"]) == {"other"}
    ran = metrics_frame(store, filter="run = 'retried' and name in ('seconds')")
    assert ran["value"].tolist() == [2.5]
    with pytest.raises(FilterSyntaxError) as error:
        metrics_frame(store, filter="value >")
    assert error.value.field == "filter"


# --- aggregates --------------------------------------------------------------------------------


@pytest.mark.parametrize("every", ["1h", "1d", "1w"])
def test_aggregates_per_bucket_equal_numpy(store, latency_run, every):
    frame = aggregate_metrics(store, name="latency", every=every, aggregates=ALL_AGGREGATES)
    expected = expected_aggregates(LATENCY, every)
    assert frame["bucket"].tolist() == expected["bucket"].tolist()
    assert set(frame["job"]) == {"sales"} and set(frame["component"]) == {"load"}
    assert frame["count"].tolist() == expected["count"].tolist()
    assert frame["count"].dtype == np.int64
    for column in ("mean", "min", "max", "last", *PERCENTILES):
        assert frame[column].tolist() == pytest.approx(expected[column].tolist(), rel=1e-12), column
    # The fixture's buckets really hold 1, 2 and more points.
    assert {1, 2} <= set(frame["count"]) and max(frame["count"]) > 2


def test_aggregate_types_groups_and_no_bucket(store, latency_run):
    frame = aggregate_metrics(store, every="1d")
    assert frame["bucket"].dtype == pd.DatetimeTZDtype("us", "UTC")
    assert list(frame.columns) == ["bucket", "job", "component", "name", *AGGREGATES]
    assert set(zip(frame["component"], frame["name"], strict=True)) == {
        ("extract", "rows"),
        ("load", "latency"),
    }
    whole = aggregate_metrics(store, every=None, by=["job"], aggregates=["count", "max"])
    assert list(whole.columns) == ["job", "count", "max"]
    assert whole["count"].tolist() == [len(LATENCY) + 3] and whole["max"].tolist() == [1000.0]
    window = aggregate_metrics(
        store, name="latency", every=None, by=["name"], aggregates=["last"], until=MONDAY
    )
    assert window.empty


def test_aggregate_rejects_unknown_arguments(store, sales):
    cases = [
        ({"every": "1m"}, "every"),
        ({"aggregates": ["median"]}, "aggregates"),
        ({"by": ["run"]}, "by"),
    ]
    for arguments, field in cases:
        with pytest.raises(ValidationError) as error:
            aggregate_metrics(store, **arguments)
        assert error.value.field == field


# --- latest metrics ----------------------------------------------------------------------------


def test_latest_metrics_for_the_most_recent_runs(store, factory, sales):
    runs = [factory.finished_run(sales, run_id=f"r{i}") for i in range(5)]
    for i, run in enumerate(runs):
        store.metrics.record(
            [
                ("extract", "rows", float(10 * i + step), step, 1, T0 + timedelta(hours=i))
                for step in range(3)
            ],
            execution_id=run.id,
        )
    # The newest run's load step was retried: attempt 2 wins even with a lower step.
    store.metrics.record(
        [
            ("load", "rows", 1.0, 9, 1, T0 + timedelta(hours=5)),
            ("load", "rows", 2.0, 0, 2, T0 + timedelta(hours=6)),
        ],
        execution_id=runs[-1].id,
    )
    frame = latest_metrics(store, sales, runs=3)
    assert frame["run_id"].unique().tolist() == [runs[4].id, runs[3].id, runs[2].id]
    latest = {
        (run, str(component), str(name)): (attempt, step, value)
        for run, component, name, attempt, step, value in zip(
            frame["run_id"],
            frame["component"],
            frame["name"],
            frame["attempt"],
            frame["step"],
            frame["value"],
            strict=True,
        )
    }
    assert latest == {
        (runs[4].id, "extract", "rows"): (1, 2, 42.0),
        (runs[4].id, "load", "rows"): (2, 0, 2.0),
        (runs[3].id, "extract", "rows"): (1, 2, 32.0),
        (runs[2].id, "extract", "rows"): (1, 2, 22.0),
    }
    assert frame["recorded_at"].dtype == pd.DatetimeTZDtype("us", "UTC")
    for column in ("status", "external_run_id"):
        assert isinstance(frame[column].dtype, pd.CategoricalDtype), column


# --- runs --------------------------------------------------------------------------------------


@pytest.fixture
def run_outcomes(store: MetadataStore, factory: Factory, sales: str):
    """sales: success (60 s, one retry costing 30 s), failed, success, running; other: queued."""
    at = T0
    retried = store.executions.upsert(
        {
            "job": sales,
            "orchestrator": "dagster",
            "external_run_id": "h-1",
            "status": "success",
            "started_at": at,
            "ended_at": at + timedelta(seconds=60),
        },
        steps=[
            {
                "component": "extract",
                "attempt": 1,
                "status": "failed",
                "started_at": at,
                "ended_at": at + timedelta(seconds=30),
            },
            {
                "component": "extract",
                "attempt": 2,
                "status": "success",
                "started_at": at + timedelta(seconds=30),
                "ended_at": at + timedelta(seconds=40),
            },
            {
                "component": "load",
                "attempt": 1,
                "status": "success",
                "started_at": at + timedelta(seconds=40),
                "ended_at": at + timedelta(seconds=60),
            },
        ],
    )
    failed = factory.execution(
        sales, run_id="h-2", status="failed", ended_at=T0 + timedelta(seconds=5)
    )
    ok = factory.finished_run(sales, run_id="h-3", seconds=12.5)
    running = factory.execution(sales, run_id="h-4", status="running")
    factory.job(name="other")
    queued = factory.execution("other", run_id="h-5", status="queued", started_at=None)
    return retried, failed, ok, running, queued


def test_run_history_durations_retries_and_their_cost(store, run_outcomes):
    retried, failed, ok, running, queued = run_outcomes
    history = run_history(store, job="sales")
    assert history["run_id"].tolist() == [running.id, ok.id, failed.id, retried.id]  # newest first
    row = history.set_index("run_id").loc[retried.id]
    assert row["duration_seconds"] == 60.0
    assert (row["steps"], row["attempts"], row["retries"]) == (2, 3, 1)
    assert row["retry_seconds"] == 30.0
    by_id = history.set_index("run_id")
    assert by_id.loc[ok.id, "duration_seconds"] == 12.5
    assert by_id.loc[ok.id, "retries"] == 0 and by_id.loc[ok.id, "retry_seconds"] == 0.0
    assert pd.isna(by_id.loc[running.id, "duration_seconds"])
    assert history["started_at"].dtype == pd.DatetimeTZDtype("us", "UTC")
    assert run_history(store, status="queued")["run_id"].tolist() == [queued.id]
    assert run_history(store, filter="status = 'failed'")["run_id"].tolist() == [failed.id]
    attempts = step_attempts(store, run_ids=[retried.id])
    assert attempts["is_final_attempt"].tolist() == [False, True, True]


def test_success_rate_per_job(store, run_outcomes):
    rates = success_rate(store).set_index("job")
    sales = rates.loc["sales"]
    assert (sales["runs"], sales["succeeded"], sales["failed"], sales["unfinished"]) == (4, 2, 1, 1)
    assert sales["success_rate"] == pytest.approx(2 / 3)
    assert pd.isna(rates.loc["other", "success_rate"])  # nothing finished: unknown, not 0
    assert success_rate(store, job="nope").empty


# --- comparisons -------------------------------------------------------------------------------


@pytest.fixture
def compared(store: MetadataStore, factory: Factory, sales: str):
    """Run a on configuration v1, run b after load's table and password changed (v2)."""
    run_a = factory.finished_run(sales, run_id="cmp-a", config_versions={"extract": 1, "load": 1})
    store.components.update(
        sales,
        "load",
        {
            "configuration": {
                "table": "t2",
                "connection_url": "sqlite:///out.db",
                "password": SECRET_V2,
            }
        },
    )
    run_b = factory.execution(
        sales,
        run_id="cmp-b",
        status="failed",
        ended_at=T0 + timedelta(seconds=3),
        config_versions={"extract": 1, "load": 2},
    )
    store.metrics.record(
        [
            ("extract", "rows", 100.0, 0, 1, T0),
            ("extract", "rows", 120.0, 1, 1, T0),  # the last step's value counts
            ("load", "rows", 0.0, 0, 1, T0),
        ],
        execution_id=run_a.id,
    )
    store.metrics.record(
        [
            ("extract", "rows", 999.0, 0, 1, T0),  # attempt 1, retried: ignored
            ("extract", "rows", 90.0, 0, 2, T0),
            ("load", "rows", 5.0, 0, 1, T0),
            ("load", "seconds", 1.5, 0, 1, T0),
        ],
        execution_id=run_b.id,
    )
    return run_a, run_b


def test_compare_runs_metrics_side_by_side(store, compared):
    run_a, run_b = compared
    comparison = compare_runs(store, "cmp-a", run_b.id)
    assert (comparison.run_a.id, comparison.run_b.id) == (run_a.id, run_b.id)
    metrics = comparison.metrics.set_index(["component", "name"])
    assert metrics.loc[("extract", "rows"), ["a", "b", "delta"]].tolist() == [120.0, 90.0, -30.0]
    assert metrics.loc[("extract", "rows"), "pct_change"] == pytest.approx(-0.25)
    assert metrics.loc[("load", "rows"), "delta"] == 5.0
    assert pd.isna(metrics.loc[("load", "rows"), "pct_change"])  # from 0: no percentage
    assert pd.isna(metrics.loc[("load", "seconds"), "a"])  # only run b has it


def test_compare_runs_config_changes_are_masked(store, compared):
    comparison = compare_runs(store, "cmp-a", "cmp-b")
    assert comparison.config_known
    changes = {(c.component, c.field): c for c in comparison.config_changes}
    assert set(changes) == {("load", "table"), ("load", "password")}
    table = changes[("load", "table")]
    assert (table.version_a, table.version_b, table.before, table.after) == (1, 2, "t", "t2")
    # The password changed: reported, but only ever masked.
    password = changes[("load", "password")]
    assert (password.before, password.after) == (MASK, MASK)
    text = repr(comparison) + comparison.config_frame().to_string()
    assert SECRET not in text and SECRET_V2 not in text


def test_compare_runs_without_recorded_versions(store, factory, sales):
    a = factory.finished_run(sales, run_id="nv-a")
    b = factory.finished_run(sales, run_id="nv-b", config_versions={"load": 1})
    comparison = compare_runs(store, a.id, b.id)
    assert not comparison.config_known and comparison.config_changes == ()
    assert comparison.metrics.empty


def test_changes_since_last_success(store, factory, sales):
    factory.job(name="other")
    first = factory.finished_run(sales, run_id="s-1")
    second = factory.finished_run(sales, run_id="s-2")
    factory.finished_run("other", run_id="o-1")  # another job's success is no baseline
    failed = factory.execution(sales, run_id="s-3", status="failed")
    comparison = changes_since_last_success(store, "s-3")
    assert comparison is not None
    assert (comparison.run_a.id, comparison.run_b.id) == (second.id, failed.id)
    assert last_success_before(store, second.id).id == first.id
    assert changes_since_last_success(store, first.id) is None


# --- pagination --------------------------------------------------------------------------------


def test_metric_pages_neither_overlap_nor_skip_while_rows_arrive(store, factory, sales):
    run = factory.finished_run(sales, run_id="pages")

    def record(start: int, count: int) -> None:
        points = [("extract", "rows", float(s), s, 1, T0) for s in range(start, start + count)]
        store.metrics.record(points, execution_id=run.id)

    record(0, 25)
    before = set(metrics_frame(store)["metric_id"])
    seen: list[int] = []
    cursor = None
    pages = 0
    while True:
        page = metrics_page(store, cursor=cursor, limit=10)
        seen += page.frame["metric_id"].tolist()
        pages += 1
        if pages == 1:
            record(100, 7)  # arrives between page fetches
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted(seen) and len(seen) == len(set(seen))  # oldest first, no repeats
    assert before <= set(seen)  # nothing skipped
    assert set(seen) == set(metrics_frame(store)["metric_id"])  # new rows come at the end
    assert pages == 4  # 32 rows, 10 a page


def test_run_pages_newest_first_stable_while_runs_arrive(store, factory, sales):
    runs = [factory.finished_run(sales, run_id=f"p{i}") for i in range(12)]
    seen: list[int] = []
    cursor = None
    while True:
        page = runs_page(store, cursor=cursor, limit=5, job=sales)
        seen += page.frame["run_id"].tolist()
        factory.finished_run(sales)  # a new run between fetches never shifts a page
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == sorted((r.id for r in runs), reverse=True)


def test_last_page_has_no_cursor(store, factory, sales):
    factory.finished_run(sales, run_id="only")
    page = runs_page(store, limit=1)
    assert len(page.frame) == 1 and page.next_cursor is None
    assert metrics_page(store).next_cursor is None and metrics_page(store).frame.empty


def test_foreign_or_garbled_cursors_are_rejected(store, factory, sales):
    for index in range(3):
        factory.finished_run(sales, run_id=f"c{index}")
    runs_cursor = runs_page(store, limit=1).next_cursor
    assert runs_cursor is not None
    garbled = ["not a cursor!", "", "bWV0cmljczphYmM", "é", runs_cursor[:-2] + "~~", "bWV0cmljczo"]
    for cursor in garbled:
        with pytest.raises(ValidationError) as error:
            metrics_page(store, cursor=cursor)
        assert error.value.field == "cursor", cursor
    with pytest.raises(ValidationError) as error:
        metrics_page(store, cursor=runs_cursor)  # a runs cursor is no metrics cursor
    assert error.value.field == "cursor"
