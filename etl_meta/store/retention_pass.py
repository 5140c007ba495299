"""The retention pass: apply every job's policy — roll up, then delete, in short batches.

Per job (a job under legal hold is skipped whole):

1. **expire** — finished runs older than ``raw_days + rollup_days`` are written to Parquet when
   the policy archives (raw points, rollups, attempts, tags and the run), then deleted. This
   comes first, so that a run old enough for both steps is archived with its raw points;
2. **roll up** — finished runs older than ``raw_days`` that still have raw points get their
   daily rollups written (``metric_rollup``) and their raw points deleted.

Each batch is one short transaction with one audit event, like ``gc``'s (``docs/retention.md``).
Queued and running runs are never touched. A re-run right after finds nothing and writes nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from etl_meta.errors import ConflictError, EtlMetaError, ValidationError
from etl_meta.extras import require_extra
from etl_meta.repository import maintenance as gc_repo
from etl_meta.repository import partitions, rollups
from etl_meta.repository import retention as repo
from etl_meta.store._base import record_change
from etl_meta.store.archive import Archive, ArchiveWriteFailed
from etl_meta.store.retention import EffectivePolicy, effective
from etl_meta.types import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from etl_meta.store.core import MetadataStore

Phase = Literal["expire", "rollup"]
#: ``held``: legal hold; ``no policy``: neither an override nor a default says how long.
JobStatus = Literal["held", "no policy", "applied"]
#: ``progress(job, phase, runs in the batch just committed)``.
Progress = Callable[[str, Phase, int], None]


@dataclass(frozen=True)
class JobRetention:
    """One job's line of the report: its policy and what the pass did (or would do)."""

    job: str
    status: JobStatus
    raw_days: int | None = None
    rollup_days: int | None = None
    archive: bool = False
    hold_reason: str | None = None
    runs_rolled_up: int = 0
    points_rolled_up: int = 0
    rollups_written: int = 0
    runs_deleted: int = 0
    attempts_deleted: int = 0
    points_deleted: int = 0
    rollups_deleted: int = 0
    batches: int = 0
    #: Queued or running runs older than ``raw_days``: never touched (probably stuck).
    unfinished_kept: int = 0

    @property
    def changed(self) -> bool:
        """Whether the pass rolled up or deleted anything for this job (or would)."""
        return bool(self.runs_rolled_up or self.runs_deleted)


@dataclass(frozen=True)
class RetentionResult:
    """What a retention pass did, per job, in job name order."""

    now: datetime
    dry_run: bool
    jobs: tuple[JobRetention, ...] = ()
    #: The ``retention-<time>`` directory of this pass's Parquet files (``None`` if none).
    archive_path: Path | None = None
    archive_files: tuple[Path, ...] = field(default=())

    @property
    def changed(self) -> bool:
        """Whether any job's runs were rolled up or deleted (or would be)."""
        return any(job.changed for job in self.jobs)


class RetentionArchiveError(EtlMetaError):
    """A batch's archive could not be written, so that batch was not deleted.

    ``result`` tells what the pass had done before (committed).
    """

    def __init__(self, message: str, *, result: RetentionResult) -> None:
        self.result = result
        super().__init__(message)


def check_now(now: datetime | None) -> datetime:
    """``now`` as aware UTC (default: the current time); refuses naive or future times."""
    if now is None:
        return utcnow()
    if not isinstance(now, datetime) or now.utcoffset() is None:
        raise ValidationError.single("now", "must be a timezone-aware datetime")
    if now > utcnow():
        raise ValidationError.single("now", "must not be in the future")
    return now.astimezone(UTC)


