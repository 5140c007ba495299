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
from etl_meta.airflow import reconcile_rows as rows
from etl_meta.airflow import recording, xcom
from etl_meta.airflow.reconcile_rows import UNRECORDED_ERROR
from etl_meta.airflow.recording import DAG_TAG
from etl_meta.airflow.rest import AirflowClient, run_id_of
from etl_meta.errors import EtlMetaError, NotFoundError, ValidationError, is_transient
from etl_meta.models import ExecutionStatus, StepStatus
from etl_meta.store import MetadataStore

log = logging.getLogger(__name__)

#: The store's cursor of this reconciliation.
CURSOR_NAME = "airflow.reconcile"
#: Re-read runs changed this long before the newest timestamp seen (commits still in flight).
CURSOR_OVERLAP = timedelta(seconds=10)
#: Runs written per store transaction (one commit per batch, not per run).
WRITE_BATCH = 50
#: Executions read per page when comparing, and how far before a run's queueing they are read.
KNOWN_PAGE = 500
KNOWN_MARGIN = timedelta(hours=1)


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
    cursor = rows.when(saved.get("updated_at_gte"))
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
        rows.when(run.get(name))
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
    errors = _handed_off(client, runs, set(keys), key=xcom.ERROR_KEY)
    known = _known_executions(store, runs)
    components: dict[str, set[str] | None] = {}
    writes: list[_Write] = []
    for run, key in zip(runs, keys, strict=True):
        names = _components(store, key[0], components)
        if names is None:
            # A DAG tagged etl-meta whose job the store does not have (deleted, another store).
            result.skipped.setdefault(key[0], "no such job in the store: its runs are not recorded")
            continue
        write = _plan(
            client, run, by_run.get(key, []), known.get(key[1]), names, errors.get(key, {})
        )
        if write is not None:
            writes.append(write)
    for start in range(0, len(writes), WRITE_BATCH):
        _write_batch(store, writes[start : start + WRITE_BATCH], result)
    for (dag_id, run_id), tasks in handed_off.items():
        if dag_id in components and components[dag_id] is not None:
            _guard(
                result,
                run_id,
                lambda d=dag_id, r=run_id, t=tasks: _record_handed_off(
                    store, client, d, r, t, result
                ),
            )


@dataclass(frozen=True)
class _Write:
    """What one run needs in the store: the execution and the attempts that differ."""

    dag_id: str
    run_id: str
    status: ExecutionStatus
    execution: dict[str, Any]
    steps: list[dict[str, Any]]


def _known_executions(store: MetadataStore, runs: list[dict]) -> dict[str, Any]:
    """``{run id: execution with steps}`` the store holds for these runs, read in pages.

    Reads every Airflow execution recorded since the earliest of the runs was queued (less a
    margin for clocks): one query per page instead of one per run. A run missing here is
    upserted, which is right even if the store had it after all (upserts merge).
    """
    stamps = [rows.when(r.get("queued_at")) or rows.when(r.get("run_after")) for r in runs]
    earliest = min((stamp for stamp in stamps if stamp is not None), default=None)
    since = earliest - KNOWN_MARGIN if earliest is not None else None
    wanted = {run_id_of(run) for run in runs}
    found: dict[str, Any] = {}
    before_id = None
    while True:
        page = store.executions.list(
            orchestrator=recording.ORCHESTRATOR,
            since=since,
            before_id=before_id,
            limit=KNOWN_PAGE,
            with_steps=True,
        )
        found.update({e.external_run_id: e for e in page if e.external_run_id in wanted})
        if len(page) < KNOWN_PAGE or len(found) == len(wanted):
            return found
        before_id = page[-1].id


def _plan(
    client: AirflowClient,
    run: dict[str, Any],
    task_instances: list[dict],
    known: Any,
    components: set[str],
    errors_at: dict[str, tuple[str, int]],
) -> _Write | None:
    """The write ``run`` needs, or ``None`` when the store already says what Airflow says.

    A failed try the store holds no error for gets the one its task left in XCom
    (``errors_at``: the run's tasks that left one), else a placeholder saying it was not recorded.
    """
    dag_id, run_id = str(run["dag_id"]), run_id_of(run)
    status = rows.RUN_STATES.get(str(run.get("state")))
    if status is None:
        return None
    execution = rows.execution_row(run, status, include_conf=known is None)
    steps = [
        step
        for ti in task_instances
        if str(ti["task_id"]) in components
        for step in rows.attempts_of(client, dag_id, run_id, ti, status)
    ]
    recorded = {(s.component_name, s.attempt): s for s in (known.steps or [])} if known else {}
    handed: dict[str, dict[int, str]] = {}
    for step in steps:
        stored = recorded.get(rows.step_key(step))
        if step["status"] is StepStatus.FAILED and not (stored and stored.error):
            task = step["component"]
            if task in errors_at and task not in handed:
                handed[task] = xcom.errors_of(
                    client.xcom_value(dag_id, run_id, task, xcom.ERROR_KEY, errors_at[task][1])
                )
            step["error"] = handed.get(task, {}).get(step["attempt"], UNRECORDED_ERROR)
    changed = [s for s in steps if rows.step_changes(recorded.get(rows.step_key(s)), s)]
    if known is not None and not changed and not rows.run_changes(known, execution):
        return None
    return _Write(dag_id, run_id, status, execution, changed)


