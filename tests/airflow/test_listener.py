"""The listener: idempotent under replays and UI marks, silent and fast when the store is down."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import sqlalchemy as sa

from etl_meta.airflow import listener
from etl_meta.models import ComponentExecution
from tests.airflow.support import (
    attempts,
    chain_job,
    drain,
    exported_dags,
    fake_task_instance,
    run_dag,
)

hookimpl = listener.hookimpl


class Recorder:
    """Captures every listener call Airflow makes, with the very objects it passed."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, dict[str, Any]]] = []

    @hookimpl
    def on_task_instance_running(self, previous_state, task_instance):
        self.calls.append(("on_task_instance_running", locals_of(previous_state, task_instance)))

    @hookimpl
    def on_task_instance_success(self, previous_state, task_instance):
        self.calls.append(("on_task_instance_success", locals_of(previous_state, task_instance)))

    @hookimpl
    def on_task_instance_failed(self, previous_state, task_instance, error):
        call = {**locals_of(previous_state, task_instance), "error": error}
        self.calls.append(("on_task_instance_failed", call))

    @hookimpl
    def on_dag_run_success(self, dag_run, msg):
        self.calls.append(("on_dag_run_success", {"dag_run": dag_run, "msg": msg}))

    @hookimpl
    def on_dag_run_failed(self, dag_run, msg):
        self.calls.append(("on_dag_run_failed", {"dag_run": dag_run, "msg": msg}))


def locals_of(previous_state, task_instance) -> dict[str, Any]:
    return {"previous_state": previous_state, "task_instance": task_instance}


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    from airflow.listeners.listener import get_listener_manager as core_manager
    from airflow.sdk.listener import get_listener_manager as task_manager

    recording = Recorder()
    managers = {id(m): m for m in (core_manager(), task_manager())}.values()
    for manager in managers:
        manager.add_listener(recording)
    yield recording
    for manager in managers:
        manager.pm.unregister(recording)


def snapshot(store, run_id: str) -> tuple[Any, ...]:
    execution = store.executions.find("airflow", run_id, with_steps=True)
    steps = sorted(
        (s.component_name, s.attempt, s.status, s.error, s.started_at, s.ended_at)
        for s in execution.steps
    )
    audit = len(store.audit.list(limit=100_000))
    data = execution.model_dump(exclude={"steps", "updated_at", "duration_seconds"})
    return data, steps, audit


def test_the_plugin_registers_the_listener_through_the_entry_point():
    from airflow.listeners.listener import get_listener_manager as core_manager
    from airflow.sdk.listener import get_listener_manager as task_manager

    for manager in (core_manager(), task_manager()):
        assert listener in manager.pm.get_plugins()


def test_replaying_every_hook_and_marking_from_the_ui_change_nothing(store, airflow_env, recorder):
    chain_job(store, num_of_retries=1, b_config={"n": 1, "fail_first": 99})
    dag_run = run_dag(exported_dags(store)["chain"])
    assert dag_run.state == "failed"
    before = snapshot(store, dag_run.run_id)
    assert {name for name, _ in recorder.calls} >= {
        "on_task_instance_running",
        "on_task_instance_success",
        "on_task_instance_failed",
        "on_dag_run_failed",
    }

    for name, kwargs in list(recorder.calls):  # Airflow delivering everything a second time
        getattr(listener, name)(**kwargs)
    drain()
    assert snapshot(store, dag_run.run_id) == before

    # A user marks the failed task successful, and a successful one failed, from the UI: the
    # API server calls the hooks with its ORM task instances and no previous state.
    task_instances = {ti.task_id: ti for ti in dag_run.get_task_instances()}
    listener.on_task_instance_success(previous_state=None, task_instance=task_instances["b"])
    listener.on_task_instance_failed(
        previous_state=None, task_instance=task_instances["a"], error=None
    )
    assert snapshot(store, dag_run.run_id) == before

    # A mark does record a try the store has no outcome for (here: its worker lost the store).
    with store.transaction() as session:
        session.execute(sa.delete(ComponentExecution).where(ComponentExecution.attempt == 2))
    listener.on_task_instance_failed(
        previous_state=None, task_instance=task_instances["b"], error=None
    )
    assert attempts(store, dag_run.run_id)[("b", 2)] == (
        "failed",
        "marked failed in Airflow (no error raised)",
    )


def test_the_dag_run_hooks_fill_in_tries_the_task_hooks_missed(store, airflow_env, recorder):
    chain_job(store, num_of_retries=0, b_config={"n": 1})
    dag_run = run_dag(exported_dags(store)["chain"])
    with store.transaction() as session:  # as if the workers had lost the store
        session.execute(sa.delete(ComponentExecution).where(ComponentExecution.attempt == 1))
    listener.on_dag_run_success(dag_run=dag_run, msg="success")
    drain()

    execution = store.executions.find("airflow", dag_run.run_id, with_steps=True)
    assert sorted((s.component_name, s.attempt, s.status) for s in execution.steps) == [
        ("a", 1, "success"),
        ("b", 1, "success"),
        ("c", 1, "success"),
    ]


def test_dags_that_are_not_etl_meta_cost_no_store_access(airflow_env, monkeypatch):
    opened: list[Any] = []
    monkeypatch.setattr(listener, "open_store", lambda *args, **kwargs: opened.append(args))
    other = SimpleNamespace(dag_id="other", run_id="r", dag=SimpleNamespace(tags={"finance"}))
    listener.on_dag_run_running(dag_run=other, msg="started")
    listener.on_dag_run_success(dag_run=other, msg="success")
    foreign = SimpleNamespace(**{**vars(fake_task_instance()), "operator": "PythonOperator"})
    listener.on_task_instance_running(previous_state=None, task_instance=foreign)
    listener.on_task_instance_failed(previous_state=None, task_instance=foreign, error="boom")
    assert opened == []
