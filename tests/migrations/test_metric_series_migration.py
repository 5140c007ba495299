"""Migration 0011 moves a populated store's points into series and back, batch by batch."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from etl_meta import MetadataStore
from etl_meta import schema as schema_mod
from etl_meta.db import create_engine
from etl_meta.models import metric_points
from tests.factories import Factory

T0 = datetime(2026, 3, 1, tzinfo=UTC)
COLUMNS = ("id", "execution_id", "component_id", "attempt", "name", "step", "value", "recorded_at")


@pytest.fixture
def engine(empty_url, settings):
    engine = create_engine(empty_url, settings=settings)
    yield engine
    engine.dispose()


def points_at_head(engine: sa.Engine) -> list[tuple]:
    columns = [metric_points.c[name] for name in COLUMNS]
    with engine.connect() as connection:
        return [tuple(r) for r in connection.execute(sa.select(*columns).order_by(columns[0]))]


def points_at_0010(engine: sa.Engine) -> list[tuple]:
    with engine.connect() as connection:
        rows = connection.exec_driver_sql(f"SELECT {', '.join(COLUMNS)} FROM metric ORDER BY id")
        return [tuple(r) for r in rows]


def as_values(rows: list[tuple]) -> list[tuple]:
    """Rows with timestamps as aware UTC (SQLite's raw text reads back through the models)."""
    out = []
    for row in rows:
        at = row[-1]
        if isinstance(at, str):
            at = datetime.fromisoformat(at).replace(tzinfo=UTC)
        out.append((*row[:-1], at.astimezone(UTC)))
    return out


def record(store: MetadataStore, job: str, runs: int) -> None:
    for number in range(runs):
        run = store.executions.upsert(
            {
                "job": job,
                "orchestrator": "dagster",
                "external_run_id": f"{job}-{number}",
                "status": "success",
            }
        )
        at = T0 + timedelta(hours=number)
        points = [
            (component, name, float(step * attempt), step, attempt, at + timedelta(seconds=step))
            for component in ("extract", "load")
            for name in ("rows", "bytes")
            for attempt in (1, 2)
            for step in range(3)
        ]
        store.metrics.record(points, execution_id=run.id)


def test_points_move_down_and_up_again_unchanged_in_small_batches(engine, settings, monkeypatch):
    # Batches of 7 rows: a series (3 steps) straddles batch boundaries both ways.
    monkeypatch.setenv("ETL_META_MIGRATION_BATCH_ROWS", "7")
    schema_mod.upgrade(engine, settings=settings)
    with MetadataStore(engine=engine, settings=settings) as store:
        factory = Factory(store)
        for job in ("sales", "stock"):
            factory.job(name=job)
            record(store, job, runs=4)
    stored = as_values(points_at_head(engine))
    assert len(stored) == 2 * 4 * 24

    schema_mod.downgrade(engine, "0010", settings=settings)
    assert as_values(points_at_0010(engine)) == stored
    tables = set(sa.inspect(engine).get_table_names())
    assert {"metric_series", "metric_point", "metric_name"} & tables == set()

    schema_mod.upgrade(engine, settings=settings)
    assert as_values(points_at_head(engine)) == stored
    assert schema_mod.schema_drift(engine) == []
    with engine.connect() as connection:
        series = connection.exec_driver_sql(
            "SELECT s.id, s.execution_id FROM metric_series s ORDER BY s.id"
        ).all()
    assert len(series) == 2 * 4 * 2 * 2 * 2  # runs x components x names x attempts
    # Series ids keep the recording order: runs in the order their first point was stored.
    assert [run for _, run in series] == sorted(run for _, run in series)

    with MetadataStore(engine=engine, settings=settings) as store:
        run = store.executions.find("dagster", "sales-0")
        replay = [("extract", "rows", 0.0, 0, 1, T0)]
        assert store.metrics.record(replay, execution_id=run.id).skipped == 1
        new = store.metrics.record([("extract", "rows", 9.0, 9, 1, T0)], execution_id=run.id)
        assert new.inserted == 1
    after = as_values(points_at_head(engine))
    assert after[:-1] == stored  # the new point comes last, with a new id
    assert after[-1][0] > stored[-1][0] and after[-1][5] == 9


def test_the_views_read_the_same_rows_before_and_after(engine, settings):
    schema_mod.upgrade(engine, "0010", settings=settings)
    schema_mod.upgrade(engine, settings=settings)  # an empty store first: only the shape moves
    with MetadataStore(engine=engine, settings=settings) as store:
        Factory(store).job(name="sales")
        record(store, "sales", runs=2)
    query = "SELECT * FROM {} ORDER BY 1, 2, 3, 4"
    with engine.connect() as connection:
        daily = connection.exec_driver_sql(query.format("v_metric_daily")).all()
        points = connection.exec_driver_sql("SELECT * FROM v_metric ORDER BY metric_id").all()
    schema_mod.downgrade(engine, "0010", settings=settings)
    with engine.connect() as connection:
        assert connection.exec_driver_sql(query.format("v_metric_daily")).all() == daily
        old = connection.exec_driver_sql("SELECT * FROM v_metric ORDER BY metric_id").all()
    assert old == points and len(points) == 2 * 24
    assert {row.is_final_attempt for row in points} == {True, False}
