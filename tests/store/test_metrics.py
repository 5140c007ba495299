"""Metric points: validated in bulk, written once, replays skipped."""

import math
from datetime import UTC, datetime

import pytest

from etl_meta import NotFoundError, ValidationError
from etl_meta.models import MetricPoint
from tests.factories import T0


@pytest.fixture
def run(factory):
    job = factory.job()
    return factory.execution(job.name, run_id="metrics-run")


def test_points_in_every_accepted_shape_are_recorded(store, run):
    result = store.metrics.record(
        [
            ("extract", "rows", 100),
            ("extract", "rows", 120, 1),
            ("extract", "rows", 90, 0, 2, T0),
            {"component": "load", "name": "bytes", "value": 1.5e6},
            MetricPoint(component="load", name="nulls", value=0),
        ],
        execution_id=run.id,
    )
    assert (result.inserted, result.skipped) == (5, 0)
    points = store.metrics.list(execution_id=run.id)
    assert [(p.component_name, p.name, p.attempt, p.step, p.value) for p in points] == [
        ("extract", "rows", 1, 0, 100.0),
        ("extract", "rows", 1, 1, 120.0),
        ("extract", "rows", 2, 0, 90.0),
        ("load", "bytes", 1, 0, 1.5e6),
        ("load", "nulls", 1, 0, 0.0),
    ]
    assert points[2].recorded_at == T0


def test_replaying_a_batch_records_nothing_new(store, run):
    batch = [("extract", "rows", float(i), i) for i in range(50)]
    assert store.metrics.record(batch, execution_id=run.id).inserted == 50
    again = store.metrics.record(batch, orchestrator="dagster", run_id="metrics-run")
    assert (again.inserted, again.skipped) == (0, 50)
    assert len(store.metrics.list(execution_id=run.id)) == 50


def test_a_point_is_immutable_once_recorded(store, run):
    store.metrics.record([("extract", "rows", 1.0)], execution_id=run.id)
    store.metrics.record([("extract", "rows", 2.0)], execution_id=run.id)
    assert [p.value for p in store.metrics.list(execution_id=run.id)] == [1.0]


def test_one_bad_point_rejects_the_whole_batch_listing_every_problem(store, run):
    with pytest.raises(ValidationError) as caught:
        store.metrics.record(
            [
                ("extract", "rows", 1.0),
                ("extract", "rows", math.nan, 1),
                ("ghost", "rows", 1.0),
                ("extract", "", 1.0),
                ("extract", "rows", True),
                ("extract", "rows", 1.0, -1),
                ("extract", "rows", 1.0, 0, 0),
                ("extract", "rows", 1.0, 0, 1, datetime(2026, 1, 1)),
                ("extract", "bad\x00name", 1.0),
            ],
            execution_id=run.id,
        )
    fields = [p.field for p in caught.value.problems]
    assert fields == [
        "points.1.value",
        "points.2.component",
        "points.3.name",
        "points.4.value",
        "points.5.step",
        "points.6.attempt",
        "points.7.recorded_at",
        "points.8.name",
    ]
    assert store.metrics.list(execution_id=run.id) == []


def test_points_need_an_existing_execution(store, run):
    with pytest.raises(NotFoundError):
        store.metrics.record([("extract", "rows", 1)], orchestrator="airflow", run_id="metrics-run")
    with pytest.raises(ValidationError):
        store.metrics.record([("extract", "rows", 1)])


def test_final_attempt_only_drops_points_of_retried_attempts(store, run):
    store.metrics.record(
        [
            ("extract", "rows", 1.0, 0, 1),
            ("extract", "rows", 2.0, 0, 2),
            ("load", "rows", 3.0, 0, 1),
        ],
        execution_id=run.id,
    )
    final = store.metrics.list(execution_id=run.id, final_attempt_only=True)
    assert [(p.component_name, p.attempt, p.value) for p in final] == [
        ("extract", 2, 2.0),
        ("load", 1, 3.0),
    ]
    assert [p.value for p in store.metrics.list(execution_id=run.id, component="load")] == [3.0]


