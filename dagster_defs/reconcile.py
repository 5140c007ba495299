"""Walk Dagster's run records with a cursor and record every etl-meta run in the store.

Run-status sensors miss runs: their first tick only sets a cursor, a run whose handler raised is
skipped for good, and they handle a few runs per tick. This pass fills every such gap. It reads
runs in update order after a cursor (a timestamp), so it also picks up runs whose status changed
since it last saw them; recording is idempotent, so overlap costs nothing.
"""

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import dagster as dg

from dagster_defs.jobs import TAG_JOB
from dagster_defs.recording import record_run
from etl_meta.errors import EtlMetaError
from etl_meta.store import MetadataStore

log = logging.getLogger(__name__)


@dataclass
class ReconcileResult:
    """What one pass did, and where the next one starts."""

    cursor: float | None
    recorded: int = 0
    skipped: int = 0
    failed: list[str] = field(default_factory=list)
    remaining: int = 0

    @property
    def lag_seconds(self) -> float | None:
        """How far behind the newest change the cursor is (0 when caught up)."""
        if self.cursor is None:
            return None
        return 0.0 if not self.remaining else max(datetime.now(UTC).timestamp() - self.cursor, 0)


def reconcile(
    store: MetadataStore,
    instance: dg.DagsterInstance,
    *,
    cursor: float | None = None,
    limit: int = 100,
    progress: Callable[[int], None] | None = None,
) -> ReconcileResult:
    """Record up to ``limit`` etl-meta runs updated after ``cursor`` (a POSIX timestamp)."""
    updated_after = datetime.fromtimestamp(cursor, UTC) if cursor is not None else None
    filters = dg.RunsFilter(updated_after=updated_after)
    records = instance.get_run_records(
        filters=filters, order_by="update_timestamp", ascending=True, limit=limit
    )
    result = ReconcileResult(cursor=cursor)
    for record in records:
        run_id = record.dagster_run.run_id
        if TAG_JOB not in record.dagster_run.tags:
            result.skipped += 1
        else:
            try:
                record_run(store, instance, run_id, max_seconds=10, record=record)
                result.recorded += 1
            except EtlMetaError as exc:
                # A permanent refusal (say, the job was deleted from the store): log it with the
                # run id and move on, or one bad run would block every later one.
                log.error("could not record Dagster run %s: %s", run_id, exc)
                result.failed.append(run_id)
        result.cursor = record.update_timestamp.timestamp()
        if progress is not None:
            progress(1)
    if len(records) == limit and result.cursor is not None:
        after = datetime.fromtimestamp(result.cursor, UTC)
        result.remaining = instance.get_runs_count(dg.RunsFilter(updated_after=after))
    return result
