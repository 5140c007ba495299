"""DAG runs under ``dag.test()`` in-process, recorded in the store by the listener plugin."""

from __future__ import annotations

import runpy
import shutil
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pytest

from etl_meta.airflow import handoff
from etl_meta.analytics import metrics_frame
from etl_meta.definitions import apply_definitions, load_definitions
from tests.airflow.support import (
    HELPER_CONFIG,
    SEEN_CONFIG,
    attempts,
    chain_job,
    dags_folder,
    exported_dags,
    run_dag,
)
from tests.components.helpers import EXAMPLES


def test_a_task_that_fails_once_is_recorded_with_two_attempts(store, airflow_env):
    chain_job(store, file_logging=True)
    dag_run = run_dag(exported_dags(store)["chain"])

    assert dag_run.state == "success"
    execution = store.executions.find("airflow", dag_run.run_id, with_steps=True)
    assert execution.log_path is not None and Path(execution.log_path).is_file()
    assert Path(execution.log_path).parent == airflow_env / "logs" / "chain"
    assert execution.status == "success" and execution.error is None
    assert execution.job_name == "chain" and execution.job_revision == 1
    assert execution.config_versions == {"a": 1, "b": 1, "c": 1}
    assert execution.started_at is not None and execution.duration_seconds > 0
    assert attempts(store, dag_run.run_id) == {
        ("a", 1): ("success", None),
        ("c", 1): ("success", None),
        ("b", 1): ("failed", "ConnectionError: simulated outage in b"),
        ("b", 2): ("success", None),
    }
    for step in execution.steps:
        assert step.started_at and step.ended_at and step.duration_seconds >= 0
        assert step.config_version == 1
    # The secret came from the store at run time; the data went through run-scoped files.
    assert SEEN_CONFIG["b"]["password"] == "pw-secret"
    run_files = handoff.run_dir("chain", dag_run.run_id, root=airflow_env / "airflow")
    assert handoff.read_output(str(run_files / "b.pickle")) == 111
    assert store.executions.resolve(dag_run.run_id).id == execution.id
    # Each secret read is audited under the task try that made it, without the value.
    reads = store.audit.list(action="decrypt", entity_key="chain.b")
    assert sorted(event.actor for event in reads) == [
        f"airflow:chain/{dag_run.run_id}/b/try-1",
        f"airflow:chain/{dag_run.run_id}/b/try-2",
    ]
    assert all(event.after == {"version": 1, "fields": ["password"]} for event in reads)
    recorded = store.audit.list(entity_type="execution", entity_id=execution.id, limit=1000)
    assert recorded and all(event.actor.startswith("airflow:chain/") for event in recorded)


def test_a_failing_dag_is_recorded_as_failed_with_the_users_error(store, airflow_env):
    chain_job(store, num_of_retries=1, b_config={"n": 1, "fail_first": 99})
    dag_run = run_dag(exported_dags(store)["chain"])

    assert dag_run.state == "failed"
    execution = store.executions.find("airflow", dag_run.run_id)
    assert execution.status == "failed"
    assert execution.error == "step b failed: ConnectionError: simulated outage in b"
    assert execution.ended_at is not None
    assert attempts(store, dag_run.run_id) == {
        ("a", 1): ("success", None),
        ("c", 1): ("success", None),
        ("b", 1): ("failed", "ConnectionError: simulated outage in b"),
        ("b", 2): ("failed", "ConnectionError: simulated outage in b"),
    }


def test_a_failure_a_retry_cannot_fix_is_not_retried(store, airflow_env):
    chain_job(store, num_of_retries=2, b_config={"final_failure": True})
    dag_run = run_dag(exported_dags(store)["chain"])

    assert dag_run.state == "failed"
    recorded = attempts(store, dag_run.run_id)
    assert recorded[("b", 1)] == ("failed", "ComponentFailed: bad wiring in b")
    assert ("b", 2) not in recorded


