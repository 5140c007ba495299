"""``etl-meta airflow reconcile`` against a real ``airflow api-server``: what the listener missed
is recorded from Airflow's own record, exactly once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from etl_meta.airflow import background, reconcile, stores
from etl_meta.airflow.rest import AirflowAuthError, AirflowClient
from etl_meta.cli import app
from etl_meta.errors import StoreUnavailableError
from etl_meta.models import ComponentExecution, Execution, ExecutionStatus
from tests.airflow.api_server import PASSWORD, USERNAME
from tests.airflow.support import chain_job, drain, exported_dags, handed_off
from tests.airflow.test_outage import store_locked_for_writes

LONG_AGO = datetime(2000, 1, 1, tzinfo=UTC)


@pytest.fixture
def client(api_server) -> Any:
    with AirflowClient(api_server.url, username=USERNAME, password=PASSWORD) as opened:
        yield opened


def unique_job(store, request) -> str:
    """A job (and DAG) name no other test of the session's shared Airflow database uses."""
    name = f"recon_{request.node.name.split('[')[0][-20:]}_{request.node.callspec.id}"
    name = name.replace("-", "_")
    chain_job(store, name=name, num_of_retries=1, b_config={"n": 1, "fail_first": 1})
    return name


def airflow_tries(dag_run: Any) -> dict[tuple[str, int], tuple[datetime, datetime]]:
    """``{(task, try): (start, end)}`` as Airflow's own database holds them."""
    from airflow.models.taskinstancehistory import TaskInstanceHistory
    from airflow.utils.session import create_session

    tries = {}
    with create_session() as session:
        history = session.scalars(
            sa.select(TaskInstanceHistory).where(TaskInstanceHistory.run_id == dag_run.run_id)
        ).all()
        rows = [*history, *dag_run.get_task_instances(session=session)]
        for row in rows:
            tries[(row.task_id, row.try_number)] = (row.start_date, row.end_date)
    return {
        key: (start.astimezone(UTC), end.astimezone(UTC)) for key, (start, end) in tries.items()
    }


def snapshot(store, run_id: str) -> tuple[Any, ...]:
    execution = store.executions.find("airflow", run_id, with_steps=True)
    steps = sorted(
        (s.component_name, s.attempt, s.status, s.error, s.started_at, s.ended_at)
        for s in execution.steps
    )
    points = sorted(
        (p.component_name, p.name, p.step, p.attempt, p.value)
        for p in store.metrics.list(execution_id=execution.id)
    )
    data = execution.model_dump(exclude={"steps"})
    return data, steps, points, len(store.audit.list(limit=100_000))


def test_a_run_recorded_during_an_outage_is_completed_from_airflow_with_its_times_and_metrics(
    store, store_url, airflow_env, client, request, monkeypatch
):
    monkeypatch.setenv("ETL_META_RECORD_WAIT_SECONDS", "0.2")
    monkeypatch.setenv("ETL_META_SQLITE_BUSY_TIMEOUT_MS", "100")
    monkeypatch.setenv("ETL_META_STATEMENT_TIMEOUT_MS", "200")
    monkeypatch.setenv("ETL_META_AIRFLOW_LISTENER_SQLITE_BUSY_TIMEOUT_MS", "100")
    monkeypatch.setenv("ETL_META_AIRFLOW_LISTENER_STATEMENT_TIMEOUT_MS", "200")
    name = unique_job(store, request)
    dag = exported_dags(store)[name]
    with store_locked_for_writes(store_url):
        dag_run = dag.test()
        background.reset()  # as if the scheduler had died with the DAG-run writes queued
    stores.dispose_all()
    assert dag_run.state == "success"
    assert store.executions.find("airflow", dag_run.run_id) is None  # nothing got through
    assert set(handed_off(dag_run.run_id)) == {"a", "b", "c"}

    result = reconcile.reconcile(store, client)

    assert result.runs_written >= 1 and dag_run.run_id not in result.skipped
    execution = store.executions.find("airflow", dag_run.run_id, with_steps=True)
    assert execution.status == ExecutionStatus.SUCCESS and execution.job_name == name
    assert execution.started_at == dag_run.start_date.astimezone(UTC)
    assert execution.ended_at == dag_run.end_date.astimezone(UTC)
    expected = airflow_tries(dag_run)
    assert {(s.component_name, s.attempt): (s.started_at, s.ended_at) for s in execution.steps} == (
        expected
    )
    assert {(s.component_name, s.attempt): s.status for s in execution.steps} == {
        ("a", 1): "success",
        ("c", 1): "success",
        ("b", 1): "failed",
        ("b", 2): "success",
    }
    assert [s.error for s in execution.steps if s.status == "failed"] == [
        reconcile.UNRECORDED_ERROR
    ]
    # Try 1 of b handed its points off, but try 2 cleared that try's XCom (Airflow clears a
    # task's XCom when a try starts): only the tries that are last in XCom come back.
    points = {
        (p.component_name, p.name, p.attempt): p.value
        for p in store.metrics.list(execution_id=execution.id)
    }
    assert points == {
        ("a", "inputs", 1): 0.0,
        ("a", "total", 1): 1.0,
        ("c", "inputs", 1): 0.0,
        ("c", "total", 1): 10.0,
        ("b", "inputs", 2): 2.0,
        ("b", "total", 2): 12.0,
    }
    assert result.cursor == store.sync_cursors.get(reconcile.CURSOR_NAME)["updated_at_gte"]


