"""``etl-meta airflow reconcile``: record what the listener missed, from Airflow's own record.

The listener records runs as they happen, but it gives up rather than hold Airflow up: a write
queued in a scheduler that restarted, a task hook skipped while the store was down, metrics a task
could only hand off to XCom. Reconciliation reads Airflow's record through its REST API v2 and
writes the difference:

1. the ids of the DAGs tagged ``etl-meta`` (``GET /api/v2/dags?tags=etl-meta``);
2. their runs changed since the cursor (``GET /api/v2/dags/~/dagRuns?updated_at_gte=…``);
3. their task instances, 50 runs per call (``POST …/taskInstances/list``), and the try history
   of tasks tried more than once (``GET …/taskInstances/{task}/tries``);
4. the metrics hand-offs (``GET …/xcomEntries?xcom_key=etl_meta_metrics``, then each value).

Each run is compared with what the store holds and written only when something is missing or
stale (a run still ``running`` that Airflow finished, a try never recorded, times from the task
process instead of Airflow's, metric points only XCom has). The store's upserts are idempotent and
metric points are keyed, so a replay changes nothing — not the records, not the audit trail.

The cursor (``sync_cursor`` ``airflow.reconcile``) is the newest server timestamp seen, less
:data:`CURSOR_OVERLAP` for transactions still in flight; it is saved only when a whole pass
succeeded, so a pass the store interrupted is simply done again.
"""

from __future__ import annotations

import logging
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from etl_meta import outbox
from etl_meta.airflow import recording
from etl_meta.airflow.dags import DAG_TAG
from etl_meta.airflow.rest import AirflowClient, run_id_of
from etl_meta.errors import EtlMetaError, NotFoundError, ValidationError
from etl_meta.models import ExecutionStatus, StepStatus
from etl_meta.store import MetadataStore
from etl_meta.store._errors import is_transient

log = logging.getLogger(__name__)

#: The store's cursor of this reconciliation.
CURSOR_NAME = "airflow.reconcile"
#: Re-read runs changed this long before the newest timestamp seen (commits still in flight).
CURSOR_OVERLAP = timedelta(seconds=10)
#: Airflow's DAG-run states as the store's run statuses.
RUN_STATES = {
    "queued": ExecutionStatus.QUEUED,
    "running": ExecutionStatus.RUNNING,
    "success": ExecutionStatus.SUCCESS,
    "failed": ExecutionStatus.FAILED,
}
_TRY_TERMINAL = {
    "success": StepStatus.SUCCESS,
    "failed": StepStatus.FAILED,
    "up_for_retry": StepStatus.FAILED,  # a history row of a try that was retried
    "skipped": StepStatus.SKIPPED,
}
_TRY_RUNNING = {"running", "deferred", "up_for_reschedule", "restarting"}
#: The error of a failed try whose task process could not record its own.
UNRECORDED_ERROR = "failed in Airflow; the error was not recorded (see the try's log in Airflow)"


@dataclass
class ReconcileResult:
    """What a pass read and wrote."""

    runs_read: int = 0
    runs_written: int = 0
    attempts_written: int = 0
    points_written: int = 0
    #: ``{run id or DAG id: why it was not recorded}`` (a job the store does not know…)
    skipped: dict[str, str] = field(default_factory=dict)
    cursor: str | None = None
    seconds: float = 0.0


def when(value: Any) -> datetime | None:
    """An aware datetime from the API's ISO text (``None`` stays ``None``)."""
    if value is None or value == "":
        return None
    parsed = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return recording.when(parsed)


def reconcile(
    store: MetadataStore, client: AirflowClient, *, since: datetime | None = None
) -> ReconcileResult:
    """One pass: every etl-meta DAG run changed since ``since`` (default: the stored cursor).

    Raises :class:`~etl_meta.errors.StoreUnavailableError` (the cursor is left where it was) or
    an :class:`~etl_meta.airflow.rest.AirflowApiError`; problems with single runs are reported in
    :attr:`ReconcileResult.skipped` instead.
    """
    started = time.monotonic()
    result = ReconcileResult()
    saved = store.sync_cursors.get(CURSOR_NAME) or {}
    cursor = when(saved.get("updated_at_gte"))
    start = since if since is not None else cursor
    dags = client.dag_ids(DAG_TAG)
    runs = [r for r in client.dag_runs(updated_at_gte=start) if r.get("dag_id") in dags]
    result.runs_read = len(runs)
    if runs:
        _reconcile_runs(store, client, runs, result)
        newest = max(_newest_timestamp(run) for run in runs) - CURSOR_OVERLAP
        if cursor is None or newest > cursor:
            cursor = newest
            store.sync_cursors.set(CURSOR_NAME, {"updated_at_gte": cursor.isoformat()})
    result.cursor = cursor.isoformat() if cursor else None
    result.seconds = time.monotonic() - started
    return result