class RetentionPass:
    """One pass over every job; :meth:`run` is ``store.maintenance.apply_retention``."""

    def __init__(
        self, store: MetadataStore, *, now: datetime, batch_size: int, progress: Progress | None
    ) -> None:
        self.store = store
        self.now = now
        self.batch_size = batch_size
        self.progress = progress
        self.archive: Archive | None = None
        self.files: list[Path] = []
        self.batch_number = 0
        self.done: list[JobRetention] = []

    def policies(self) -> list[tuple[int, EffectivePolicy]]:
        """Every job's effective policy, by job name."""
        with self.store.transaction(readonly=True) as session:
            default = repo.find_policy(session, None)
            overrides = {p.job_id: p for p, _job in repo.list_policies(session) if p.job_id}
            return [
                (job_id, effective(default, overrides.get(job_id), name))
                for job_id, name in repo.all_jobs(session)
            ]

    def result(self, *, dry_run: bool, jobs: list[JobRetention] | None = None) -> RetentionResult:
        """The report so far."""
        archived = self.archive is not None and self.archive.created
        return RetentionResult(
            now=self.now,
            dry_run=dry_run,
            jobs=tuple(self.done if jobs is None else jobs),
            archive_path=self.archive.path if archived and self.archive else None,
            archive_files=tuple(self.files),
        )

    def dry_run(self) -> RetentionResult:
        """Count, per job, what a pass would do right now; write nothing."""
        lines = []
        for job_id, policy in self.policies():
            line = _line(policy)
            if line.status == "applied":
                with self.store.transaction(readonly=True) as session:
                    line = self._count(session, job_id, line)
            lines.append(line)
        return self.result(dry_run=True, jobs=lines)

    def _count(self, session: Session, job_id: int, line: JobRetention) -> JobRetention:
        raw_horizon, expire_horizon = self._horizons(line)
        runs, attempts, points = repo.count_selected(
            session, job_id=job_id, older_than=expire_horizon, raw_only=False
        )
        raw_runs, raw_points = _raw(session, job_id, raw_horizon)
        expiring_raw_runs, expiring_raw_points = _raw(session, job_id, expire_horizon)
        return replace(
            line,
            runs_deleted=runs,
            attempts_deleted=attempts,
            points_deleted=points,
            runs_rolled_up=raw_runs - expiring_raw_runs,
            points_rolled_up=raw_points - expiring_raw_points,
            unfinished_kept=repo.count_unfinished(session, job_id=job_id, older_than=raw_horizon),
        )

    def _horizons(self, line: JobRetention) -> tuple[datetime, datetime]:
        assert line.raw_days is not None and line.rollup_days is not None
        raw_horizon = self.now - timedelta(days=line.raw_days)
        return raw_horizon, raw_horizon - timedelta(days=line.rollup_days)

    def run(self) -> RetentionResult:
        """Apply every job's policy, batch by batch (each batch commits on its own)."""
        policies = self.policies()
        if any(p.archive and not p.legal_hold and p.raw_days for _id, p in policies):
            root = self.store.settings.retention_archive_dir
            if root is None:
                raise ValidationError.single(
                    "retention_archive_dir",
                    "a retention policy archives runs: set ETL_META_RETENTION_ARCHIVE_DIR",
                )
            require_extra("analytics", "pyarrow", needed_by="the retention pass's archive")
            self.archive = Archive(root, prefix="retention")
        try:
            for job_id, policy in policies:
                line = _line(policy)
                if line.status == "applied":
                    line = self._apply(job_id, line)
                self.done.append(line)
        finally:
            if self.archive is not None:
                self.archive.remove_if_empty()
        # PostgreSQL: the ranges whose points the pass deleted are dropped (their disk given
        # back), and two empty ones kept ahead of the writers, as gc does.
        self.store.maintenance.drop_partitions(self.now, None)
        partitions.ensure_ahead(self.store.engine)
        return self.result(dry_run=False)

    def _apply(self, job_id: int, line: JobRetention) -> JobRetention:
        raw_horizon, expire_horizon = self._horizons(line)
        with self.store.transaction(readonly=True) as session:
            unfinished = repo.count_unfinished(session, job_id=job_id, older_than=raw_horizon)
        line = replace(line, unfinished_kept=unfinished)
        phases: tuple[tuple[Phase, datetime], ...] = (
            ("expire", expire_horizon),
            ("rollup", raw_horizon),
        )
        for phase, horizon in phases:
            after_id = 0
            while True:
                outcome = self._batch(job_id, line, phase, horizon, after_id)
                if outcome is None:
                    break
                after_id, line = outcome
        return line

    def _batch(
        self, job_id: int, line: JobRetention, phase: Phase, horizon: datetime, after_id: int
    ) -> tuple[int, JobRetention] | None:
        written: list[Path] = []
        raw_only = phase == "rollup"
        try:
            with self.store.transaction() as session:
                locked = repo.lock_batch(
                    session,
                    job_id=job_id,
                    older_than=horizon,
                    raw_only=raw_only,
                    after_id=after_id,
                    limit=self.batch_size,
                )
                if not locked:
                    return None
                ids = repo.still_selected(
                    session, locked, job_id=job_id, older_than=horizon, raw_only=raw_only
                )
                if not ids:
                    return locked[-1], line
                if phase == "expire":
                    line, audit = self._expire(session, ids, line, written)
                else:
                    line, audit = _roll_up(session, ids, line)
                record_change(
                    self.store,
                    session,
                    action="retention",
                    entity_type="job",
                    entity_key=line.job,
                    entity_id=job_id,
                    after={"phase": phase, **audit, "older_than": horizon.isoformat()},
                )
        except BaseException as exc:
            for path in written:  # the batch rolled back: its files describe live rows
                path.unlink(missing_ok=True)
            if isinstance(exc, ArchiveWriteFailed):
                raise RetentionArchiveError(
                    f"could not write the archive of job {line.job!r}: {exc.args[0]}; that "
                    "batch was not deleted",
                    result=self.result(dry_run=False),
                ) from exc.__cause__
            raise
        self.files.extend(written)
        if self.progress is not None:
            self.progress(line.job, phase, len(ids))
        return locked[-1], line

    def _expire(
        self, session: Session, ids: list[int], line: JobRetention, written: list[Path]
    ) -> tuple[JobRetention, dict[str, object]]:
        archive = self.archive if line.archive else None
        if archive is not None:
            self.batch_number += 1
            archive.write_batch(
                session, self.batch_number, ids, written, tables=gc_repo.RETENTION_ARCHIVE_TABLES
            )
        rollups_deleted = repo.delete_rollups(session, ids)
        counts = gc_repo.delete_runs(session, ids)
        audit: dict[str, object] = {
            "runs": counts.runs,
            "attempts": counts.attempts,
            "points": counts.metrics,
            "rollups": rollups_deleted,
            "archive": str(archive.path) if archive is not None else None,
        }
        return (
            replace(
                line,
                runs_deleted=line.runs_deleted + counts.runs,
                attempts_deleted=line.attempts_deleted + counts.attempts,
                points_deleted=line.points_deleted + counts.metrics,
                rollups_deleted=line.rollups_deleted + rollups_deleted,
                batches=line.batches + 1,
            ),
            audit,
        )