def test_replaying_the_reconcile_changes_nothing_not_even_the_audit_trail(
    store, airflow_env, client, request
):
    name = unique_job(store, request)
    dag_run = exported_dags(store)[name].test()
    drain()
    reconcile.reconcile(store, client)  # Airflow's own times replace the task processes'
    before = snapshot(store, dag_run.run_id)

    for _ in range(2):
        replay = reconcile.reconcile(store, client, since=LONG_AGO)
        assert replay.runs_read >= 1 and replay.points_written == 0
        assert dag_run.run_id not in replay.skipped
    assert snapshot(store, dag_run.run_id) == before


def test_a_run_left_running_in_the_store_is_finished_with_its_missing_tries_and_error(
    store, airflow_env, client, request
):
    name = unique_job(store, request)
    store.components.update(name, "b", {"configuration": {"n": 1, "fail_first": 99}})
    dag_run = exported_dags(store)[name].test()
    drain()
    assert dag_run.state == "failed"
    with store.transaction() as session:  # as if the scheduler's and try 2's writes were lost
        execution_id = session.scalar(
            sa.select(Execution.id).where(Execution.external_run_id == dag_run.run_id)
        )
        session.execute(
            sa.update(Execution)
            .where(Execution.id == execution_id)
            .values(status="running", ended_at=None, error=None)
        )
        session.execute(
            sa.delete(ComponentExecution).where(
                ComponentExecution.execution_id == execution_id, ComponentExecution.attempt == 2
            )
        )

    reconcile.reconcile(store, client, since=LONG_AGO)

    execution = store.executions.find("airflow", dag_run.run_id, with_steps=True)
    assert execution.status == "failed"
    assert execution.ended_at == dag_run.end_date.astimezone(UTC)
    steps = {(s.component_name, s.attempt): (s.status, s.error) for s in execution.steps}
    assert steps[("b", 1)] == ("failed", "ConnectionError: simulated outage in b")
    # Try 2's error was lost with the store's write, but the try left it in XCom.
    assert steps[("b", 2)] == ("failed", "ConnectionError: simulated outage in b")
    assert execution.error == "step b failed: ConnectionError: simulated outage in b"


def test_a_failed_try_whose_error_nothing_kept_gets_a_placeholder_saying_so(
    store, airflow_env, client, request, monkeypatch
):
    from etl_meta.airflow import xcom

    name = unique_job(store, request)
    store.components.update(name, "b", {"configuration": {"n": 1, "fail_first": 99}})
    monkeypatch.setattr(xcom, "hand_off_error", lambda ti, error: None)  # as if XCom failed too
    dag_run = exported_dags(store)[name].test()
    drain()
    with store.transaction() as session:
        execution_id = session.scalar(
            sa.select(Execution.id).where(Execution.external_run_id == dag_run.run_id)
        )
        session.execute(
            sa.delete(ComponentExecution).where(
                ComponentExecution.execution_id == execution_id, ComponentExecution.attempt == 2
            )
        )

    reconcile.reconcile(store, client, since=LONG_AGO)

    execution = store.executions.find("airflow", dag_run.run_id, with_steps=True)
    steps = {(s.component_name, s.attempt): (s.status, s.error) for s in execution.steps}
    assert steps[("b", 2)] == ("failed", reconcile.UNRECORDED_ERROR)


def test_a_pass_after_the_cursor_reads_only_runs_changed_since(store, airflow_env, client, request):
    name = unique_job(store, request)
    dag = exported_dags(store)[name]
    dag.test()
    drain()
    first = reconcile.reconcile(store, client)
    cursor = store.sync_cursors.get(reconcile.CURSOR_NAME)
    assert cursor == {"updated_at_gte": first.cursor}

    # Move the cursor past every run: the next pass reads nothing and writes nothing.
    later = datetime.now(UTC) + timedelta(minutes=1)
    store.sync_cursors.set(reconcile.CURSOR_NAME, {"updated_at_gte": later.isoformat()})
    audit = len(store.audit.list(limit=100_000))
    idle = reconcile.reconcile(store, client)
    assert (idle.runs_read, idle.runs_written) == (0, 0)
    assert len(store.audit.list(limit=100_000)) == audit

    second_run = dag.test()
    drain()
    after = reconcile.reconcile(store, client, since=datetime.now(UTC) - timedelta(minutes=5))
    assert after.runs_read >= 1 and second_run.run_id not in after.skipped