def test_metrics_logged_in_tasks_are_queryable_by_airflow_run_id(store, airflow_env):
    chain_job(store, b_config={"n": 100, "password": "pw-secret", "use_helpers": True})
    dag_run = run_dag(
        exported_dags(store)["chain"], run_conf={"components": {"b": {"n": 5, "password": "***"}}}
    )
    assert dag_run.state == "success"

    frame = metrics_frame(store, run=dag_run.run_id)
    values = {(r.component, r.name, r.step): r.value for r in frame.itertuples()}
    assert values[("b", "total", 0)] == 16  # a=1 + c=10 + n=5 from the run's conf
    assert values[("a", "total", 0)] == 1 and values[("c", "total", 0)] == 10
    assert values[("b", "inputs", 0)] == 2
    assert values[("b", "helper.rows", 0)] == 7 and values[("b", "helper.rows", 1)] == 8
    assert set(frame["attempt"]) == {1}
    # The task helpers saw the stored secret and the run's override.
    assert HELPER_CONFIG["b"]["password"] == "pw-secret" and HELPER_CONFIG["b"]["n"] == 5
    run_config = store.executions.find("airflow", dag_run.run_id).run_config
    assert run_config == {"components": {"b": {"n": 5, "password": "***"}}}


@pytest.fixture
def example_project(airflow_env, monkeypatch) -> Path:
    project = airflow_env / "examples"
    shutil.copytree(EXAMPLES, project, ignore=shutil.ignore_patterns("output", "__pycache__"))
    monkeypatch.setenv("ETL_META_BASE_DIR", str(project))
    return project


def test_the_example_inventory_snapshot_retries_its_flaky_step(store, example_project):
    apply_definitions(store, load_definitions(example_project / "pipeline.yaml"))
    dag_run = run_dag(exported_dags(store)["inventory_snapshot"])

    assert dag_run.state == "success"
    recorded = attempts(store, dag_run.run_id)
    assert recorded[("fetch_fx_rates", 1)][0] == "failed"
    assert recorded[("fetch_fx_rates", 1)][1].startswith("ConnectionError: simulated transient")
    assert recorded[("fetch_fx_rates", 2)] == ("success", None)
    assert {k: v[0] for k, v in recorded.items() if k[0] != "fetch_fx_rates"} == {
        ("extract_inventory", 1): "success",
        ("flag_reorders", 1): "success",
        ("save_snapshot", 1): "success",
    }
    # DataFrames travel between tasks as Parquet files; the last step wrote the real output.
    run_files = handoff.run_dir("inventory_snapshot", dag_run.run_id, root=None)
    assert (run_files / "flag_reorders.parquet").exists()
    snapshot = pd.read_parquet(example_project / "output" / "inventory_snapshot.parquet")
    assert "needs_reorder" in snapshot.columns and len(snapshot) > 0


HANDMADE_DAG = """
from datetime import timedelta

from airflow.sdk import dag, task

from etl_meta.airflow.task import component_config, log_metrics


@dag(dag_id="handmade", schedule=None, tags=["etl-meta"])
def handmade():
    @task(task_id="extract")
    def extract(**context):
        config = component_config(context)
        log_metrics(context, {"rows": config["n"]})
        return config["n"]

    @task(task_id="load", retries=1, retry_delay=timedelta(0))
    def load(rows, **context):
        if context["ti"].try_number == 1:
            raise ConnectionError("flaky load")
        log_metrics(None, {"rows": rows})

    load(extract())


handmade_dag = handmade()
"""


@pytest.fixture
def handmade_dag(airflow_env) -> Iterator[Path]:
    path = dags_folder() / "handmade_dag.py"
    path.write_text(HANDMADE_DAG)
    yield path
    path.unlink()


def test_your_own_dag_tagged_etl_meta_is_recorded_and_uses_the_task_helpers(store, handmade_dag):
    store.jobs.create(
        {
            "name": "handmade",
            "components": [
                {"name": "extract", "component_type": "test.step", "configuration": {"n": 3}},
                {"name": "load", "component_type": "test.step", "depends_on": ["extract"]},
            ],
        }
    )
    dag = runpy.run_path(str(handmade_dag))["handmade_dag"]
    dag_run = run_dag(dag)

    assert dag_run.state == "success"
    assert attempts(store, dag_run.run_id) == {
        ("extract", 1): ("success", None),
        ("load", 1): ("failed", "ConnectionError: flaky load"),
        ("load", 2): ("success", None),
    }
    frame = metrics_frame(store, run=dag_run.run_id, attempts="all")
    assert sorted(zip(frame["component"], frame["attempt"], frame["value"], strict=True)) == [
        ("extract", 1, 3.0),
        ("load", 2, 3.0),
    ]