def test_many_points_go_in_one_batch(store, run):
    now = datetime.now(UTC)
    batch = [("extract", f"m{i % 20}", float(i), i // 20, 1, now) for i in range(5000)]
    assert store.metrics.record(batch, execution_id=run.id).inserted == 5000
    assert len(store.metrics.list(execution_id=run.id, name="m7")) == 250


def _latest_rows(store):
    import sqlalchemy as sa

    from etl_meta.models import MetricLatest

    with store.transaction(readonly=True) as session:
        rows = session.execute(
            sa.select(
                MetricLatest.component_id,
                MetricLatest.name,
                MetricLatest.attempt,
                MetricLatest.step,
                MetricLatest.value,
            ).order_by(MetricLatest.component_id, MetricLatest.name)
        ).all()
    return [tuple(r) for r in rows]


def test_the_latest_value_table_follows_every_batch_and_ignores_replays(store, run):
    store.metrics.record(
        [("extract", "rows", 1.0, 0), ("extract", "rows", 2.0, 3), ("load", "rows", 9.0, 0)],
        execution_id=run.id,
    )
    store.metrics.record([("extract", "rows", 5.0, 1)], execution_id=run.id)  # older step
    store.metrics.record([("extract", "rows", 7.0, 0, 2)], execution_id=run.id)  # retry wins
    store.metrics.record([("extract", "rows", 99.0, 0, 2)], execution_id=run.id)  # replay
    latest = {(name, attempt, step, value) for _, name, attempt, step, value in _latest_rows(store)}
    assert latest == {("rows", 2, 0, 7.0), ("rows", 1, 0, 9.0)}


def test_the_backfill_migration_rebuilds_the_latest_value_table(store, run):
    import sqlalchemy as sa

    from etl_meta import schema

    store.metrics.record(
        [("extract", "rows", float(i), i % 4, 1 + i // 4) for i in range(12)],
        execution_id=run.id,
    )
    expected = _latest_rows(store)
    with store.engine.begin() as connection:
        connection.execute(sa.text("DELETE FROM metric_latest"))
    schema.downgrade(store.engine, "0003")
    schema.upgrade(store.engine)
    assert _latest_rows(store) == expected == [(expected[0][0], "rows", 3, 3, 11.0)]


def test_a_known_target_records_like_record_and_a_replay_changes_nothing(store, run):
    target = store.metrics.target("extract", orchestrator="dagster", run_id="metrics-run")
    assert (target.execution_id, target.component) == (run.id, "extract")
    audited = len(store.audit.list(limit=1000))
    batch = [("extract", "rows", 1.0, 0), ("extract", "rows", 2.0, 1, 1, T0)]
    first = store.metrics.record_to(target, batch)
    again = store.metrics.record_to(target, batch)
    assert (first.inserted, first.skipped, again.inserted, again.skipped) == (2, 0, 0, 2)
    points = store.metrics.list(execution_id=run.id)
    assert [(p.step, p.value) for p in points] == [(0, 1.0), (1, 2.0)]
    assert points[1].recorded_at == T0
    assert [row[1:] for row in _latest_rows(store)] == [("rows", 1, 1, 2.0)]
    # Points are not audited (their run is): recording leaves the audit trail as it was.
    assert len(store.audit.list(limit=1000)) == audited


def test_a_known_target_refuses_bad_points_with_the_errors_record_gives(store, run):
    target = store.metrics.target("extract", orchestrator="dagster", run_id="metrics-run")
    bad = [("extract", "rows", math.nan), ("load", "rows", 1.0), ("extract", "", 1.0)]
    with pytest.raises(ValidationError) as direct:
        store.metrics.record_to(target, bad)
    fields = [p.field for p in direct.value.problems]
    assert fields == ["points.0.value", "points.1.component", "points.2.name"]
    with pytest.raises(ValidationError) as full:
        store.metrics.record([bad[0], bad[2]], execution_id=run.id)
    assert [p.message for p in full.value.problems] == [
        p.message for p in direct.value.problems if p.field != "points.1.component"
    ]
    assert store.metrics.list(execution_id=run.id) == []


def test_a_target_inside_a_store_transaction_commits_and_rolls_back_with_it(store, run):
    target = store.metrics.target("extract", orchestrator="dagster", run_id="metrics-run")
    with pytest.raises(RuntimeError), store.transaction():
        store.metrics.record_to(target, [("extract", "rows", 1.0)])
        raise RuntimeError("the caller's transaction fails")
    assert store.metrics.list(execution_id=run.id) == []
    with store.transaction():
        store.metrics.record_to(target, [("extract", "rows", 1.0)])
    assert len(store.metrics.list(execution_id=run.id)) == 1


def test_an_unknown_run_or_component_has_no_target(store, run):
    assert store.metrics.target("extract", orchestrator="dagster", run_id="nope") is None
    assert store.metrics.target("nope", orchestrator="dagster", run_id="metrics-run") is None


def test_small_and_copied_batches_store_the_same_rows(store, run, monkeypatch):
    from etl_meta.repository import metric_points as repo

    now = datetime.now(UTC)
    small = [("extract", "rows", float(i), i, 1, now) for i in range(30)]
    store.metrics.record(small, execution_id=run.id)
    monkeypatch.setattr(repo, "COPY_ABOVE", 0)  # every batch takes the bulk path now
    copied = [("load", "rows", float(i), i, 1, now) for i in range(30)]
    assert store.metrics.record(copied + small, execution_id=run.id).inserted == 30
    by_component = {}
    for p in store.metrics.list(execution_id=run.id):
        by_component.setdefault(p.component_name, []).append((p.step, p.value, p.recorded_at))
    assert by_component["extract"] == by_component["load"]
    assert {row[1:] for row in _latest_rows(store)} == {("rows", 1, 29, 29.0)}


def test_a_known_target_writes_from_several_threads_and_after_the_store_is_closed(store, run):
    from concurrent.futures import ThreadPoolExecutor

    target = store.metrics.target("extract", orchestrator="dagster", run_id="metrics-run")

    def write(step: int) -> int:
        return store.metrics.record_to(target, [("extract", "rows", 1.0, step)]).inserted

    with ThreadPoolExecutor(max_workers=4) as pool:
        assert sum(pool.map(write, range(40))) == 40
    store.close()  # closes the store's own connection too; the next write opens another
    assert write(40) == 1
    assert len(store.metrics.list(execution_id=run.id)) == 41


@pytest.mark.extra("analytics")  # numpy comes with pandas
def test_numbers_of_numpy_and_decimal_types_are_recorded_as_floats_and_bools_are_not(store, run):
    import decimal

    import numpy as np

    values = {
        "sum": np.int64(1250),  # what df.amount.sum() returns
        "int32": np.int32(7),
        "ratio": np.float32(0.5),
        "price": decimal.Decimal("19.99"),
    }
    store.metrics.record(
        [("extract", name, value) for name, value in values.items()], execution_id=run.id
    )
    recorded = {p.name: p.value for p in store.metrics.list(execution_id=run.id)}
    assert recorded == {"sum": 1250.0, "int32": 7.0, "ratio": 0.5, "price": 19.99}
    assert all(type(value) is float for value in recorded.values())
    for bad in (np.bool_(True), True, decimal.Decimal("NaN"), np.float64("inf"), "3"):
        with pytest.raises(ValidationError) as caught:
            store.metrics.record([("extract", "bad", bad)], execution_id=run.id)
        assert caught.value.field == "points.0.value"


def test_a_bulk_batch_repeating_stored_points_keeps_the_rest_of_its_transaction(
    store, run, monkeypatch
):
    """PostgreSQL copies a bulk batch straight into the table and, when the batch repeats a
    stored point, goes back to a savepoint and skips what is stored: the transaction's earlier
    writes survive, and every point is stored once."""
    from etl_meta.repository import metric_points as repo

    monkeypatch.setattr(repo, "COPY_ABOVE", 0)  # every batch takes the bulk path
    first = [("extract", "rows", float(i), i, 1, T0) for i in range(10)]
    more = [("extract", "rows", float(i), i, 1, T0) for i in range(10, 15)]
    with store.transaction():
        assert store.metrics.record(first, execution_id=run.id).inserted == 10
        again = store.metrics.record(more + first + more, execution_id=run.id)
    assert (again.inserted, again.skipped) == (5, 15)
    points = store.metrics.list(execution_id=run.id)
    assert [p.step for p in points] == list(range(15))
    assert [row[1:] for row in _latest_rows(store)] == [("rows", 1, 14, 14.0)]
