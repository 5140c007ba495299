"""The etl_meta_retention maintenance DAG: written by the export, parsed without the store,
and applying the retention policies on a worker."""

from __future__ import annotations

import runpy

import pytest
from typer.testing import CliRunner

from etl_meta.airflow.export import RETENTION_FILE, export_dags
from etl_meta.cli import app
from tests.airflow.support import chain_job, dags_folder
from tests.factories import unique
from tests.store.test_retention_pass import NOW


def _finished_run(store, job: str, age_days: int) -> int:
    from datetime import timedelta

    started = NOW - timedelta(days=age_days)
    run = store.executions.upsert(
        {
            "job": job,
            "orchestrator": "airflow",
            "external_run_id": unique("run"),
            "status": "success",
            "started_at": started,
            "ended_at": started + timedelta(hours=1),
        }
    )
    return run.id


def test_the_export_writes_a_paused_retention_dag_that_parses_without_the_store(
    store, airflow_env, monkeypatch, tmp_path
):
    chain_job(store)
    result = export_dags(store, tmp_path / "dags", retention_schedule="30 2 * * *")
    assert result.retention_file == tmp_path / "dags" / RETENTION_FILE
    monkeypatch.setenv("ETL_META_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    namespace = runpy.run_path(str(result.retention_file))
    dag = namespace["etl_meta_retention"]
    assert dag.dag_id == "etl_meta_retention"
    assert "30 2 * * *" in repr(dag.timetable)
    assert set(dag.tags) == {"etl-meta-maintenance"}  # not a job: the listener ignores it
    assert [task.task_id for task in dag.tasks] == ["apply_retention"]
    assert dag.is_paused_upon_creation is True and dag.max_active_runs == 1

    again = export_dags(store, tmp_path / "dags", retention_schedule=None)
    assert again.retention_file is None
    assert not (tmp_path / "dags" / RETENTION_FILE).exists()


def test_a_bad_cron_is_refused_before_anything_is_written(store, airflow_env, tmp_path):
    with pytest.raises(ValueError, match="5-field cron"):
        export_dags(store, tmp_path / "dags", retention_schedule="every day")
    assert not (tmp_path / "dags" / RETENTION_FILE).exists()


def test_the_cli_writes_it_by_default_and_off_leaves_it_out(
    store, store_url, airflow_env, tmp_path
):
    chain_job(store)
    folder = tmp_path / "dags"
    runner = CliRunner()
    args = ["airflow", "export", "--dags-folder", str(folder), "--database-url", store_url]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "schedule='0 3 * * *'" in (folder / RETENTION_FILE).read_text()
    result = runner.invoke(app, [*args, "--retention-schedule", "off"])
    assert result.exit_code == 0, result.output
    assert not (folder / RETENTION_FILE).exists()


def test_a_job_cannot_take_the_retention_dags_name(store, airflow_env, tmp_path):
    chain_job(store, name="etl_meta_retention")
    result = export_dags(store, tmp_path / "dags")
    assert "maintenance DAG" in result.problems["etl_meta_retention"]


def test_the_retention_dag_applies_the_policies_on_a_worker(store, airflow_env):
    chain_job(store, name="kept_short")
    store.retention.set_default({"raw_days": 30, "rollup_days": 60})
    expired, recent = _finished_run(store, "kept_short", 200), _finished_run(store, "kept_short", 5)
    # The session's dags folder: dag.test() runs DAGs Airflow has parsed from there.
    result = export_dags(store, dags_folder(), retention_schedule="0 3 * * *")
    dag = runpy.run_path(str(result.retention_file))["etl_meta_retention"]
    dag_run = dag.test()
    assert dag_run.state == "success"
    remaining = {run.id for run in store.executions.list(limit=100)}
    assert expired not in remaining and recent in remaining
    events = store.audit.list(action="retention")
    assert {e.actor for e in events} == {"airflow:etl_meta_retention"}
    assert store.executions.find("airflow", dag_run.run_id) is None  # not a job