class OneDagClient:
    """Airflow as the REST client reports it: finished runs of one DAG, nothing else."""

    def __init__(self, dag_id: str, runs: int = 2) -> None:
        self.dag_id = dag_id
        self.runs = runs

    def dag_ids(self, tag: str) -> set[str]:
        return {self.dag_id}

    def dag_runs(self, *, updated_at_gte: datetime | None = None) -> list[dict[str, Any]]:
        return [
            {
                "dag_id": self.dag_id,
                "dag_run_id": f"{self.dag_id}__{index}",
                "state": "success",
                "run_after": "2026-01-01T00:00:00Z",
                "start_date": "2026-01-01T00:00:00Z",
                "end_date": "2026-01-01T00:01:00Z",
                "conf": {},
            }
            for index in range(self.runs)
        ]

    def task_instances(self, runs: Any) -> list[dict[str, Any]]:
        return []

    def xcom_entries(self, key: str, *, run_after_gte: datetime | None) -> list[dict]:
        return []


class UndatedRunClient(OneDagClient):
    """A run without ``run_after``; records the lower bound each XCom listing asks for."""

    def __init__(self, dag_id: str) -> None:
        super().__init__(dag_id)
        self.listed_after: list[datetime | None] = []

    def dag_runs(self, *, updated_at_gte: datetime | None = None) -> list[dict[str, Any]]:
        runs = super().dag_runs(updated_at_gte=updated_at_gte)
        runs[0]["run_after"] = None
        return runs

    def xcom_entries(self, key: str, *, run_after_gte: datetime | None) -> list[dict]:
        self.listed_after.append(run_after_gte)
        return []


def test_a_run_without_run_after_lists_handed_off_values_without_a_lower_bound(store, airflow_env):
    chain_job(store, name="undated")
    client = UndatedRunClient("undated")

    result = reconcile.reconcile(store, client)

    assert result.runs_written == 2 and not result.skipped
    assert client.listed_after == [None, None]  # metrics, then errors


def test_dags_whose_job_the_store_lacks_are_reported_once_not_per_run(store, airflow_env):
    result = reconcile.reconcile(store, OneDagClient("ghost"))
    assert result.runs_read == 2 and result.runs_written == 0
    assert result.skipped == {"ghost": "no such job in the store: its runs are not recorded"}
    assert store.executions.list() == []


def test_the_cli_reconciles_and_names_a_refused_login_in_one_line(
    store, store_url, airflow_env, api_server, request, monkeypatch
):
    name = unique_job(store, request)
    exported_dags(store)[name].test()
    drain()
    runner = CliRunner()
    monkeypatch.setenv("ETL_META_AIRFLOW_USERNAME", USERNAME)
    monkeypatch.setenv("ETL_META_AIRFLOW_PASSWORD", PASSWORD)
    done = runner.invoke(
        app, ["airflow", "reconcile", "--url", api_server.url, "--database-url", store_url]
    )
    assert done.exit_code == 0, done.output
    assert done.output.startswith("read ") and "cursor" in done.output

    monkeypatch.setenv("ETL_META_AIRFLOW_PASSWORD", "wrong")
    refused = runner.invoke(
        app, ["airflow", "reconcile", "--url", api_server.url, "--database-url", store_url]
    )
    assert refused.exit_code == 1
    assert refused.output.strip().count("\n") == 0 and "Traceback" not in refused.output
    assert "AirflowAuthError" in refused.output and "wrong" not in refused.output


def test_a_wrong_password_is_a_typed_error(api_server):
    with (
        AirflowClient(api_server.url, username=USERNAME, password="nope") as client,
        pytest.raises(AirflowAuthError),
    ):
        client.dag_ids("etl-meta")


def test_a_run_the_store_refuses_is_reported_and_the_rest_of_its_batch_is_written(
    store, airflow_env
):
    chain_job(store, name="batch")
    chain_job(store, name="other")
    # The store already holds run batch__3 for another job: it must refuse to move it.
    store.executions.upsert(
        {
            "job": "other",
            "orchestrator": "airflow",
            "external_run_id": "batch__3",
            "status": "running",
        }
    )
    result = reconcile.reconcile(store, OneDagClient("batch", runs=5))
    assert set(result.skipped) == {"batch__3"} and "another job" in result.skipped["batch__3"]
    assert result.runs_written == 4
    recorded = {e.external_run_id for e in store.executions.list(job="batch")}
    assert recorded == {"batch__0", "batch__1", "batch__2", "batch__4"}


def test_a_store_outage_stops_the_pass_and_leaves_the_cursor_where_it_was(
    store, airflow_env, monkeypatch
):
    chain_job(store, name="down")

    def refuse(*args: Any, **kwargs: Any) -> None:
        raise StoreUnavailableError("the store is unavailable (connection refused): test")

    upsert = store.executions.upsert
    monkeypatch.setattr(store.executions, "upsert", refuse)
    with pytest.raises(StoreUnavailableError, match="connection refused"):
        reconcile.reconcile(store, OneDagClient("down"))
    assert store.sync_cursors.get(reconcile.CURSOR_NAME) is None
    monkeypatch.setattr(store.executions, "upsert", upsert)  # the store is back
    assert reconcile.reconcile(store, OneDagClient("down")).runs_written == 2
    assert store.sync_cursors.get(reconcile.CURSOR_NAME) is not None
