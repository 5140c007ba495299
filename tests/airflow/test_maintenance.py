"""The etl_meta_reconcile maintenance DAG: written by the export, parsed without the store, and
reconciling through the API server on its own."""

from __future__ import annotations

import runpy
from datetime import timedelta

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from etl_meta.airflow import connection
from etl_meta.airflow.export import MAINTENANCE_FILE, export_dags
from etl_meta.airflow.rest import AirflowApiError
from etl_meta.cli import app
from etl_meta.models import Execution
from tests.airflow.api_server import PASSWORD, USERNAME
from tests.airflow.support import chain_job, dags_folder, drain, exported_dags


def test_the_export_writes_a_maintenance_dag_that_parses_without_the_store(
    store, airflow_env, monkeypatch, tmp_path
):
    chain_job(store)
    result = export_dags(store, tmp_path / "dags", reconcile_minutes=3)
    assert result.maintenance_file == tmp_path / "dags" / MAINTENANCE_FILE
    monkeypatch.setenv("ETL_META_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    namespace = runpy.run_path(str(result.maintenance_file))
    dag = namespace["etl_meta_reconcile"]
    assert dag.dag_id == "etl_meta_reconcile"
    assert f"delta={timedelta(minutes=3)!r}" in repr(dag.timetable)
    assert set(dag.tags) == {"etl-meta-maintenance"}  # not a job: the listener ignores it
    assert [task.task_id for task in dag.tasks] == ["reconcile"]
    assert dag.max_active_runs == 1

    again = export_dags(store, tmp_path / "dags", reconcile_minutes=0)
    assert again.maintenance_file is None
    assert not (tmp_path / "dags" / MAINTENANCE_FILE).exists()


def test_a_job_cannot_take_the_maintenance_dags_name(store, airflow_env):
    chain_job(store, name="etl_meta_reconcile")
    result = export_dags(store, dags_folder())
    assert "etl_meta_reconcile" in result.problems
    assert "maintenance DAG" in result.problems["etl_meta_reconcile"]


def test_the_maintenance_dag_records_a_run_the_listener_dropped(
    store, airflow_env, api_server, monkeypatch
):
    chain_job(store, name="kept_by_maintenance", num_of_retries=0, b_config={"n": 1})
    dags = exported_dags(store)
    dag_run = dags["kept_by_maintenance"].test()
    drain()
    with store.transaction() as session:  # as if the scheduler had died with its write queued
        session.execute(
            sa.update(Execution)
            .where(Execution.external_run_id == dag_run.run_id)
            .values(status="running", ended_at=None)
        )

    monkeypatch.setenv(connection.URL_ENV, api_server.url)
    monkeypatch.setenv(connection.USERNAME_ENV, USERNAME)
    monkeypatch.setenv(connection.PASSWORD_ENV, PASSWORD)
    namespace = runpy.run_path(str(dags_folder() / MAINTENANCE_FILE))
    maintenance_run = namespace["etl_meta_reconcile"].test()

    assert maintenance_run.state == "success"
    assert store.executions.find("airflow", dag_run.run_id).status == "success"
    assert store.executions.find("airflow", maintenance_run.run_id) is None  # not a job


def test_api_access_needs_a_url_and_both_halves_of_a_login(monkeypatch):
    for name in (connection.URL_ENV, connection.USERNAME_ENV, connection.PASSWORD_ENV):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(AirflowApiError, match="ETL_META_AIRFLOW_API_URL"):
        connection.api_access()
    with pytest.raises(AirflowApiError, match="both a username and a password"):
        connection.api_access(url="http://airflow:8080", username="admin")
    access = connection.api_access(url="http://airflow:8080", username="a", password="s3cret")
    assert "s3cret" not in repr(access)


def test_the_export_command_reports_the_maintenance_dag(store_url, store, tmp_path):
    chain_job(store)
    folder = tmp_path / "dags"
    result = CliRunner().invoke(
        app,
        [
            "airflow",
            "export",
            "--dags-folder",
            str(folder),
            "--database-url",
            store_url,
            "--reconcile-every",
            "10",
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert f'"maintenance_file": "{folder / MAINTENANCE_FILE}"' in result.output
    assert "interval_minutes=10.0" in (folder / MAINTENANCE_FILE).read_text()
