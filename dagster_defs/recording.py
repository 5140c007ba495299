"""Turn what Dagster knows about a run into the store's execution and step attempts.

Used by the run-status sensors, the reconciliation sensor and ``etl-meta dagster reconcile``:
all three call :func:`record_run`, an idempotent upsert, so any of them may see a run any number
of times in any order.
"""

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from dagster_defs import _dagster_internal as internal
from dagster_defs.jobs import TAG_CONFIG_VERSIONS, TAG_JOB, TAG_REVISION
from etl_meta.models import ExecutionStatus, RunRequestStatus, StepStatus
from etl_meta.models.execution import MAX_ERROR_CHARS
from etl_meta.retry import retry_transient
from etl_meta.store import MetadataStore
from etl_meta.validation import clean_text

TAG_RUN_REQUEST = "etl_meta/run_request_id"

RUN_STATUS = {
    dg.DagsterRunStatus.QUEUED: ExecutionStatus.QUEUED,
    dg.DagsterRunStatus.NOT_STARTED: ExecutionStatus.QUEUED,
    dg.DagsterRunStatus.STARTING: ExecutionStatus.QUEUED,
    dg.DagsterRunStatus.MANAGED: ExecutionStatus.RUNNING,
    dg.DagsterRunStatus.STARTED: ExecutionStatus.RUNNING,
    dg.DagsterRunStatus.CANCELING: ExecutionStatus.RUNNING,
    dg.DagsterRunStatus.SUCCESS: ExecutionStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE: ExecutionStatus.FAILED,
    dg.DagsterRunStatus.CANCELED: ExecutionStatus.CANCELED,
}
_FINAL_STEP_STATUS = {
    "SUCCESS": StepStatus.SUCCESS,
    "FAILURE": StepStatus.FAILED,
    "SKIPPED": StepStatus.SKIPPED,
    "IN_PROGRESS": StepStatus.RUNNING,
}
_RETRIES_EXHAUSTED = "Exceeded max_retries"


@dataclass(frozen=True)
class Observation:
    """One Dagster run as the store records it."""

    execution: dict[str, Any]
    steps: list[dict[str, Any]]
    run_request_id: int | None
    status: ExecutionStatus


def _when(timestamp: float | None) -> datetime | None:
    return datetime.fromtimestamp(timestamp, UTC) if timestamp is not None else None


def _is_dagster_wrapper(error: Any) -> bool:
    # Retries and step failures arrive wrapped ("Exceeded max_retries of 2",
    # RetryRequestedFromPolicy, DagsterExecutionStepExecutionError); the user's error is the cause.
    name = error.cls_name or ""
    return (
        error.message.startswith(_RETRIES_EXHAUSTED)
        or name.startswith("RetryRequested")
        or name.startswith("Dagster")
    )


def _error_text(error: Any) -> str | None:
    """The user's error, past Dagster's wrappers, as ``ClassName: message``."""
    if error is None:
        return None
    while error.cause is not None and _is_dagster_wrapper(error):
        error = error.cause
    message = error.message.strip()
    # Dagster formats messages as "ClassName: text" or "package.module.ClassName: text" already;
    # keep the short class name once.
    head, separator, rest = message.partition(": ")
    if separator and error.cls_name and head.rsplit(".", 1)[-1] == error.cls_name:
        text = f"{error.cls_name}: {rest}"
    else:
        text = f"{error.cls_name}: {message}" if error.cls_name else message
    # Errors may carry ANSI colours or control characters the store refuses as text; an
    # unrecordable error would make the whole run unrecordable.
    return clean_text(text, max_chars=MAX_ERROR_CHARS)


def _step_errors(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[str | None]]:
    """Per step, the error of each failed attempt in order (retries, then the final failure)."""
    errors: dict[str, list[str | None]] = {}
    kinds = {dg.DagsterEventType.STEP_UP_FOR_RETRY, dg.DagsterEventType.STEP_FAILURE}
    for event in internal.events(instance, run_id, kinds):
        errors.setdefault(event.step_key, []).append(_error_text(event.event_specific_data.error))
    return errors


def _run_error(instance: dg.DagsterInstance, run_id: str, steps: list[dict]) -> str | None:
    for event in internal.events(instance, run_id, {dg.DagsterEventType.RUN_FAILURE}):
        data = event.event_specific_data
        if data is not None and data.error is not None:
            return _error_text(data.error)
    failed = [s for s in steps if s["status"] == StepStatus.FAILED and s.get("error")]
    if failed:
        last = failed[-1]
        return f"step {last['component']} failed: {last['error']}"
    return None


