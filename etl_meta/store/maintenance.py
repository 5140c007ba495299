"""``store.maintenance``: retention — delete old finished runs in short batches, archiving first.

``store.maintenance.gc(older_than=now - timedelta(days=90), archive_dir=Path("arch"))``; see
``docs/retention.md`` for what "older than" means and how it stays safe next to writers.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa

from etl_meta.access import Role, requires
from etl_meta.errors import ConflictError, EtlMetaError, ValidationError
from etl_meta.extras import require_extra
from etl_meta.repository import maintenance as repo
from etl_meta.repository import partitions
from etl_meta.store._base import StoreAPI, record_change
from etl_meta.store.archive import Archive, ArchiveWriteFailed
from etl_meta.types import utcnow
from etl_meta.validation import strict_bool

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from etl_meta.store.retention_pass import Progress, RetentionResult

MAX_BATCH_SIZE = 10_000


@dataclass(frozen=True)
class GcResult:
    """What a gc deleted (or, for a dry run, would delete right now)."""

    runs: int
    attempts: int
    metrics: int
    batches: int
    older_than: datetime
    dry_run: bool = False
    #: Parquet files written, three per batch (runs, attempts, metrics), in batch order.
    archive_files: tuple[Path, ...] = ()
    #: The ``gc-<timestamp>`` directory holding them (``None`` without an archive or rows).
    archive_path: Path | None = None
    #: Queued or running runs older than the horizon, which gc never deletes.
    unfinished_kept: int = 0
    #: PostgreSQL partitions of metric points dropped whole (their points are in ``metrics``).
    partitions_dropped: tuple[str, ...] = ()


class ArchiveError(EtlMetaError):
    """A batch's archive could not be written, so that batch was not deleted.

    ``result`` tells what earlier batches had already archived and deleted (committed).
    """

    def __init__(self, message: str, *, result: GcResult) -> None:
        self.result = result
        super().__init__(message)


class MaintenanceAPI(StoreAPI):
    """Housekeeping that spans entities: retention of runs, step attempts and metric points."""

    namespace = "maintenance"

    @requires(Role.ADMIN)
    def gc(
        self,
        *,
        older_than: datetime,
        batch_size: int = 500,
        dry_run: bool = False,
        archive_dir: Path | None = None,
        progress: Callable[[int], None] | None = None,
    ) -> GcResult:
        """Delete finished runs older than ``older_than`` with their attempts and metric points.

        A run is older than the horizon when ``ended_at`` (else ``started_at``, else
        ``created_at``) is before it; only success, failed and canceled runs qualify — a queued
        or running run is never deleted (``GcResult.unfinished_kept`` counts the old ones).

        Each batch of at most ``batch_size`` runs is its own short transaction: lock the
        candidates (PostgreSQL: ``FOR UPDATE SKIP LOCKED``), re-check them, write them to Parquet
        under ``archive_dir`` (fsynced) when asked, delete, add one ``gc`` audit event, commit.
        ``progress`` is called after each commit with the number of runs that batch deleted.

        ``dry_run`` only counts (no archive, no audit event); ``batches`` is then how many
        batches the deletion would take.

        Raises:
            ValidationError: a naive or future ``older_than``, or a bad ``batch_size``.
            ConflictError: called inside ``store.transaction()`` (batches must commit alone).
            ArchiveError: a batch's archive could not be written; that batch was not deleted.
            MissingExtraError: ``archive_dir`` without pyarrow (``etl-meta[analytics]``).
        """
        strict_bool(dry_run, "dry_run")
        horizon = _check_arguments(older_than, batch_size)
        if archive_dir is not None and not dry_run:
            # Before the first batch, not in it: the archive is Parquet, written with pyarrow.
            require_extra("analytics", "pyarrow", needed_by="gc's Parquet archive")
        if not dry_run and self._store.in_transaction():
            raise ConflictError(
                "gc commits batch by batch: call it outside store.transaction()",
                entity="execution",
            )
        with self._tx(readonly=True) as session:
            unfinished = repo.count_unfinished(session, older_than=horizon)
            if dry_run:
                counts = repo.count_expired(session, older_than=horizon)
                batches = math.ceil(counts.runs / batch_size)
                return GcResult(
                    *(counts.runs, counts.attempts, counts.metrics, batches, horizon),
                    dry_run=True,
                    unfinished_kept=unfinished,
                )
        dropped = partitions.PartitionWork()
        if archive_dir is None:  # an archive reads every point out first: rows, then
            dropped = self.drop_partitions(horizon, repo.expired_run_ids(horizon))
        result = self._delete_in_batches(horizon, batch_size, archive_dir, progress, unfinished)
        emptied = self.drop_partitions(horizon, None)  # the ranges the batches emptied
        partitions.ensure_ahead(self._store.engine)
        names = dropped.dropped + emptied.dropped
        if not names:
            return result
        return dataclasses.replace(
            result, metrics=result.metrics + dropped.dropped_points, partitions_dropped=names
        )

    @requires(Role.ADMIN)
    def drop_partitions(
        self, horizon: datetime, expired_runs: sa.Select[Any] | None
    ) -> partitions.PartitionWork:
        """Drop the full PostgreSQL partitions holding only ``expired_runs``' points (``None``:
        only empty ones), audited as one event; nothing on SQLite."""
        work = partitions.drop_expired(self._store.engine, expired_runs)
        if work.dropped:
            with self._tx() as session:
                record_change(
                    self._store,
                    session,
                    action="gc",
                    entity_type="metric_partition",
                    entity_key="partitions",
                    entity_id=None,
                    after={
                        "partitions": list(work.dropped),
                        "metrics": work.dropped_points,
                        "older_than": horizon.isoformat(),
                    },
                )
        return work

    @requires(Role.ADMIN)
    def apply_retention(
        self,
        *,
        dry_run: bool = False,
        now: datetime | None = None,
        batch_size: int = 500,
        progress: Progress | None = None,
    ) -> RetentionResult:
        """Apply every job's retention policy (``store.retention``); a per-job report.

        Per job, skipped whole under a legal hold: finished runs older than ``raw_days +
        rollup_days`` are archived (when the policy says so, under
        ``settings.retention_archive_dir``) and deleted; then finished runs older than
        ``raw_days`` get daily rollups and lose their raw points. Batches of ``batch_size``
        runs, one transaction and one ``retention`` audit event each; queued and running runs
        are never touched; a second pass right after does nothing. ``dry_run`` only counts.
        ``progress(job, phase, runs)`` is called after each commit.

        Raises:
            ValidationError: a naive or future ``now``, a bad ``batch_size``, or a policy that
                archives without ``retention_archive_dir``.
            ConflictError: called inside ``store.transaction()`` (batches commit alone).
            RetentionArchiveError: a batch's archive could not be written (not deleted).
        """
        from etl_meta.store.retention_pass import apply_retention

        strict_bool(dry_run, "dry_run")
        _check_arguments(utcnow(), batch_size)
        return apply_retention(
            self._store, dry_run=dry_run, now=now, batch_size=batch_size, progress=progress
        )

    def _delete_in_batches(
        self,
        horizon: datetime,
        batch_size: int,
        archive_dir: Path | None,
        progress: Callable[[int], None] | None,
        unfinished: int,
    ) -> GcResult:
        done: list[repo.DeleteCounts] = []
        files: list[Path] = []
        archive = Archive(archive_dir) if archive_dir is not None else None
        after_id = 0

        def result() -> GcResult:
            return GcResult(
                runs=sum(c.runs for c in done),
                attempts=sum(c.attempts for c in done),
                metrics=sum(c.metrics for c in done),
                batches=len(done),
                older_than=horizon,
                archive_files=tuple(files),
                archive_path=archive.path if archive and archive.created else None,
                unfinished_kept=unfinished,
            )

        while True:
            written: list[Path] = []
            try:
                with self._tx() as session:
                    locked = repo.lock_expired_batch(
                        session, older_than=horizon, after_id=after_id, limit=batch_size
                    )
                    if not locked:
                        break
                    after_id = locked[-1]
                    counts = self._batch(session, horizon, locked, archive, len(done) + 1, written)
            except BaseException as exc:
                for path in written:  # the batch rolled back: its files describe live rows
                    path.unlink(missing_ok=True)
                if archive is not None:
                    archive.remove_if_empty()
                if isinstance(exc, ArchiveWriteFailed):
                    raise ArchiveError(
                        f"could not write the archive under {archive_dir}: {exc.args[0]}; batch "
                        f"{len(done) + 1} was not deleted ({len(done)} earlier batch(es) were)",
                        result=result(),
                    ) from exc.__cause__
                raise
            if counts is None:
                continue  # every locked run changed under us; nothing to do in this range
            done.append(counts)
            files.extend(written)
            if progress is not None:
                progress(counts.runs)
        if archive is not None:
            archive.remove_if_empty()
        return result()

    def _batch(
        self,
        session: Session,
        horizon: datetime,
        locked: list[int],
        archive: Archive | None,
        number: int,
        written: list[Path],
    ) -> repo.DeleteCounts | None:
        """Re-check, archive, delete and audit one batch of locked runs, in the caller's tx."""
        ids = repo.still_expired(session, locked, older_than=horizon)
        if not ids:
            return None
        if archive is not None:
            archive.write_batch(session, number, ids, written)
        counts = repo.delete_runs(session, ids)
        record_change(
            self._store,
            session,
            action="gc",
            entity_type="execution",
            entity_key="batch",
            entity_id=None,
            after={
                "runs": counts.runs,
                "attempts": counts.attempts,
                "metrics": counts.metrics,
                "older_than": horizon.isoformat(),
                "archive": str(archive.path) if archive else None,
            },
        )
        return counts


def _check_arguments(older_than: datetime, batch_size: int) -> datetime:
    if not isinstance(older_than, datetime) or older_than.utcoffset() is None:
        raise ValidationError.single("older_than", "must be a timezone-aware datetime")
    horizon = older_than.astimezone(UTC)
    if horizon > utcnow():
        raise ValidationError.single("older_than", "must not be in the future")
    if isinstance(batch_size, bool) or not isinstance(batch_size, int):
        raise ValidationError.single("batch_size", "must be an integer")
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise ValidationError.single("batch_size", f"must be between 1 and {MAX_BATCH_SIZE}")
    return horizon
