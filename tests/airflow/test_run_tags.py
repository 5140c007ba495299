"""Airflow DAG runs carry their conf, note and run type into the store as run tags."""

from __future__ import annotations

from etl_meta.airflow import listener
from etl_meta.airflow.reconcile_rows import execution_row
from etl_meta.masking import MASK
from etl_meta.models import ExecutionStatus
from tests.airflow.support import chain_job, drain, exported_dags, run_dag

CONF = {
    "experiment": "B",
    "sample": 0.25,
    "api_token": "hunter2",
    "components": {"b": {"n": 2}},  # etl-meta's overrides: in run_config, not a tag
}


def test_a_dag_runs_conf_and_run_type_become_tags_and_a_later_note_is_added(store, airflow_env):
    from airflow.models.dagrun import DagRun
    from airflow.utils.session import create_session

    chain_job(store, num_of_retries=1, b_config={"n": 1})
    dag_run = run_dag(exported_dags(store)["chain"], run_conf=CONF)
    execution = store.executions.find("airflow", dag_run.run_id)
    assert execution.tags == {
        "airflow/run_type": "manual",
        "conf.api_token": MASK,
        "conf.experiment": "B",
        "conf.sample": "0.25",
    }
    with create_session() as session:  # a person writes a note on the finished run in the UI
        stored = session.get(DagRun, dag_run.id)
        stored.note = "rerun after the vendor fix"
        session.flush()
        listener.on_dag_run_success(dag_run=stored, msg="success")  # the next report of it
        drain()
    assert store.executions.find("airflow", dag_run.run_id).tags["airflow/note"] == (
        "rerun after the vendor fix"
    )
    assert "hunter2" not in repr(store.audit.list(limit=1000))


def test_reconciliation_reads_the_same_tags_from_the_rest_api():
    run = {
        "dag_id": "chain",
        "dag_run_id": "manual__1",
        "state": "success",
        "conf": {"experiment": "B", "db_password": "pw", "nested": {"a": 1}},
        "note": "checked",
        "run_type": "manual",
    }
    row = execution_row(run, ExecutionStatus.SUCCESS, include_conf=False)
    assert row["tags"] == {
        "airflow/note": "checked",
        "airflow/run_type": "manual",
        "conf.db_password": MASK,
        "conf.experiment": "B",
    }
    assert "run_config" not in row
    bare = execution_row(
        {**run, "conf": None, "note": None, "run_type": None},
        ExecutionStatus.SUCCESS,
        include_conf=True,
    )
    assert "tags" not in bare
