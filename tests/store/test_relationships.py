"""ORM relationships for code that works with sessions directly (lazy loading, on request)."""

import sqlalchemy as sa

from etl_meta.models import Component, Execution, Job, metric_points
from tests.seed import seed_every_table


def test_rows_navigate_from_jobs_to_runs_attempts_and_metrics(store):
    seed_every_table(store)
    store.executions.upsert(
        {
            "job": "daily_sales",
            "orchestrator": "airflow",
            "external_run_id": "later",
            "status": "running",
        }
    )
    with store.transaction(readonly=True) as session:
        job = session.scalars(sa.select(Job).where(Job.name == "daily_sales")).one()
        assert [c.name for c in job.components] == ["extract", "load"]
        assert {t.key for t in job.tags} == {"team", "env"}
        assert [h.version for h in job.components[0].config_history] == [1, 2]
        assert [c.name for c in job.components[1].depends_on] == ["extract"]
        assert job.latest_execution.external_run_id == "later"
        runs = session.scalars(job.executions.select()).all()
        assert [r.external_run_id for r in runs] == ["later", "run-1"]
        first = session.scalars(
            sa.select(Execution).where(Execution.external_run_id == "run-1")
        ).one()
        assert first.job.name == "daily_sales"
        assert [(a.component.name, a.attempt) for a in first.attempts] == [
            ("extract", 1),
            ("extract", 2),
            ("load", 1),
        ]
        extract = session.scalars(sa.select(Component).where(Component.name == "extract")).one()
        points = session.execute(
            sa.select(metric_points.c.name, metric_points.c.attempt).where(
                metric_points.c.component_id == extract.id
            )
        ).all()
        assert [tuple(p) for p in points] == [("rows", 2)]
