"""``analytics.metrics_daily_frame`` answers the same before and after retention rolls up."""

from __future__ import annotations

from datetime import timedelta

import pandas as pd
import pandas.testing as pdt

from etl_meta import analytics
from etl_meta.models import metric_points
from tests.factories import count_rows, unique
from tests.store.test_retention_pass import NOW, add_run


def test_the_daily_frame_is_the_same_before_and_after_a_rollup(store, factory):
    job, other = factory.job().name, factory.job().name
    runs = [add_run(store, job, age_days=age) for age in (60, 45, 2)]
    add_run(store, other, age_days=60)
    # A retried step: attempt 2 has its own points and its own rows.
    store.metrics.record(
        [("extract", "rows", 3.0, 0, 2, NOW - timedelta(days=60))], execution_id=runs[0].id
    )
    before = analytics.metrics_daily_frame(store, job=job)
    store.retention.set_default({"raw_days": 30, "rollup_days": 3650})
    result = store.maintenance.apply_retention()
    assert sum(line.runs_rolled_up for line in result.jobs) == 3  # both jobs' old runs
    assert (
        count_rows(store, metric_points, metric_points.c.execution_id, [runs[0].id, runs[1].id])
        == 0
    )
    after = analytics.metrics_daily_frame(store, job=job)
    pdt.assert_frame_equal(before, after)
    # Seven rows per old run (rows on two days + bytes, the retried attempt on run 0), three
    # for the recent raw one.
    assert len(after) == 3 + 3 + 3 + 1
    first_day = pd.Timestamp((NOW - timedelta(days=60)).date(), tz="UTC")
    row = after[
        (after["run_id"] == runs[0].id)
        & (after["name"] == "rows")
        & (after["attempt"] == 1)
        & (after["day"] == first_day)
    ].iloc[0]
    assert (row["count"], row["min"], row["max"], row["sum"], row["mean"]) == (
        2,
        1.0,
        5.0,
        6.0,
        3.0,
    )
    assert (row["first"], row["last"], row["job"], row["component"]) == (5.0, 1.0, job, "extract")


def test_points_recorded_into_a_rolled_up_run_merge_into_its_day(store, factory):
    job = factory.job().name
    run = add_run(store, job, age_days=60)
    store.retention.set_default({"raw_days": 30, "rollup_days": 3650})
    store.maintenance.apply_retention()
    late = NOW - timedelta(days=60) + timedelta(minutes=5)
    store.metrics.record([("extract", "rows", 9.0, 5, 1, late)], execution_id=run.id)
    expected = analytics.metrics_daily_frame(store, run_id=run.id, name="rows")
    store.maintenance.apply_retention()  # merges the late point into the existing rollup
    merged = analytics.metrics_daily_frame(store, run_id=run.id, name="rows")
    pdt.assert_frame_equal(expected, merged)
    first = merged.iloc[0]
    assert (first["count"], first["max"], first["sum"], first["last"]) == (3, 9.0, 15.0, 9.0)


def test_an_empty_selection_is_an_empty_frame_with_the_columns(store):
    frame = analytics.metrics_daily_frame(store, job=unique("nojob"))
    assert list(frame.columns) == list(analytics.daily.DAILY_COLUMNS) and frame.empty
