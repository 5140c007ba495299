"""Airflow listener: record etl-meta DAG runs and every task try in the store.

Registered by :class:`etl_meta.airflow.plugin.EtlMetaPlugin` (the ``airflow.plugins`` entry
point). Where the hooks run, and what they write:

* ``on_task_instance_running/success/failed/skipped`` — in each **task process** (Task-SDK
  ``RuntimeTaskInstance``): the execution (created if new, ``running``) and the attempt of this
  try, in one transaction. ``failed`` fires for ``up_for_retry`` tries too: each try is its own
  attempt, ``failed`` with the user's error. Tasks of etl-meta's operator, and tasks of your own
  DAGs tagged ``etl-meta`` (the DAG named after the job, tasks after components).
* the same hooks in the **API server** (a user marked a task from the UI; ORM ``TaskInstance``):
  only the attempt of the current try, forward-only, never a new execution. Marking a failed try
  successful changes nothing (the first terminal status recorded wins).
* ``on_dag_run_running/success/failed`` — in the **scheduler** (success/failed under
  ``dag.test()`` too): the execution, and at the end the last try of every task that ran, plus
  the run's error (the last failed step's).

Every write is an idempotent upsert, so replays change nothing, and no hook ever raises into
Airflow. What a hook may cost:

* DAG-run hooks (the scheduler loop waits for them) never touch the store: they build the rows
  from the objects Airflow passed and queue the write for this process's background writer
  (:mod:`etl_meta.airflow.background`); a full queue drops the write, to be reconciled.
* task hooks (a task process, or the API server) write synchronously, retrying transient errors
  for at most ``ETL_META_RECORD_WAIT_SECONDS`` (5 s), and not at all while the process's circuit
  breaker is open after a failure. What they miss, ``etl-meta airflow reconcile`` records from
  Airflow's own record.

DAGs without the ``etl-meta`` tag cost no store access at all.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pluggy
from sqlalchemy.orm import object_session
from sqlalchemy.orm.exc import UnmappedInstanceError

from etl_meta.airflow import background, recording
from etl_meta.airflow.dags import DAG_TAG
from etl_meta.airflow.handoff import safe_name
from etl_meta.airflow.operator import EtlMetaComponentOperator
from etl_meta.airflow.stores import airflow_actor, open_store
from etl_meta.config import Settings
from etl_meta.errors import NotFoundError, is_transient
from etl_meta.models import ExecutionStatus, StepStatus
from etl_meta.retry import retry_transient
from etl_meta.runtime import run_log_path
from etl_meta.store import MetadataStore

log = logging.getLogger(__name__)
hookimpl = pluggy.HookimplMarker("airflow")

#: A hook slower than this logs a warning.
SLOW_HOOK_SECONDS = 1.0
_OPERATOR_NAME = EtlMetaComponentOperator.__name__
_MARKED_FAILED = "marked failed in Airflow (no error raised)"
# Compared by name: importing the Task-SDK's task runner into the scheduler is not worth a check.
_RUNTIME_TI = "RuntimeTaskInstance"


def _record_wait_seconds() -> float:
    return Settings().record_wait_seconds


def _guarded(what: str, dag_id: Any, run_id: Any, record: Callable[[], None]) -> None:
    """Run ``record`` within the recording budget; log (never raise) any failure.

    Transient failures are retried for ``record_wait_seconds`` and open the process's circuit
    breaker, so the next hooks of this process skip the store for a while instead of waiting.
    """
    breaker = background.breaker()
    if not breaker.allows():
        log.warning(
            "etl-meta skipped recording %s of DAG %s run %s: the store failed moments ago "
            "(retrying in %.0f s); it is left to `etl-meta airflow reconcile`",
            what,
            dag_id,
            run_id,
            breaker.remaining(),
        )
        return
    started = time.monotonic()
    try:
        retry_transient(record, max_seconds=_record_wait_seconds(), max_wait=1.0)
        breaker.succeeded()
    except Exception as exc:
        if is_transient(exc):
            breaker.failed()
        log.exception(
            "etl-meta could not record %s of DAG %s run %s; the store misses it until it is "
            "reconciled",
            what,
            dag_id,
            run_id,
        )
    finally:
        elapsed = time.monotonic() - started
        if elapsed > SLOW_HOOK_SECONDS:
            log.warning("etl-meta recording %s of run %s took %.1f s", what, run_id, elapsed)


# -- task instances ----------------------------------------------------------------------------


@dataclass(frozen=True)
class _OwnDagJob:
    """The job of a task in a DAG you wrote yourself (tagged ``etl-meta``, named after the job)."""

    name: str
    revision: int | None = None
    config_versions: dict[str, int] = field(default_factory=dict)
    file_logging: bool = False


def _task_actor(ti: Any) -> str:
    return airflow_actor(ti.dag_id, ti.run_id, ti.task_id, int(getattr(ti, "try_number", 0) or 0))


def _record_try(
    ti: Any, job: Any, config_version: int | None, status: StepStatus, error: Any
) -> None:
    """In the task process: the execution and this try's attempt, in one transaction."""
    store = open_store("listener", actor=_task_actor(ti))
    try:
        dag_run = ti.get_template_context().get("dag_run")
    except Exception:  # the context is a convenience here (run start and conf), not a must
        dag_run = None
    log_path = None
    if job.file_logging:
        log_path = str(run_log_path(store.settings.home, job.name, safe_name(ti.run_id)))
    store.executions.upsert(
        recording.execution_for_task(ti, job, dag_run=dag_run, log_path=log_path),
        steps=[
            recording.task_attempt(ti, status=status, config_version=config_version, error=error)
        ],
    )