def _write_batch(store: MetadataStore, batch: list[_Write], result: ReconcileResult) -> None:
    """Write ``batch`` in one transaction; if one run is refused, each run in its own."""
    try:
        with store.transaction():
            for write in batch:
                _write(store, write)
    except EtlMetaError as exc:
        if is_transient(exc):
            raise  # the store is down: stop, keep the cursor, the next pass redoes this
        for write in batch:
            _guard(result, write.run_id, lambda w=write: _write(store, w))
            if write.run_id in result.skipped:
                continue
            result.runs_written += 1
            result.attempts_written += len(write.steps)
        return
    result.runs_written += len(batch)
    result.attempts_written += sum(len(write.steps) for write in batch)


def _write(store: MetadataStore, write: _Write) -> None:
    actor = f"airflow-reconcile:{write.dag_id}/{write.run_id}"[:200]
    with store.acting_as(actor), store.transaction():
        recorded = store.executions.upsert(write.execution, steps=write.steps)
        if write.status is ExecutionStatus.FAILED and not recorded.error:
            found = store.executions.find(recording.ORCHESTRATOR, write.run_id, with_steps=True)
            error = recording.run_error(found.steps or []) if found else None
            if error:
                store.executions.upsert({**write.execution, "error": error})


def _guard(result: ReconcileResult, run_id: str, call: Any) -> None:
    """Run ``call``; a permanent store refusal skips the run (reported), a transient one stops."""
    try:
        call()
    except EtlMetaError as exc:
        if is_transient(exc):
            raise
        result.skipped[run_id] = str(exc)
        log.warning("etl-meta: Airflow run %s not reconciled: %s", run_id, exc)


def _handed_off(
    client: AirflowClient,
    runs: list[dict],
    keys: set[tuple[str, str]],
    *,
    key: str = outbox.XCOM_KEY,
) -> dict[tuple[str, str], dict[str, tuple[str, int]]]:
    """``{(dag, run): {task: (task, map index)}}`` of the runs whose tries left XCom ``key``
    (metrics by default) — one listing, no values."""
    starts = [rows.when(run.get("run_after")) for run in runs]
    known = [start for start in starts if start is not None]
    # A run without ``run_after`` (Airflow 3 always sends one) could have entries from any time:
    # list them all rather than fail comparing None with a datetime.
    earliest = min(known) if known and len(known) == len(starts) else None
    found: dict[tuple[str, str], dict[str, tuple[str, int]]] = defaultdict(dict)
    for entry in client.xcom_entries(key, run_after_gte=earliest):
        run_key = (str(entry["dag_id"]), run_id_of(entry))
        if run_key in keys:
            task = str(entry["task_id"])
            found[run_key][task] = (task, int(entry.get("map_index", -1)))
    return found


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


def _record_handed_off(
    store: MetadataStore,
    client: AirflowClient,
    dag_id: str,
    run_id: str,
    handed_off: dict[str, tuple[str, int]],
    result: ReconcileResult,
) -> None:
    """Record the points of ``run_id``'s XCom hand-offs that the store lacks."""
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
        return
    execution = store.executions.find(recording.ORCHESTRATOR, run_id)
    if execution is None:
        return
    held = {
        (p.component_name, p.name, p.step, p.attempt)
        for p in store.metrics.list(execution_id=execution.id)
    }
    missing = _unique(p for p in points if (p.component, p.name, p.step, p.attempt) not in held)
    if not missing:
        return
    with store.acting_as(f"airflow-reconcile:{dag_id}/{run_id}"[:200]):
        recorded = store.metrics.record(
            outbox.as_tuples(missing), orchestrator=recording.ORCHESTRATOR, run_id=run_id
        )
    result.points_written += recorded.inserted


def _unique(points: Iterable[outbox.PendingPoint]) -> list[outbox.PendingPoint]:
    seen: dict[tuple[str, str, int, int], outbox.PendingPoint] = {}
    for point in points:
        seen.setdefault((point.component, point.name, point.step, point.attempt), point)
    return list(seen.values())