def _newest_timestamp(run: dict[str, Any]) -> datetime:
    # DAGRunResponse has no updated_at: these are the server's own clock readings it carries,
    # and any later change to the run is stamped later than all of them.
    stamps = [
        when(run.get(name))
        for name in ("end_date", "start_date", "last_scheduling_decision", "queued_at", "run_after")
    ]
    return max(stamp for stamp in stamps if stamp is not None)


def _reconcile_runs(
    store: MetadataStore, client: AirflowClient, runs: list[dict], result: ReconcileResult
) -> None:
    keys = [(str(run["dag_id"]), run_id_of(run)) for run in runs]
    by_run: dict[tuple[str, str], list[dict]] = defaultdict(list)
    for ti in client.task_instances(keys):
        by_run[(str(ti["dag_id"]), run_id_of(ti))].append(ti)
    handed_off = _handed_off(client, runs, set(keys))
    components: dict[str, set[str] | None] = {}
    for run, key in zip(runs, keys, strict=True):
        if _components(store, key[0], components) is None:
            # A DAG tagged etl-meta whose job the store does not have (deleted, another store).
            result.skipped.setdefault(key[0], "no such job in the store: its runs are not recorded")
            continue
        try:
            _reconcile_run(
                store, client, run, by_run.get(key, []), handed_off.get(key, {}), components, result
            )
        except EtlMetaError as exc:
            if is_transient(exc):
                raise  # the store is down: stop, keep the cursor, the next pass redoes this
            result.skipped[key[1]] = str(exc)
            log.warning("etl-meta: Airflow run %s of %s not reconciled: %s", key[1], key[0], exc)


def _handed_off(
    client: AirflowClient, runs: list[dict], keys: set[tuple[str, str]]
) -> dict[tuple[str, str], dict[str, tuple[str, int]]]:
    """``{(dag, run): {task: (task, map index)}}`` of the runs whose tries left metrics in XCom."""
    earliest = min((when(run.get("run_after")) for run in runs), default=None)
    found: dict[tuple[str, str], dict[str, tuple[str, int]]] = defaultdict(dict)
    for entry in client.xcom_entries(outbox.XCOM_KEY, run_after_gte=earliest):
        key = (str(entry["dag_id"]), run_id_of(entry))
        if key in keys:
            task = str(entry["task_id"])
            found[key][task] = (task, int(entry.get("map_index", -1)))
    return found


def _reconcile_run(
    store: MetadataStore,
    client: AirflowClient,
    run: dict[str, Any],
    task_instances: list[dict],
    handed_off: dict[str, tuple[str, int]],
    components: dict[str, set[str] | None],
    result: ReconcileResult,
) -> None:
    dag_id, run_id = str(run["dag_id"]), run_id_of(run)
    status = RUN_STATES.get(str(run.get("state")))
    if status is None:
        return
    known_components = _components(store, dag_id, components) or set()
    known = store.executions.find(recording.ORCHESTRATOR, run_id, with_steps=True)
    execution = _execution(run, status, include_conf=known is None)
    steps = [
        step
        for ti in task_instances
        if str(ti["task_id"]) in known_components
        for step in _attempts(client, dag_id, run_id, ti, status)
    ]
    recorded_steps = (
        {(s.component_name, s.attempt): s for s in (known.steps or [])} if known else {}
    )
    for step in steps:
        stored = recorded_steps.get((step["component"], step["attempt"]))
        if step["status"] is StepStatus.FAILED and not (stored and stored.error):
            step["error"] = UNRECORDED_ERROR
    changed_steps = [s for s in steps if _step_changes(recorded_steps.get(_key(s)), s)]
    if known is None or changed_steps or _run_changes(known, execution):
        actor = f"airflow-reconcile:{dag_id}/{run_id}"[:200]
        with store.acting_as(actor), store.transaction():
            recorded = store.executions.upsert(execution, steps=changed_steps)
            if status is ExecutionStatus.FAILED and not recorded.error:
                found = store.executions.find(recording.ORCHESTRATOR, run_id, with_steps=True)
                error = recording.run_error(found.steps or []) if found else None
                if error:
                    store.executions.upsert({**execution, "error": error})
        result.runs_written += 1
        result.attempts_written += len(changed_steps)
    if handed_off:
        result.points_written += _record_handed_off(store, client, dag_id, run_id, handed_off)


def _key(step: dict[str, Any]) -> tuple[str, int]:
    return step["component"], step["attempt"]


def _components(
    store: MetadataStore, job: str, cache: dict[str, set[str] | None]
) -> set[str] | None:
    """The component names of ``job`` (archived ones too), or ``None`` for an unknown job."""
    if job not in cache:
        try:
            cache[job] = {c.name for c in store.components.list(job, include_archived=True)}
        except NotFoundError:
            cache[job] = None
    return cache[job]


