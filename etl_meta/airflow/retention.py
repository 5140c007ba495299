"""The ``etl_meta_retention`` maintenance DAG: the retention pass, daily, on a worker.

``etl-meta airflow export`` writes ``etl_meta_retention.py`` into the dags folder, which calls
:func:`retention_dag`. Its one task runs ``store.maintenance.apply_retention`` (the policies of
``etl-meta apply``'s ``retention:`` section, see ``docs/retention.md``) and returns the per-job
report as XCom. The DAG is tagged ``etl-meta-maintenance``: not a job, so the listener and
reconciliation leave its runs alone. It is created **paused**: unpause it in the UI or with
``airflow dags unpause etl_meta_retention`` when you mean it to delete data.

The task opens the store as **admin** (the pass deletes), at ``ETL_META_RETENTION_DATABASE_URL``
when set (a login allowed to delete, while ordinary tasks keep a writer login), else the
worker's ``ETL_META_DATABASE_URL``. A store that stays down fails the try (retried once); the
next day's run does what this one could not.
"""

from __future__ import annotations

import logging
import os
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, task

from etl_meta.access import Role
from etl_meta.airflow.maintenance import MAINTENANCE_TAG
from etl_meta.airflow.stores import task_settings
from etl_meta.retry import retry_transient
from etl_meta.store import MetadataStore

log = logging.getLogger(__name__)

RETENTION_DAG_ID = "etl_meta_retention"
#: An admin login for the retention task only (see the module docstring).
RETENTION_URL_ENV = "ETL_META_RETENTION_DATABASE_URL"


def run_retention(*, dry_run: bool = False) -> dict[str, Any]:
    """One retention pass; the per-job report (counts only) as XCom."""
    settings = task_settings()
    url = os.environ.get(RETENTION_URL_ENV) or None

    def open_admin_store() -> MetadataStore:
        return MetadataStore(
            url, settings=settings, actor=f"airflow:{RETENTION_DAG_ID}", role=Role.ADMIN
        )

    with retry_transient(open_admin_store, max_seconds=settings.store_wait_seconds) as store:
        result = store.maintenance.apply_retention(dry_run=dry_run)
    report = {
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
    log.info(
        "etl-meta retention: %d run(s) rolled up, %d run(s) deleted over %d job(s)",
        sum(line.runs_rolled_up for line in result.jobs),
        sum(line.runs_deleted for line in result.jobs),
        len(result.jobs),
    )
    return {
        "dry_run": result.dry_run,
        "archive": str(result.archive_path) if result.archive_path else None,
        "jobs": report,
    }


def retention_dag(schedule: str) -> DAG:
    """The maintenance DAG: one retention task on ``schedule`` (cron, UTC), paused at first."""
    with DAG(
        dag_id=RETENTION_DAG_ID,
        description="etl-meta: roll up, archive and delete old runs as the retention policies say",
        schedule=schedule,
        catchup=False,
        max_active_runs=1,
        is_paused_upon_creation=True,
        tags=[MAINTENANCE_TAG],
        default_args={"retries": 1, "retry_delay": timedelta(minutes=5)},
        doc_md=__doc__,
    ) as dag:
        task(task_id="apply_retention", execution_timeout=timedelta(hours=6))(run_retention)()
    return dag