def _roll_up(
    session: Session, ids: list[int], line: JobRetention
) -> tuple[JobRetention, dict[str, object]]:
    written = rollups.roll_up_runs(session, ids)
    points = rollups.delete_raw_points(session, ids)
    audit: dict[str, object] = {"runs": len(ids), "points": points, "rollups": written}
    return (
        replace(
            line,
            runs_rolled_up=line.runs_rolled_up + len(ids),
            points_rolled_up=line.points_rolled_up + points,
            rollups_written=line.rollups_written + written,
            batches=line.batches + 1,
        ),
        audit,
    )


def _raw(session: Session, job_id: int, horizon: datetime) -> tuple[int, int]:
    runs, _attempts, points = repo.count_selected(
        session, job_id=job_id, older_than=horizon, raw_only=True
    )
    return runs, points


def _line(policy: EffectivePolicy) -> JobRetention:
    status: JobStatus = "applied"
    if policy.legal_hold:
        status = "held"
    elif policy.raw_days is None or policy.rollup_days is None:
        status = "no policy"
    return JobRetention(
        job=policy.job,
        status=status,
        raw_days=policy.raw_days,
        rollup_days=policy.rollup_days,
        archive=policy.archive,
        hold_reason=policy.hold_reason,
    )


def apply_retention(
    store: MetadataStore,
    *,
    dry_run: bool,
    now: datetime | None,
    batch_size: int,
    progress: Progress | None,
) -> RetentionResult:
    """See :meth:`etl_meta.store.maintenance.MaintenanceAPI.apply_retention`."""
    checked_now = check_now(now)
    if not dry_run and store.in_transaction():
        raise ConflictError(
            "the retention pass commits batch by batch: call it outside store.transaction()",
            entity="execution",
        )
    retention = RetentionPass(store, now=checked_now, batch_size=batch_size, progress=progress)
    return retention.dry_run() if dry_run else retention.run()
