"""Stored jobs as Airflow DAGs: structure, retries, tags, masking, and no store at parse time."""

from __future__ import annotations

import json
import runpy
from datetime import timedelta

import pytest
from typer.testing import CliRunner

from etl_meta.airflow.export import CATALOG_FILE, DAG_FILE, export_dags, read_catalog
from etl_meta.definitions import apply_definitions, load_definitions
from tests.airflow.support import chain_job, dags_folder, exported_dags
from tests.components.helpers import EXAMPLES
from tests.plugins import declaring_worker_types


def test_a_stored_job_becomes_a_dag_with_tasks_dependencies_retries_and_tags(store, airflow_env):
    chain_job(store, num_of_retries=3, tags={"team": "data"}, description="Sums things")
    dag = exported_dags(store)["chain"]

    assert set(dag.task_dict) == {"a", "b", "c"}
    assert dag.get_task("b").upstream_task_ids == {"a", "c"}
    assert dag.get_task("a").downstream_task_ids == {"b"}
    assert {task.retries for task in dag.tasks} == {3}
    assert {task.retry_delay for task in dag.tasks} == {timedelta(0)}
    assert set(dag.tags) == {"etl-meta", "team:data"}
    assert dag.max_active_tasks == 1  # strategy_type defaults to sequential
    assert dag.description.startswith("Sums things (store revision 1")
    assert dag.schedule is None
    # Masked configuration on the task; the secret itself never reaches Airflow.
    assert dag.get_task("b").configuration["password"] == "***"
    assert "pw-secret" not in (dags_folder() / CATALOG_FILE).read_text()
    assert "pw-secret" not in dag.get_task("b").doc_md


def test_strategy_disabled_components_and_the_example_pipeline(store, airflow_env):
    apply_definitions(store, load_definitions(EXAMPLES / "pipeline.yaml"))
    store.components.update("daily_sales", "validate_sales", {"status": "disabled"})
    dags = exported_dags(store)

    assert set(dags) == {"daily_sales", "inventory_snapshot", "customer_quality_report"}
    sales = dags["daily_sales"]
    assert sales.max_active_tasks == 4  # parallel, max_concurrency 4
    assert {"team:finance", "schedule:daily"} <= set(sales.tags)
    assert {t.retries for t in sales.tasks} == {2}
    assert "validate_sales" not in sales.task_dict  # bridged: writers wait for the join
    assert sales.get_task("save_parquet").upstream_task_ids == {"join_customers"}
    assert sales.get_task("load_warehouse").configuration["password"] == "***"
    assert dags["inventory_snapshot"].max_active_tasks == 1
    assert dags["inventory_snapshot"].get_task("fetch_fx_rates").upstream_task_ids == set()


def test_the_dag_file_never_queries_the_store(store, airflow_env, monkeypatch):
    chain_job(store)
    export_dags(store, dags_folder(), retry_delay_seconds=0)

    import etl_meta.db
    import etl_meta.store.core

    def refuse(*_args, **_kwargs):
        raise AssertionError("the DAG file opened the store")

    monkeypatch.setattr(etl_meta.db, "create_engine", refuse)
    monkeypatch.setattr(etl_meta.store.core, "create_engine", refuse)
    monkeypatch.setenv("ETL_META_DATABASE_URL", "postgresql://nobody@127.0.0.1:1/none")
    namespace = runpy.run_path(str(dags_folder() / DAG_FILE))
    assert "chain" in namespace


def test_a_job_that_cannot_be_built_is_left_out_and_the_others_load(store, airflow_env, caplog):
    chain_job(store)
    with declaring_worker_types(store, "no_such_type") as declaring:
        declaring.jobs.create(
            {
                "name": "broken",
                "components": [{"name": "x", "component_type": "no_such_type"}],
            }
        )
    dags = exported_dags(store)
    assert set(dags) == {"chain"}
    assert "broken" in caplog.text and "no_such_type" in caplog.text


@pytest.fixture
def cli(store_url, airflow_env):
    runner = CliRunner()
    from etl_meta.cli import app

    def invoke(*args: str):
        return runner.invoke(app, [*args, "--database-url", store_url])

    return invoke


def test_export_and_status_commands(cli, store, tmp_path):
    chain_job(store)
    folder = tmp_path / "dags"

    exported = cli("airflow", "export", "--dags-folder", str(folder), "--format", "json")
    assert exported.exit_code == 0, exported.output
    report = json.loads(exported.stdout)
    assert report["dags"] == ["chain"]
    assert read_catalog(folder / CATALOG_FILE).revision == report["catalog_revision"]
    assert "dags_from_catalog_file" in (folder / DAG_FILE).read_text()

    assert cli("airflow", "status", "--dags-folder", str(folder)).exit_code == 0
    store.jobs.update("chain", {"num_of_retries": 5})
    stale = cli("airflow", "status", "--dags-folder", str(folder))
    assert stale.exit_code == 1 and "stale" in stale.output
