"""Definitions from a snapshot of the store, taken once per code-location load.

Dagster reconstructs definitions in every run worker and step process. Building them straight
from the store would make a run fail with "unknown step" if a component was renamed after the
location loaded, and would query the store again in every process. The state-backed loader
fetches the snapshot once, stores it in the code location's metadata, and rebuilds from that copy
everywhere else (notes/dagster.md).
"""

import logging
import os

import dagster as dg

from dagster_defs._dagster_internal import StateBackedDefinitionsLoader
from dagster_defs.jobs import build_jobs
from dagster_defs.maintenance import RETENTION_JOB, retention_job, retention_schedule
from dagster_defs.resources import DATABASE_URL_ENV, EtlMetaResource
from dagster_defs.sensors import reconcile_sensor, run_request_sensor, status_sensors
from etl_meta.access import Role
from etl_meta.catalog import CatalogSnapshot, take_snapshot
from etl_meta.config import Settings
from etl_meta.store import MetadataStore

log = logging.getLogger(__name__)

DEFS_KEY = "etl_meta/catalog"


def resource() -> EtlMetaResource:
    """The store resource; the UI shows the env var's name, never its value."""
    if os.environ.get(DATABASE_URL_ENV):
        return EtlMetaResource(database_url=dg.EnvVar(DATABASE_URL_ENV))
    return EtlMetaResource()


def definitions_from_catalog(
    catalog: CatalogSnapshot, *, parallel_executor: dg.ExecutorDefinition | None = None
) -> dg.Definitions:
    """Jobs, sensors and the resource for one snapshot (also used directly by tests).

    ``parallel_executor``: the executor of jobs whose strategy is ``parallel`` (default: the
    multiprocess executor limited to the job's ``max_concurrency``).
    """
    jobs, errors = build_jobs(catalog, parallel_executor=parallel_executor)
    maintenance: list[dg.JobDefinition] = [retention_job]
    schedules = [retention_schedule()]
    if any(job.name == RETENTION_JOB for job in jobs):
        # A stored job of that name wins: the location must load; retention runs elsewhere.
        log.warning("a stored job is called %s: the retention job is left out", RETENTION_JOB)
        maintenance, schedules = [], []
    return dg.Definitions(
        jobs=[*jobs, *maintenance],
        schedules=schedules,
        sensors=[*status_sensors(), reconcile_sensor, run_request_sensor(jobs)],
        resources={"etl_meta": resource()},
        metadata={
            "etl_meta/catalog_revision": catalog.revision,
            "etl_meta/snapshot_taken_at": catalog.taken_at.isoformat(),
            "etl_meta/jobs_not_loaded": dg.MetadataValue.json([str(e) for e in errors]),
        },
    )


class EtlMetaDefinitionsLoader(StateBackedDefinitionsLoader[str]):
    """Fetches the catalog snapshot (as JSON) from the store, builds definitions from it.

    ``parallel_executor``: as for :func:`definitions_from_catalog`. A code location of your own
    passes it to run parallel jobs elsewhere, e.g. on Celery workers (docs/dagster.md).
    """

    def __init__(self, *, parallel_executor: dg.ExecutorDefinition | None = None) -> None:
        self.parallel_executor = parallel_executor

    @property
    def defs_key(self) -> str:
        return DEFS_KEY

    def fetch_state(self) -> str:
        # EnvVar fields cannot be read while definitions load; read the settings directly.
        with MetadataStore(
            settings=Settings(), actor="dagster:code-location", role=Role.READER
        ) as store:
            snapshot = take_snapshot(store)
        log.info(
            "etl-meta catalog %s: %d job(s) from %s",
            snapshot.revision,
            len(snapshot.jobs),
            store.url,
        )
        return snapshot.model_dump_json()

    def defs_from_state(self, state: str) -> dg.Definitions:
        return definitions_from_catalog(
            CatalogSnapshot.model_validate_json(state), parallel_executor=self.parallel_executor
        )