def _attempts(
    instance: dg.DagsterInstance,
    run_id: str,
    run_status: ExecutionStatus,
    config_versions: dict[str, int],
) -> list[dict[str, Any]]:
    errors = _step_errors(instance, run_id)
    steps = []
    for stat in internal.step_stats(instance, run_id):
        markers = list(stat.attempts_list) or [None]
        final = _FINAL_STEP_STATUS.get(stat.status.value if stat.status else "IN_PROGRESS")
        if final is StepStatus.RUNNING and run_status.is_terminal:
            final = StepStatus.CANCELED  # the run ended around a step that never finished
        step_errors = errors.get(stat.step_key, [])
        for index, marker in enumerate(markers):
            last = index == len(markers) - 1
            started = marker.start_time if marker else stat.start_time
            ended = marker.end_time if marker else stat.end_time
            finished = ended is not None and (not last or final.is_terminal)
            steps.append(
                {
                    "component": stat.step_key,
                    "attempt": index + 1,
                    "status": final if last else StepStatus.FAILED,
                    "started_at": _when(started),
                    "ended_at": _when(ended) if finished else None,
                    "error": step_errors[index] if index < len(step_errors) else None,
                    "config_version": config_versions.get(stat.step_key),
                }
            )
    return steps


def _config_versions(tag: str | None) -> dict[str, int]:
    if not tag:
        return {}
    try:
        data = json.loads(tag)
    except ValueError:
        return {}
    return {str(k): int(v) for k, v in data.items() if isinstance(v, int)}


def observe_run(
    instance: dg.DagsterInstance, run_id: str, *, record: Any = None
) -> Observation | None:
    """What the store should hold for run ``run_id``; ``None`` if it is not an etl-meta job.

    ``record``: the run's ``RunRecord`` when the caller already holds it (reconciliation).
    """
    record = record if record is not None else instance.get_run_record_by_id(run_id)
    if record is None:
        return None
    run = record.dagster_run
    job = run.tags.get(TAG_JOB)
    if job is None:
        return None
    status = RUN_STATUS.get(run.status, ExecutionStatus.RUNNING)
    config_versions = _config_versions(run.tags.get(TAG_CONFIG_VERSIONS))
    steps = _attempts(instance, run_id, status, config_versions)
    execution = {
        "job": job,
        "orchestrator": "dagster",
        "external_run_id": run_id,
        "status": status,
        "started_at": _when(record.start_time),
        "ended_at": _when(record.end_time) if status.is_terminal else None,
        "run_config": dict(run.run_config or {}),
        "job_revision": int(run.tags[TAG_REVISION]) if TAG_REVISION in run.tags else None,
        "config_versions": config_versions or None,
        "parent_run_id": run.parent_run_id,
        "root_run_id": run.root_run_id,
        "error": _run_error(instance, run_id, steps) if status is ExecutionStatus.FAILED else None,
    }
    request = run.tags.get(TAG_RUN_REQUEST)
    return Observation(
        execution={k: v for k, v in execution.items() if v is not None},
        steps=steps,
        run_request_id=int(request) if request and request.isdigit() else None,
        status=status,
    )


def record_run(
    store: MetadataStore,
    instance: dg.DagsterInstance,
    run_id: str,
    *,
    max_seconds: float = 60.0,
    record: Any = None,
) -> Observation | None:
    """Upsert run ``run_id`` (and its attempts, and its run request's status) into the store."""
    observed = observe_run(instance, run_id, record=record)
    if observed is None:
        return None
    # The audit trail names the run, not the sensor or CLI that happened to observe it.
    with store.acting_as(f"dagster:{run_id}"):
        retry_transient(
            lambda: store.executions.upsert(observed.execution, steps=observed.steps),
            max_seconds=max_seconds,
        )
        if observed.run_request_id is not None:
            _track_request(store, observed, run_id, max_seconds)
    return observed


def _track_request(store: MetadataStore, observed: Observation, run_id: str, limit: float) -> None:
    request_id = observed.run_request_id
    assert request_id is not None
    retry_transient(
        lambda: store.run_requests.mark_launched(
            request_id, orchestrator="dagster", external_run_id=run_id
        ),
        max_seconds=limit,
    )
    if observed.status.is_terminal:
        final = {
            ExecutionStatus.SUCCESS: RunRequestStatus.SUCCESS,
            ExecutionStatus.FAILED: RunRequestStatus.FAILED,
            ExecutionStatus.CANCELED: RunRequestStatus.CANCELED,
        }[observed.status]
        retry_transient(
            lambda: store.run_requests.mark_finished(
                request_id, final, error=observed.execution.get("error")
            ),
            max_seconds=limit,
        )
