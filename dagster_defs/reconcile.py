"""Walk Dagster's run records with a cursor and record every etl-meta run in the store.

Run-status sensors miss runs: their first tick only sets a cursor, a run whose handler raised is
skipped for good, and they handle a few runs per tick. This pass fills every such gap. It reads
runs in update order after a cursor (a timestamp), so it also picks up runs whose status changed
since it last saw them; recording is idempotent, so overlap costs nothing.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from dagster_defs.jobs import TAG_JOB
from dagster_defs.recording import RUN_STATUS, Observation, observe_run, record_observed
from etl_meta.errors import EtlMetaError, StoreUnavailableError
from etl_meta.models import ExecutionStatus, Orchestrator
from etl_meta.retry import retry_transient
from etl_meta.store import MetadataStore

log = logging.getLogger(__name__)


_TERMINAL = [
    dg.DagsterRunStatus.SUCCESS,
    dg.DagsterRunStatus.FAILURE,
    dg.DagsterRunStatus.CANCELED,
]


@dataclass
class ReconcileResult:
    """What one pass did, where the next one starts, and how far behind the store is."""

    cursor: float | None
    recorded: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    remaining: int = 0
    #: Age of the oldest finished run the store has not recorded as finished yet (0: none).
    lag_seconds: float = 0.0
    #: Longest delay seen this pass between a run's end and the store learning it ended.
    max_delay_seconds: float = 0.0
    #: Of ``recorded``, runs the store already held as they are (nothing written).
    unchanged: int = 0
    #: Why the pass stopped early (``"store unavailable (timeout)"``, ``"time budget"``), if it did.
    interrupted: str | None = None


def reconcile(
    store: MetadataStore,
    instance: dg.DagsterInstance,
    *,
    cursor: float | None = None,
    limit: int = 100,
    progress: Callable[[int], None] | None = None,
    budget_seconds: float | None = None,
    write_seconds: float = 10.0,
) -> ReconcileResult:
    """Record up to ``limit`` etl-meta runs updated after ``cursor`` (a POSIX timestamp).

    Stops early, with the cursor on the last run it recorded, when ``budget_seconds`` run out
    (a sensor tick must end well inside Dagster's 60 s) or the store becomes unavailable: a run
    is never skipped because the store was down, the next pass starts with it.
    """
    started = time.monotonic()
    started_at = time.time()
    updated_after = datetime.fromtimestamp(cursor, UTC) if cursor is not None else None
    filters = dg.RunsFilter(updated_after=updated_after)
    records = instance.get_run_records(
        filters=filters, order_by="update_timestamp", ascending=True, limit=limit
    )
    result = ReconcileResult(cursor=cursor)
    try:
        current = _current_runs(store, records, write_seconds)
    except StoreUnavailableError as exc:
        result.interrupted = f"store unavailable ({exc.cause})"
        log.warning("reconcile stopped before its first run: %s", exc)
        records = []
    # Dagster is read run by run; the runs to write are written together (record_observed).
    looked: list[Any] = []  # records gone through, in cursor order
    to_write: list[tuple[Any, Observation]] = []
    for record in records:
        if budget_seconds is not None and time.monotonic() - started > budget_seconds:
            result.interrupted = "time budget"
            break
        looked.append(record)
        run_id = record.dagster_run.run_id
        if TAG_JOB in record.dagster_run.tags and run_id not in current:
            observed = observe_run(instance, run_id, record=record)
            if observed is not None:
                to_write.append((record, observed))
    written = _write_runs(store, to_write, result, write_seconds, started_at)
    # The cursor passes a run only once it is recorded: it stops before the first run the store
    # could not take (the next pass starts there; runs past it are simply looked at again).
    unwritten = {id(record) for record, _observed in to_write[written:]}
    done = next((i for i, r in enumerate(looked) if id(r) in unwritten), len(looked))
    for record in looked[:done]:
        if TAG_JOB not in record.dagster_run.tags:
            result.skipped += 1
        elif record.dagster_run.run_id in current:
            result.recorded += 1  # the store already holds this run as Dagster does
            result.unchanged += 1
        result.cursor = record.update_timestamp.timestamp()
    if progress is not None and done:
        progress(done)
    caught_up = result.interrupted is None and len(records) < limit
    if not caught_up and result.cursor is not None:
        after = datetime.fromtimestamp(result.cursor, UTC)
        result.remaining = instance.get_runs_count(dg.RunsFilter(updated_after=after))
    result.lag_seconds = 0.0 if caught_up else oldest_unrecorded_age(instance, result.cursor)
    return result


def _write_runs(
    store: MetadataStore,
    to_write: list[tuple[Any, Observation]],
    result: ReconcileResult,
    write_seconds: float,
    pass_started_at: float,
) -> int:
    """Record the observed runs, in one transaction when the store takes them all; returns how
    many of them, in order, are settled (recorded, or refused for good and listed in ``failed``).

    A run the store refuses for good (say, its job was deleted from the store) fails the whole
    transaction; the runs are then written one by one, so that run is logged and skipped rather
    than blocking every later one. A store gone away stops the pass where it stands.
    """
    if not to_write:
        return 0
    try:
        stored = record_observed(store, [o for _r, o in to_write], max_seconds=write_seconds)
    except StoreUnavailableError as exc:
        result.interrupted = f"store unavailable ({exc.cause})"
        first = to_write[0][0].dagster_run.run_id
        log.warning("reconcile stopped at Dagster run %s: %s", first, exc)
        return 0
    except EtlMetaError:
        return _write_one_by_one(store, to_write, result, write_seconds, pass_started_at)
    for (record, _observed), run in zip(to_write, stored, strict=True):
        _count_recorded(result, record, run, pass_started_at)
    return len(to_write)


def _write_one_by_one(
    store: MetadataStore,
    to_write: list[tuple[Any, Observation]],
    result: ReconcileResult,
    write_seconds: float,
    pass_started_at: float,
) -> int:
    for settled, (record, observed) in enumerate(to_write):
        run_id = record.dagster_run.run_id
        try:
            (run,) = record_observed(store, [observed], max_seconds=write_seconds)
        except StoreUnavailableError as exc:
            result.interrupted = f"store unavailable ({exc.cause})"
            log.warning("reconcile stopped at Dagster run %s: %s", run_id, exc)
            return settled
        except EtlMetaError as exc:
            log.error("could not record Dagster run %s: %s", run_id, exc)
            result.failed.append(run_id)
        else:
            _count_recorded(result, record, run, pass_started_at)
    return len(to_write)


def _count_recorded(
    result: ReconcileResult, record: Any, run: Observation, pass_started_at: float
) -> None:
    result.recorded += 1
    if run.stored_updated_at is not None:
        _note_delay(result, record, run.stored_updated_at.timestamp(), pass_started_at)


def _current_runs(store: MetadataStore, records: Any, wait_seconds: float) -> set[str]:
    """Run ids of ``records`` the store already holds as they are: finished, with Dagster's
    final status, written after Dagster's last change to the run. One query for the batch.

    Such a run needs no write: record_run writes a run's status, attempts, points and request
    in one transaction, so a stored final status means all of it was stored, and nothing of a
    finished run changes in Dagster without its update time moving. A re-walk of a store that
    has everything (``etl-meta dagster reconcile`` without ``--since``) then costs one query
    per batch; any other run — new, stale, still running, updated since — is recorded.
    """
    finished = {
        record.dagster_run.run_id: (RUN_STATUS[record.dagster_run.status], record)
        for record in records
        if TAG_JOB in record.dagster_run.tags
        and RUN_STATUS.get(record.dagster_run.status, ExecutionStatus.RUNNING).is_terminal
    }
    if not finished:
        return set()

    stored = retry_transient(
        lambda: store.executions.recorded_state(Orchestrator.DAGSTER, finished),
        max_seconds=wait_seconds,
    )
    current = set()
    for run_id, (status, updated_at) in stored.items():
        expected, record = finished[run_id]
        if status == expected and updated_at.timestamp() >= record.update_timestamp.timestamp():
            current.add(run_id)
    return current


def _note_delay(
    result: ReconcileResult, record: Any, stored_changed_at: float, pass_started_at: float
) -> None:
    """Count how late this pass recorded the end of a run, if it was this pass that did."""
    end = record.end_time
    if end is None or record.dagster_run.status not in _TERMINAL:
        return
    if stored_changed_at < pass_started_at:
        return  # the store already had it as it is (the status sensors were on time)
    delay = max(stored_changed_at - end, 0.0)
    if delay > result.max_delay_seconds:
        result.max_delay_seconds = delay


def oldest_unrecorded_age(instance: dg.DagsterInstance, cursor: float | None) -> float:
    """Age of the oldest finished run updated after ``cursor`` (so not recorded by this pass)."""
    after = datetime.fromtimestamp(cursor, UTC) if cursor is not None else None
    ended = instance.get_run_records(
        filters=dg.RunsFilter(updated_after=after, statuses=_TERMINAL),
        order_by="update_timestamp",
        ascending=True,
        limit=1,
    )
    if not ended or ended[0].end_time is None:
        return 0.0
    return max(time.time() - ended[0].end_time, 0.0)