def _record_mark(ti: Any, status: StepStatus, error: Any) -> None:
    """In the API server (a user marked the task): the current try's attempt, forward-only."""
    if not status.is_terminal or int(getattr(ti, "try_number", 0) or 0) < 1:
        return
    if status is StepStatus.FAILED and error is None:
        error = _MARKED_FAILED
    store = open_store("listener", actor=_task_actor(ti))
    known = store.executions.find(recording.ORCHESTRATOR, ti.run_id, with_steps=True)
    if known is None:
        return  # a run the store does not know: a mark never creates one
    for step in known.steps or []:
        same_try = (step.component_name, step.attempt) == (ti.task_id, int(ti.try_number))
        if same_try and step.status.is_terminal:
            return  # the try's outcome is recorded: a mark does not rewrite history
    try:
        store.executions.record_attempt(
            recording.ORCHESTRATOR,
            ti.run_id,
            recording.task_attempt(ti, status=status, error=error),
        )
    except NotFoundError:
        log.debug("etl-meta: task %s of run %s unknown to the store", ti.task_id, ti.run_id)


def _dag_tags(task: Any) -> set[str]:
    tags = getattr(getattr(task, "dag", None), "tags", None)
    return {str(tag) for tag in tags} if tags else set()


def _on_task(ti: Any, status: StepStatus, error: Any = None) -> None:
    task = getattr(ti, "task", None)
    if isinstance(task, EtlMetaComponentOperator):
        version = task.component.config_version
        record = functools.partial(_record_try, ti, task.job, version, status, error)
    elif type(ti).__name__ == _RUNTIME_TI and DAG_TAG in _dag_tags(task):
        job = _OwnDagJob(ti.dag_id)
        record = functools.partial(_record_try, ti, job, None, status, error)
    elif getattr(ti, "operator", None) == _OPERATOR_NAME:
        record = functools.partial(_record_mark, ti, status, error)
    else:
        return
    what = f"{status} of task {getattr(ti, 'task_id', '?')} try {getattr(ti, 'try_number', '?')}"
    _guarded(what, getattr(ti, "dag_id", None), getattr(ti, "run_id", None), record)


@hookimpl
def on_task_instance_running(previous_state: Any, task_instance: Any) -> None:
    """A try started: the execution (if new) and a ``running`` attempt."""
    _on_task(task_instance, StepStatus.RUNNING)


@hookimpl
def on_task_instance_success(previous_state: Any, task_instance: Any) -> None:
    """A try succeeded."""
    _on_task(task_instance, StepStatus.SUCCESS)


@hookimpl
def on_task_instance_failed(previous_state: Any, task_instance: Any, error: Any) -> None:
    """A try failed (``failed`` or ``up_for_retry``): the attempt fails with the user's error."""
    _on_task(task_instance, StepStatus.FAILED, error)


@hookimpl
def on_task_instance_skipped(previous_state: Any, task_instance: Any) -> None:
    """A try skipped itself."""
    _on_task(task_instance, StepStatus.SKIPPED)


# -- DAG runs ----------------------------------------------------------------------------------


def _tags(dag_run: Any) -> set[str] | None:
    dag = getattr(dag_run, "dag", None)
    tags = getattr(dag, "tags", None) if dag is not None else None
    return {str(getattr(tag, "name", tag)) for tag in tags} if tags is not None else None


