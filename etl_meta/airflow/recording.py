"""Turn what Airflow reports about DAG runs and task tries into the store's executions/attempts.

Pure mapping, duck-typed over Airflow's objects (the Task-SDK ``RuntimeTaskInstance`` in task
processes, the ORM ``DagRun`` / ``TaskInstance`` in the scheduler and API server), so this module
imports nothing from Airflow. The listener writes what it returns with the store's idempotent,
forward-only upserts.

==========================  ====================================================================
Airflow                     store
==========================  ====================================================================
DAG run                     execution, orchestrator ``airflow``, external id = the run id
try ``n`` of a task         attempt ``n`` of the component named by the task id
task ``up_for_retry``       that try ``failed``, with the user's error
task ``failed``             that try ``failed``, with the user's error
task skipped itself         that try ``skipped``
DAG run success / failed    execution ``success`` / ``failed`` (error: the last failed step's)
==========================  ====================================================================
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from etl_meta import validation
from etl_meta.masking import mask_value
from etl_meta.models import ExecutionStatus, StepStatus
from etl_meta.models.execution import MAX_ERROR_CHARS
from etl_meta.run_tags import orchestrator_tags

ORCHESTRATOR = "airflow"
#: Tag on every DAG of an etl-meta job; the listener and reconciliation ignore DAGs without it.
DAG_TAG = "etl-meta"
#: What a task instance's final state means for the attempt of its last try (at DAG-run end).
_FINAL_TI_STATE = {
    "success": StepStatus.SUCCESS,
    "failed": StepStatus.FAILED,
    "skipped": StepStatus.SKIPPED,
}
#: Airflow's failure wrapper for errors that must not be retried: the user's error is its cause.
_WRAPPERS = {"AirflowFailException"}


def when(value: Any) -> datetime | None:
    """An aware stdlib ``datetime`` in UTC (Airflow hands out pendulum ones); naive means UTC."""
    if value is None:
        return None
    if not isinstance(value, datetime):
        return None
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return datetime.fromtimestamp(value.timestamp(), UTC)


def clean_text(text: str) -> str:
    """``text`` without control characters or ANSI colours, cut to what the store accepts."""
    return validation.clean_text(text, max_chars=MAX_ERROR_CHARS)


def error_text(error: Any) -> str | None:
    """The user's error as ``ClassName: message``, past Airflow's ``AirflowFailException``."""
    if error is None:
        return None
    if isinstance(error, BaseException):
        while type(error).__name__ in _WRAPPERS and error.__cause__ is not None:
            error = error.__cause__
        message = str(error).strip()
        name = type(error).__name__
        return clean_text(f"{name}: {message}" if message else name)
    return clean_text(str(error)) or None


def state_value(state: Any) -> str:
    """A task or DAG-run state as its plain string value (``None`` → ``""``)."""
    if state is None:
        return ""
    return str(getattr(state, "value", state))


def task_attempt(
    ti: Any,
    *,
    status: StepStatus,
    config_version: int | None = None,
    error: Any = None,
    now: datetime | None = None,
) -> dict[str, Any]:
    """The attempt row for try ``ti.try_number`` of ``ti`` (a runtime or ORM task instance).

    A terminal attempt ends at ``ti.end_date``, or now when Airflow has not set it yet (task
    processes see the task instance before the end date is written back).
    """
    ended = None
    if status.is_terminal:
        ended = when(getattr(ti, "end_date", None)) or now or datetime.now(UTC)
    started = when(getattr(ti, "start_date", None))
    if started is not None and ended is not None and ended < started:
        ended = started
    step = {
        "component": ti.task_id,
        "attempt": int(ti.try_number),
        "status": status,
        "config_version": config_version,
        "started_at": started,
        "ended_at": ended,
        "error": error_text(error) if status is StepStatus.FAILED else None,
    }
    return {key: value for key, value in step.items() if value is not None}


def execution_for_task(
    ti: Any, job: Any, *, dag_run: Any = None, log_path: str | None = None
) -> dict[str, Any]:
    """The execution row a task try belongs to (status ``running``: forward-only, never back)."""
    conf = getattr(dag_run, "conf", None)
    execution = {
        "job": job.name,
        "orchestrator": ORCHESTRATOR,
        "external_run_id": ti.run_id,
        "status": ExecutionStatus.RUNNING,
        "started_at": when(getattr(dag_run, "start_date", None)),
        "job_revision": job.revision,
        "config_versions": job.config_versions or None,
        "run_config": dict(conf) if conf else None,
        "tags": dag_run_tags(conf, None, getattr(dag_run, "run_type", None)),
        "log_path": log_path,
    }
    return {key: value for key, value in execution.items() if value is not None}


def dag_run_tags(conf: Any, note: Any = None, run_type: Any = None) -> dict[str, str] | None:
    """A DAG run's run tags: ``conf.<key>`` for each top-level scalar of its conf (secrets
    masked by key; nested values are in ``run_config`` already), ``airflow/note`` for its note
    and ``airflow/run_type`` (``manual``, ``scheduled``, ``backfill``, ``asset_triggered``)."""
    raw: dict[str, Any] = {}
    if isinstance(conf, dict):
        masked = mask_value(conf)
        raw.update(
            (f"conf.{key}", value)
            for key, value in masked.items()
            if isinstance(key, str) and isinstance(value, str | int | float | bool)
        )
    if isinstance(note, str) and note.strip():
        raw["airflow/note"] = note
    run_type = getattr(run_type, "value", run_type)
    if isinstance(run_type, str) and run_type:
        raw["airflow/run_type"] = run_type
    return orchestrator_tags(raw) or None


def dag_run_note(dag_run: Any) -> str | None:
    """The DAG run's note, or ``None`` when it has none or it cannot be read without the
    database session it came from (a detached run object)."""
    try:
        note = getattr(dag_run, "note", None)
    except Exception:
        return None
    return note if isinstance(note, str) else None


def execution_for_dag_run(dag_run: Any, status: ExecutionStatus) -> dict[str, Any]:
    """The execution row for a DAG run reaching ``status`` (the run's ``dag_id`` is the job)."""
    conf = getattr(dag_run, "conf", None)
    execution = {
        "job": dag_run.dag_id,
        "orchestrator": ORCHESTRATOR,
        "external_run_id": dag_run.run_id,
        "status": status,
        "started_at": when(getattr(dag_run, "start_date", None)),
        "ended_at": when(getattr(dag_run, "end_date", None)) if status.is_terminal else None,
        "run_config": dict(conf) if conf else None,
        "tags": dag_run_tags(conf, dag_run_note(dag_run), getattr(dag_run, "run_type", None)),
    }
    if execution["started_at"] and execution["ended_at"]:
        execution["ended_at"] = max(execution["ended_at"], execution["started_at"])
    return {key: value for key, value in execution.items() if value is not None}


def final_attempts(task_instances: Iterable[Any], run_status: ExecutionStatus) -> list[dict]:
    """The last try of every task instance that ran, as attempts (for the end of a DAG run).

    Task processes record each try as it happens; this fills what they could not (a worker
    that lost the store, a try killed before its hooks ran). A task that never ran (try 0:
    ``upstream_failed``, never scheduled) has no attempt, as under Dagster. A try still running
    when the run ended is ``canceled``. Errors are left to the task hooks (``None`` is a no-op).
    """
    attempts = []
    for ti in task_instances:
        if int(getattr(ti, "try_number", 0) or 0) < 1:
            continue
        status = _FINAL_TI_STATE.get(state_value(ti.state))
        if status is None:
            if not run_status.is_terminal or state_value(ti.state) in {"removed"}:
                continue
            status = StepStatus.CANCELED
        attempts.append(task_attempt(ti, status=status))
    return attempts


def run_error(steps: Iterable[Any]) -> str | None:
    """``step <component> failed: <error>`` for the failed attempt that ended last."""
    failed = [s for s in steps if s.status == StepStatus.FAILED and s.error]
    if not failed:
        return None
    minimum = datetime.min.replace(tzinfo=UTC)
    last = max(failed, key=lambda s: (when(s.ended_at) or minimum, s.attempt))
    return clean_text(f"step {last.component_name} failed: {last.error}")
