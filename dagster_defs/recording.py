"""Turn what Dagster knows about a run into the store's execution and step attempts.

Used by the run-status sensors, the reconciliation sensor and ``etl-meta dagster reconcile``:
all three call :func:`record_run`, an idempotent upsert, so any of them may see a run any number
of times in any order.
"""

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from dagster_defs import _dagster_internal as internal
from dagster_defs.jobs import TAG_CONFIG_VERSIONS, TAG_JOB, TAG_REVISION
from etl_meta import outbox
from etl_meta.errors import EtlMetaError, ValidationError
from etl_meta.models import ExecutionStatus, RunRequestStatus, StepStatus
from etl_meta.models.execution import MAX_ERROR_CHARS
from etl_meta.outbox import PendingPoint
from etl_meta.retry import retry_transient
from etl_meta.run_tags import orchestrator_tags
from etl_meta.store import MetadataStore
from etl_meta.validation import clean_text

log = logging.getLogger(__name__)

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
    #: Metric points the run's ops handed off on their events (etl_meta.outbox).
    points: list[PendingPoint] = field(default_factory=list)
    #: When the store's row last changed, as the upsert left it (set by record_run).
    stored_updated_at: datetime | None = None


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


_EVENT_TYPES = {
    dg.DagsterEventType.STEP_UP_FOR_RETRY,
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.RUN_FAILURE,
    dg.DagsterEventType.STEP_OUTPUT,
    dg.DagsterEventType.STEP_EXPECTATION_RESULT,
}


@dataclass
class _RunEvents:
    """What the store needs from a run's event log, read in one query."""

    step_errors: dict[str, list[str | None]]  # per step, each failed attempt's error in order
    run_error: str | None
    points: list[PendingPoint]


def _hand_off(metadata: Any) -> list[PendingPoint]:
    entry = (metadata or {}).get(outbox.DAGSTER_KEY)
    if entry is None:
        return []
    try:
        return outbox.decode(entry.value)
    except EtlMetaError as exc:  # not ours, or damaged: say so, record the rest of the run
        log.warning("ignoring a malformed etl-meta metrics hand-off: %s", exc)
        return []


def _run_events(entries: list[Any]) -> _RunEvents:
    found = _RunEvents(step_errors={}, run_error=None, points=[])
    for entry in entries:
        event = entry.dagster_event
        kind = event.event_type
        if kind not in _EVENT_TYPES:
            continue  # a step stats event (start, restart, success, skip)
        data = event.event_specific_data
        if kind in (dg.DagsterEventType.STEP_UP_FOR_RETRY, dg.DagsterEventType.STEP_FAILURE):
            found.step_errors.setdefault(event.step_key, []).append(_error_text(data.error))
        elif kind is dg.DagsterEventType.RUN_FAILURE:
            if data is not None and data.error is not None and found.run_error is None:
                found.run_error = _error_text(data.error)
        elif kind is dg.DagsterEventType.STEP_OUTPUT:
            found.points.extend(_hand_off(data.metadata))
        else:  # the hand-off of a step that failed (dagster_defs.ops)
            found.points.extend(_hand_off(internal.failure_note_metadata(data)))
    return found


def _run_error(events: _RunEvents, steps: list[dict]) -> str | None:
    if events.run_error is not None:
        return events.run_error
    failed = [s for s in steps if s["status"] == StepStatus.FAILED and s.get("error")]
    if failed:
        last = failed[-1]
        return f"step {last['component']} failed: {last['error']}"
    return None