def _task_instances(dag_run: Any) -> list[Any]:
    try:
        session = object_session(dag_run)
    except UnmappedInstanceError:  # not an ORM DagRun (an API model, a test double)
        session = None
    if session is not None:
        return list(dag_run.get_task_instances(session=session))
    return list(dag_run.get_task_instances())


def _dag_run_write(dag_run: Any, status: ExecutionStatus) -> background.Write | None:
    """What to record for ``dag_run`` reaching ``status``, built without touching the store.

    Reads only the objects Airflow passed (and the run's task instances from Airflow's own
    session): the write itself happens on the background writer, off the scheduler loop.
    """
    tags = _tags(dag_run)
    if tags is not None and DAG_TAG not in tags:
        return None
    # No DAG attached to the run object: only a run the store already knows is recorded.
    known_only = tags is None
    if known_only and status is ExecutionStatus.RUNNING:
        return None
    execution = recording.execution_for_dag_run(dag_run, status)
    steps = recording.final_attempts(_task_instances(dag_run), status) if status.is_terminal else []
    return background.Write(
        what=f"DAG run {status}",
        run_id=dag_run.run_id,
        call=functools.partial(
            _write_dag_run, dag_run.dag_id, execution, steps, status, known_only=known_only
        ),
    )


def _write_dag_run(
    dag_id: str,
    execution: dict[str, Any],
    steps: list[dict[str, Any]],
    status: ExecutionStatus,
    *,
    known_only: bool,
) -> None:
    """On the background writer: the execution, the tries the task hooks missed, the error."""
    run_id = execution["external_run_id"]
    store = open_store("listener", actor=airflow_actor(dag_id, run_id))
    if known_only and store.executions.find(recording.ORCHESTRATOR, run_id) is None:
        return
    with store.transaction():
        if steps:  # only what the task hooks missed: theirs are the times the task measured
            known = store.executions.find(recording.ORCHESTRATOR, run_id, with_steps=True)
            done = {
                (s.component_name, s.attempt)
                for s in (known.steps or [] if known else [])
                if s.status.is_terminal
            }
            steps = [s for s in steps if (s["component"], s["attempt"]) not in done]
        try:
            recorded = store.executions.upsert(execution, steps=steps)
        except NotFoundError:  # a task whose component is gone from the store since the export
            if not steps:
                raise
            log.warning("etl-meta: run %s has tasks unknown to the store", run_id)
            recorded = store.executions.upsert(execution)
        if status is ExecutionStatus.FAILED and not recorded.error:
            _record_run_error(store, execution)


def _record_run_error(store: MetadataStore, execution: dict[str, Any]) -> None:
    found = store.executions.find(
        recording.ORCHESTRATOR, execution["external_run_id"], with_steps=True
    )
    error = recording.run_error(found.steps or []) if found is not None else None
    if error:
        store.executions.upsert({**execution, "error": error})


def _on_dag_run(dag_run: Any, status: ExecutionStatus) -> None:
    """Queue the run's write; never waits for the store, never raises."""
    started = time.monotonic()
    try:
        write = _dag_run_write(dag_run, status)
        if write is not None:
            background.writer().submit(write)
    except Exception:
        log.exception(
            "etl-meta could not read DAG %s run %s (%s); it is left to `etl-meta airflow "
            "reconcile`",
            getattr(dag_run, "dag_id", None),
            getattr(dag_run, "run_id", None),
            status,
        )
    finally:
        elapsed = time.monotonic() - started
        if elapsed > SLOW_HOOK_SECONDS:
            log.warning(
                "etl-meta: the %s hook of run %s took %.1f s",
                status,
                getattr(dag_run, "run_id", None),
                elapsed,
            )


@hookimpl
def on_dag_run_running(dag_run: Any, msg: str) -> None:
    """The scheduler started the run: the execution, ``running``."""
    _on_dag_run(dag_run, ExecutionStatus.RUNNING)


@hookimpl
def on_dag_run_success(dag_run: Any, msg: str) -> None:
    """The run succeeded: the execution and the last try of every task."""
    _on_dag_run(dag_run, ExecutionStatus.SUCCESS)


@hookimpl
def on_dag_run_failed(dag_run: Any, msg: str) -> None:
    """The run failed: the execution, the last try of every task, and the user's error."""
    _on_dag_run(dag_run, ExecutionStatus.FAILED)
