"""The retention pass as a Dagster job and a daily schedule of this code location.

``etl_meta_retention`` runs ``store.maintenance.apply_retention`` in one op, through a store
opened as admin (the pass deletes) with the resource's database URL. It is its own run: it
never touches another run, and a store that is down fails only this run (the op raises; the
next day's tick tries again). The schedule ``etl_meta_retention_daily`` is stopped by default:
turn it on in the UI, with ``dagster schedule start etl_meta_retention_daily``, or load the
location with ``ETL_META_RETENTION_SCHEDULE_RUNNING=1``. ``ETL_META_RETENTION_SCHEDULE`` is
its cron (UTC).

No ``from __future__ import annotations`` here: Dagster reads annotations at definition time.
"""

import os

import dagster as dg

from dagster_defs.resources import DATABASE_URL_ENV, EtlMetaResource
from etl_meta.access import Role
from etl_meta.config import Settings
from etl_meta.retry import retry_transient
from etl_meta.store import MetadataStore

RETENTION_JOB = "etl_meta_retention"
RETENTION_SCHEDULE = "etl_meta_retention_daily"
#: Who the audit trail names for the pass's batches.
RETENTION_ACTOR = "dagster:retention"


class RetentionConfig(dg.Config):
    """What one retention run does."""

    dry_run: bool = False
    batch_size: int = 500


@dg.op(
    name="apply_retention",
    description="Roll up, archive and delete old runs as the stored retention policies say.",
)
def apply_retention_op(
    context: dg.OpExecutionContext, config: RetentionConfig, etl_meta: EtlMetaResource
) -> dg.Output[None]:
    settings = etl_meta.settings
    url = etl_meta.database_url or os.environ.get(DATABASE_URL_ENV) or None

    def open_admin_store() -> MetadataStore:
        return MetadataStore(url, settings=settings, actor=RETENTION_ACTOR, role=Role.ADMIN)

    # A store that stays down raises StoreUnavailableError: this run fails, no other does.
    with retry_transient(open_admin_store, max_seconds=settings.store_wait_seconds) as store:
        result = store.maintenance.apply_retention(
            dry_run=config.dry_run, batch_size=config.batch_size
        )
    rows = {
        line.job: {
            "status": line.status,
            "runs_rolled_up": line.runs_rolled_up,
            "points_rolled_up": line.points_rolled_up,
            "runs_deleted": line.runs_deleted,
            "points_deleted": line.points_deleted,
            "batches": line.batches,
        }
        for line in result.jobs
    }
    rolled = sum(line.runs_rolled_up for line in result.jobs)
    deleted = sum(line.runs_deleted for line in result.jobs)
    context.log.info(
        f"retention{' (dry run)' if result.dry_run else ''}: {rolled} run(s) rolled up, "
        f"{deleted} run(s) deleted over {len(result.jobs)} job(s)"
    )
    return dg.Output(
        None,
        metadata={
            "runs_rolled_up": rolled,
            "runs_deleted": deleted,
            "dry_run": result.dry_run,
            "archive": str(result.archive_path) if result.archive_path else "",
            "jobs": dg.MetadataValue.json(rows),
        },
    )


@dg.job(
    name=RETENTION_JOB,
    description="etl-meta maintenance: apply the stored retention policies (docs/retention.md).",
    executor_def=dg.in_process_executor,
    tags={"etl_meta/maintenance": "retention"},
)
def retention_job() -> None:
    apply_retention_op()


def retention_schedule(settings: Settings | None = None) -> dg.ScheduleDefinition:
    """The daily schedule of :data:`retention_job`, from the settings (cron, default status)."""
    settings = settings or Settings()
    running = settings.retention_schedule_running
    return dg.ScheduleDefinition(
        name=RETENTION_SCHEDULE,
        job=retention_job,
        cron_schedule=settings.retention_schedule,
        execution_timezone="UTC",
        description="Runs etl_meta_retention daily (ETL_META_RETENTION_SCHEDULE, UTC).",
        default_status=(
            dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED
        ),
    )