def _attempts(
    stats: Sequence[Any],
    run_status: ExecutionStatus,
    config_versions: dict[str, int],
    errors: dict[str, list[str | None]],
) -> list[dict[str, Any]]:
    steps = []
    for stat in stats:
        markers = list(stat.attempts_list) or [None]
        # A status this code does not know (none today) is taken for one still running.
        final = _FINAL_STEP_STATUS.get(
            stat.status.value if stat.status else "IN_PROGRESS", StepStatus.RUNNING
        )
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
    # One read of the run's events gives its errors, hand-offs and per-step stats (Dagster's
    # own get_run_step_stats would read them a second time).
    entries = internal.event_entries(
        instance, run_id, _EVENT_TYPES | internal.STEP_STATS_EVENT_TYPES
    )
    events = _run_events(entries)
    stats = internal.step_stats_from(run_id, entries)
    steps = _attempts(stats, status, config_versions, events.step_errors)
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
        "error": _run_error(events, steps) if status is ExecutionStatus.FAILED else None,
        "tags": run_tags(run.tags),
    }
    request = run.tags.get(TAG_RUN_REQUEST)
    return Observation(
        execution={k: v for k, v in execution.items() if v is not None},
        steps=steps,
        run_request_id=int(request) if request and request.isdigit() else None,
        status=status,
        points=events.points,
    )


def run_tags(tags: Any) -> dict[str, str] | None:
    """A Dagster run's tags as run tags: all but etl-meta's own (``etl_meta/…``, stored as the
    run's fields) and Dagster's hidden ones (``.dagster/…``, which no tag key may start with),
    secrets masked (see :func:`etl_meta.run_tags.orchestrator_tags`)."""
    kept = {k: v for k, v in dict(tags or {}).items() if not str(k).startswith("etl_meta/")}
    return orchestrator_tags(kept) or None


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
        stored = retry_transient(lambda: _write(store, observed, run_id), max_seconds=max_seconds)
    return replace(observed, stored_updated_at=stored.updated_at)


def record_observed(
    store: MetadataStore, observed: Sequence[Observation], *, max_seconds: float = 60.0
) -> list[Observation]:
    """Write runs already observed (:func:`observe_run`) in one transaction: all or none, a
    transient failure retried whole. A reconcile pass records a page of new runs this way: one
    commit instead of one per run. Returns them with ``stored_updated_at`` set.
    """

    def write_all() -> list[Any]:
        with store.transaction():
            stored = []
            for run in observed:
                run_id = run.execution["external_run_id"]
                with store.acting_as(f"dagster:{run_id}"):
                    stored.append(_write(store, run, run_id))
            return stored

    stored = retry_transient(write_all, max_seconds=max_seconds)
    return [
        replace(run, stored_updated_at=row.updated_at)
        for run, row in zip(observed, stored, strict=True)
    ]


def _write(store: MetadataStore, observed: Observation, run_id: str) -> Any:
    """The run, its attempts, its handed-off points and its request, in one transaction.

    All of it lands or none of it: so a store that holds a run's final status holds everything
    else Dagster had for it (reconcile relies on that to skip such runs), and one commit costs
    less than four. A transient failure retries the whole, never half of it.
    """
    with store.transaction():
        stored = store.executions.upsert(observed.execution, steps=observed.steps)
        if observed.points:  # idempotent: points the ops recorded themselves are skipped
            _record_points(store, run_id, observed.points)
        if observed.run_request_id is not None:
            _track_request(store, observed, run_id)
    return stored


def _record_points(store: MetadataStore, run_id: str, points: list[PendingPoint]) -> None:
    try:
        store.metrics.record(outbox.as_tuples(points), orchestrator="dagster", run_id=run_id)
    except ValidationError as exc:
        # A component renamed or removed since the run: the run itself is recorded; these
        # points cannot be, and saying so beats blocking every later run behind them.
        log.error("metrics handed off by Dagster run %s cannot be recorded: %s", run_id, exc)


def _track_request(store: MetadataStore, observed: Observation, run_id: str) -> None:
    request_id = observed.run_request_id
    assert request_id is not None
    store.run_requests.mark_launched(request_id, orchestrator="dagster", external_run_id=run_id)
    if observed.status.is_terminal:
        final = {
            ExecutionStatus.SUCCESS: RunRequestStatus.SUCCESS,
            ExecutionStatus.FAILED: RunRequestStatus.FAILED,
            ExecutionStatus.CANCELED: RunRequestStatus.CANCELED,
        }[observed.status]
        store.run_requests.mark_finished(request_id, final, error=observed.execution.get("error"))
