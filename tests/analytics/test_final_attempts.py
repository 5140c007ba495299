"""``attempts="final"``: a step's points from the last of its attempts that recorded any, by every
read path (frame, page, aggregate, count), on both backends."""

from __future__ import annotations

import pytest

from etl_meta.analytics import aggregate_metrics, metric_count, metrics_frame, metrics_page
from tests.factories import T0, Factory


@pytest.fixture
def run_id(store, factory: Factory) -> int:
    job = factory.job().name
    steps = [
        {"component": "extract", "attempt": 1, "status": "success"},
        {"component": "load", "attempt": 1, "status": "failed"},
        {"component": "load", "attempt": 2, "status": "failed"},
        {"component": "load", "attempt": 3, "status": "success"},
    ]
    run = store.executions.upsert(
        {"job": job, "orchestrator": "dagster", "external_run_id": "final-1", "status": "success"},
        steps=steps,
    )
    points = [("extract", "rows", 1.0, 0, 1, T0), ("extract", "rows", 2.0, 1, 1, T0)]
    points += [("load", "rows", float(10 * a + s), s, a, T0) for a in (1, 2, 3) for s in (0, 1)]
    store.metrics.record(points, execution_id=run.id)
    # A second run whose retry recorded nothing: its first attempt's points are the final ones.
    other = store.executions.upsert(
        {"job": job, "orchestrator": "dagster", "external_run_id": "final-2", "status": "failed"},
        steps=[
            {"component": "load", "attempt": 1, "status": "failed"},
            {"component": "load", "attempt": 2, "status": "failed"},
        ],
    )
    store.metrics.record([("load", "rows", 7.0, 0, 1, T0)], execution_id=other.id)
    return run.id


def _kept(frame) -> set[tuple[str, str, int, int]]:
    return {
        (run, str(component), int(attempt), int(step))
        for run, component, attempt, step in zip(
            frame["external_run_id"],
            frame["component"],
            frame["attempt"],
            frame["step"],
            strict=True,
        )
    }


EXPECTED = {
    ("final-1", "extract", 1, 0),
    ("final-1", "extract", 1, 1),
    ("final-1", "load", 3, 0),
    ("final-1", "load", 3, 1),
    ("final-2", "load", 1, 0),
}


def test_every_read_keeps_the_last_attempt_that_recorded_points(store, run_id):
    assert _kept(metrics_frame(store)) == EXPECTED
    page = metrics_page(store, limit=3)
    rest = metrics_page(store, cursor=page.next_cursor, limit=10)
    assert _kept(page.frame) | _kept(rest.frame) == EXPECTED and len(page.frame) == 3
    assert metric_count(store, attempts="final") == len(EXPECTED)
    assert metric_count(store, attempts="all") == 9
    daily = aggregate_metrics(store, name="rows", every="1d", aggregates=["count", "max"])
    by_component = dict(zip(daily["component"].astype(str), daily["count"], strict=True))
    assert by_component == {"extract": 2, "load": 3}
    assert dict(zip(daily["component"].astype(str), daily["max"], strict=True)) == {
        "extract": 2.0,
        "load": 31.0,
    }


@pytest.mark.parametrize(
    "filters",
    [
        {},
        {"run": "final-1"},
        {"run": "final-2"},
        {"component": "load"},
        {"component": "extract", "name": "rows"},
        {"filter": "value >= 10 and status = 'success'"},
    ],
    ids=lambda f: ",".join(f) or "none",
)
def test_counts_are_the_number_of_rows_the_frame_returns(store, run_id, filters):
    """Final counts subtract superseded attempts from all points (a different statement from
    the frame's anti-join): both must agree for every filter."""
    for attempts in ("all", "final"):
        frame = metrics_frame(store, attempts=attempts, **filters)
        assert metric_count(store, attempts=attempts, **filters) == len(frame)
