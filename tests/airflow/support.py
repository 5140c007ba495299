"""Test component types and helpers for in-process Airflow tests (not collected as tests).

Tasks run inside the test process under ``dag.test()``, so component types registered here are
the ones the tasks find.
"""

from __future__ import annotations

import os
import runpy
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from etl_meta import MetadataStore
from etl_meta.airflow import task as task_helpers
from etl_meta.airflow.export import DAG_FILE, export_dags
from etl_meta.components import ComponentFailed, ComponentResult, ComponentType, register

#: What each component saw: its resolved configuration and what the task helpers returned.
SEEN_CONFIG: dict[str, dict] = {}
HELPER_CONFIG: dict[str, dict] = {}


@register
class AddType(ComponentType):
    """Sums its inputs plus ``n``; fails its first ``fail_first`` tries; can fail for good."""

    name = "test.airflow_add"

    class Config(ComponentType.Config):
        n: int = 0
        password: str = ""
        fail_first: int = 0
        final_failure: bool = False
        use_helpers: bool = False

    def run(self, context, config, inputs):
        SEEN_CONFIG[context.component] = config.model_dump()
        if config.final_failure:
            raise ComponentFailed(f"bad wiring in {context.component}", retryable=False)
        if context.attempt <= config.fail_first:
            raise ConnectionError(f"simulated outage in {context.component}")
        if config.use_helpers:  # the helpers read Airflow's current task context
            HELPER_CONFIG[context.component] = task_helpers.component_config()
            task_helpers.log_metrics(None, {"helper.rows": 7})
            task_helpers.log_metrics(None, {"helper.rows": 8})
        total = config.n + sum(v for v in inputs.values() if v is not None)
        context.record_metrics({"inputs": len(inputs)})
        return ComponentResult(value=total, metrics={"total": total})


def chain_job(store: MetadataStore, name: str = "chain", **fields: Any) -> None:
    """``a`` and ``c`` feed ``b``; ``b`` fails once by default (``b_config`` replaces it)."""
    b_config = fields.pop("b_config", {"n": 100, "password": "pw-secret", "fail_first": 1})
    store.jobs.create(
        {
            "name": name,
            "num_of_retries": fields.pop("num_of_retries", 2),
            **fields,
            "components": [
                {"name": "a", "component_type": "test.airflow_add", "configuration": {"n": 1}},
                {"name": "c", "component_type": "test.airflow_add", "configuration": {"n": 10}},
                {
                    "name": "b",
                    "component_type": "test.airflow_add",
                    "configuration": b_config,
                    "depends_on": ["a", "c"],
                },
            ],
        }
    )


def dags_folder() -> Path:
    """The session's dags folder (set by ``tests/airflow/conftest.py``)."""
    return Path(os.environ["AIRFLOW__CORE__DAGS_FOLDER"])


def exported_dags(store: MetadataStore) -> dict[str, Any]:
    """Export the store into the session's dags folder and load the generated DAG file."""
    export_dags(store, dags_folder(), retry_delay_seconds=0)
    namespace = runpy.run_path(str(dags_folder() / DAG_FILE))
    from airflow.sdk import DAG

    return {name: dag for name, dag in namespace.items() if isinstance(dag, DAG)}


def drain() -> None:
    """Wait for the writes the DAG-run hooks queued (they land on a background thread)."""
    from etl_meta.airflow import background

    assert background.writer().flush(timeout=30), "the listener's queued writes did not land"


def run_dag(dag: Any, **kwargs: Any) -> Any:
    """``dag.test()`` in this process, once the DAG-run hooks' queued writes are done."""
    dag_run = dag.test(**kwargs)
    drain()
    return dag_run


def attempts(store: MetadataStore, run_id: str) -> dict[tuple[str, int], tuple[str, str | None]]:
    """``{(component, attempt): (status, error)}`` the store holds for Airflow run ``run_id``."""
    execution = store.executions.find("airflow", run_id, with_steps=True)
    assert execution is not None, f"run {run_id} not recorded"
    return {(s.component_name, s.attempt): (s.status.value, s.error) for s in execution.steps}


def handed_off(run_id: str) -> dict[str, list[Any]]:
    """``{task_id: points}`` the tries of run ``run_id`` left in XCom for reconciliation."""
    import sqlalchemy as sa
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    from etl_meta import outbox

    with create_session() as session:
        rows = session.scalars(
            sa.select(XComModel).where(XComModel.run_id == run_id, XComModel.key == outbox.XCOM_KEY)
        ).all()
        return {row.task_id: outbox.decode(XComModel.deserialize_value(row)) for row in rows}


def reset_airflow_db() -> None:
    """Create Airflow's metadata database afresh (benchmarks; the tests' conftest does it too)."""
    from airflow.utils import db

    db.resetdb()


def copy_runs(template_run_id: str, count: int) -> None:
    """``count`` copies of one finished run (and its task instances) in Airflow's database.

    Copy ``n`` happened ``n + 1`` minutes before the template, as a day of real runs would.
    """
    import uuid
    from datetime import datetime, timedelta

    import sqlalchemy as sa
    from airflow.models.dagrun import DagRun
    from airflow.models.taskinstance import TaskInstance

    def earlier(row: Any, minutes: int, **fields: Any) -> dict[str, Any]:
        moved = {
            key: value - timedelta(minutes=minutes) if isinstance(value, datetime) else value
            for key, value in row.items()
        }
        return {**moved, **fields}

    # Airflow's own table objects, so its column types (UUIDs, JSON) bind the copies.
    dag_run, task_instance = DagRun.__table__, TaskInstance.__table__
    engine = sa.create_engine(os.environ["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"])
    with engine.begin() as connection:
        run = (
            connection.execute(sa.select(dag_run).where(dag_run.c.run_id == template_run_id))
            .mappings()
            .one()
        )
        tis = (
            connection.execute(
                sa.select(task_instance).where(task_instance.c.run_id == template_run_id)
            )
            .mappings()
            .all()
        )
        runs, instances = [], []
        for index in range(count):
            run_id = f"bench__{index:06d}"
            fields = {k: v for k, v in run.items() if k != "id"}
            runs.append(earlier(fields, index + 1, run_id=run_id, logical_date=None))
            instances += [earlier(ti, index + 1, id=uuid.uuid4(), run_id=run_id) for ti in tis]
        connection.execute(dag_run.insert(), runs)
        connection.execute(task_instance.insert(), instances)
    engine.dispose()


def fake_task_instance(run_id: str = "manual__broken") -> SimpleNamespace:
    """What the API server passes for a DAG that is not ours, or one of ours when marked."""
    return SimpleNamespace(
        dag_id="chain",
        run_id=run_id,
        task_id="b",
        try_number=1,
        state="success",
        operator="EtlMetaComponentOperator",
        start_date=datetime(2026, 1, 1, tzinfo=UTC),
        end_date=datetime(2026, 1, 1, 0, 1, tzinfo=UTC),
        task=None,
    )