def _execution(run: dict[str, Any], status: ExecutionStatus, *, include_conf: bool) -> dict:
    execution: dict[str, Any] = {
        "job": str(run["dag_id"]),
        "orchestrator": recording.ORCHESTRATOR,
        "external_run_id": run_id_of(run),
        "status": status,
        "started_at": when(run.get("start_date")),
        "ended_at": when(run.get("end_date")) if status.is_terminal else None,
    }
    if include_conf and run.get("conf"):
        execution["run_config"] = dict(run["conf"])
    if execution["started_at"] and execution["ended_at"]:
        execution["ended_at"] = max(execution["ended_at"], execution["started_at"])
    return {key: value for key, value in execution.items() if value is not None}


def _attempts(
    client: AirflowClient, dag_id: str, run_id: str, ti: dict[str, Any], run: ExecutionStatus
) -> list[dict[str, Any]]:
    """One attempt per try of ``ti``, with Airflow's own start and end times."""
    if int(ti.get("try_number") or 0) < 1:
        return []  # never ran (upstream_failed, still scheduled)
    tries = [ti]
    if int(ti["try_number"]) > 1:
        tries = client.tries(dag_id, run_id, str(ti["task_id"]), int(ti.get("map_index", -1)))
    return [a for a in (_attempt(t, run) for t in tries) if a is not None]


def _attempt(item: dict[str, Any], run: ExecutionStatus) -> dict[str, Any] | None:
    number = int(item.get("try_number") or 0)
    state = str(item.get("state") or "")
    status = _TRY_TERMINAL.get(state)
    started, ended = when(item.get("start_date")), when(item.get("end_date"))
    if status is None:
        if state in _TRY_RUNNING and started is not None:
            status = StepStatus.CANCELED if run.is_terminal else StepStatus.RUNNING
        elif run.is_terminal and started is not None and state not in {"removed"}:
            status = StepStatus.CANCELED  # still going when the run ended (as the listener)
        else:
            return None
    if number < 1:
        return None
    ended = (ended or started) if status.is_terminal else None
    if started is not None and ended is not None and ended < started:
        ended = started
    attempt = {
        "component": str(item["task_id"]),
        "attempt": number,
        "status": status,
        "started_at": started,
        "ended_at": ended,
    }
    return {key: value for key, value in attempt.items() if value is not None}


def _differs(stored: Any, wanted: Any) -> bool:
    if wanted is None:
        return False
    if isinstance(wanted, datetime) and isinstance(stored, datetime):
        return recording.when(stored) != recording.when(wanted)
    return stored != wanted


def _changes(stored_status: Any, wanted_status: Any, stored: Any, wanted: dict) -> bool:
    """Whether the store's forward-only merge of ``wanted`` into ``stored`` would change it."""
    if wanted_status.rank > stored_status.rank:
        return True
    stale = wanted_status != stored_status  # behind, or another terminal: may only fill gaps
    for name, value in wanted.items():
        if name in {"status", "component", "attempt", "job", "orchestrator", "external_run_id"}:
            continue
        current = getattr(stored, name, None)
        if stale and current is not None:
            continue
        if _differs(current, value):
            return True
    return False


def _run_changes(known: Any, execution: dict[str, Any]) -> bool:
    return _changes(known.status, execution["status"], known, execution)


def _step_changes(stored: Any, step: dict[str, Any]) -> bool:
    return stored is None or _changes(stored.status, step["status"], stored, step)


def _record_handed_off(
    store: MetadataStore,
    client: AirflowClient,
    dag_id: str,
    run_id: str,
    handed_off: dict[str, tuple[str, int]],
) -> int:
    """Record the points of ``run_id``'s XCom hand-offs that the store lacks; how many."""
    points: list[outbox.PendingPoint] = []
    for task, map_index in handed_off.values():
        value = client.xcom_value(dag_id, run_id, task, outbox.XCOM_KEY, map_index)
        if value is None:
            continue
        try:
            points += outbox.decode(value)
        except ValidationError as exc:
            log.warning(
                "etl-meta: XCom %s of %s/%s unreadable: %s", outbox.XCOM_KEY, run_id, task, exc
            )
    if not points:
        return 0
    execution = store.executions.find(recording.ORCHESTRATOR, run_id)
    if execution is None:
        return 0
    held = {
        (p.component_name, p.name, p.step, p.attempt)
        for p in store.metrics.list(execution_id=execution.id)
    }
    missing = _unique(p for p in points if (p.component, p.name, p.step, p.attempt) not in held)
    if not missing:
        return 0
    with store.acting_as(f"airflow-reconcile:{dag_id}/{run_id}"[:200]):
        recorded = store.metrics.record(
            outbox.as_tuples(missing), orchestrator=recording.ORCHESTRATOR, run_id=run_id
        )
    return recorded.inserted


def _unique(points: Iterable[outbox.PendingPoint]) -> list[outbox.PendingPoint]:
    seen: dict[tuple[str, str, int, int], outbox.PendingPoint] = {}
    for point in points:
        seen.setdefault((point.component, point.name, point.step, point.attempt), point)
    return list(seen.values())
