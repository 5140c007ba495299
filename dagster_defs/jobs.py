"""Dagster jobs built from a catalog snapshot: one per live stored job.

* one op invocation per active component (disabled ones are bridged: their dependants wait for
  their upstreams instead — see ``JobSnapshot.runnable_graph``), archived ones are absent;
* ordering and data from the dependency table (fan-in collects every upstream's output);
* ``num_of_retries`` → a ``RetryPolicy`` on every step;
* ``strategy_type`` → the in-process executor (sequential) or the multiprocess executor limited
  to ``max_concurrency`` (parallel; a code location may name another executor for parallel jobs,
  e.g. dagster-celery's: ``parallel_executor``);
* configuration → the job's default op config (masked values; the op resolves the real ones);
* tags, description and the store revision on the job.
"""

import json
import logging
from dataclasses import dataclass

import dagster as dg

from dagster_defs.ops import INPUT, JOB_METADATA_KEY, OUTPUT, job_metadata, op_for_type
from etl_meta.catalog import CatalogSnapshot, JobSnapshot
from etl_meta.components import UnknownComponentTypeError
from etl_meta.config import Settings
from etl_meta.runtime import run_log_path

log = logging.getLogger(__name__)

TAG_JOB = "etl_meta/job"
TAG_REVISION = "etl_meta/revision"
TAG_CATALOG = "etl_meta/catalog_revision"
TAG_FILE_LOGGING = "etl_meta/file_logging"
#: ``{component: configuration version}`` of the snapshot, as JSON, on every run of the job.
TAG_CONFIG_VERSIONS = "etl_meta/config_versions"


@dataclass(frozen=True)
class JobBuildError:
    """A stored job that could not become a Dagster job, and why (shown by `dagster status`)."""

    job: str
    component: str | None
    reason: str

    def __str__(self) -> str:
        where = f"{self.job}.{self.component}" if self.component else self.job
        return f"{where}: {self.reason}"


# config_schema spelled out: dg.logger's typed overloads both take it.
@dg.logger(
    config_schema=None,
    description="Writes each run's logs to ETL_META_HOME/logs/<job>/<run id>.log",
)
def etl_meta_file_logger(init_context: dg.InitLoggerContext) -> logging.Logger:
    job, run_id = init_context.job_def, init_context.run_id
    if job is None or run_id is None:  # Dagster sets both when it starts a run's loggers
        raise RuntimeError("etl_meta_file_logger logs runs: it needs a job and a run id")
    # DEBUG: Dagster logs its structured events (step starts, retries, failures) at DEBUG, and
    # the file is meant to hold the run's whole log, not only what user code says.
    path = run_log_path(Settings().home, job.name, run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    logger = logging.Logger(f"etl_meta_file.{init_context.run_id}", level=logging.DEBUG)
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(message)s"))
    logger.addHandler(handler)
    return logger


def _executor(
    job: JobSnapshot, parallel_executor: dg.ExecutorDefinition | None
) -> dg.ExecutorDefinition:
    if job.strategy_type == "parallel":
        if parallel_executor is not None:
            return parallel_executor
        return dg.multiprocess_executor.configured({"max_concurrent": job.max_concurrency or 0})
    return dg.in_process_executor


def build_job(
    job: JobSnapshot,
    catalog: CatalogSnapshot,
    *,
    parallel_executor: dg.ExecutorDefinition | None = None,
) -> dg.JobDefinition:
    """The Dagster job for ``job``; raises ``ValueError`` naming the component at fault.

    ``parallel_executor``: the executor of a parallel job instead of the multiprocess executor
    (``max_concurrency`` is then left to that executor's own configuration).
    """
    graph = job.runnable_graph()
    components = {c.name: c for c in job.active_components}
    node_defs = {}
    for component in components.values():
        try:
            node_defs[component.component_type] = op_for_type(component.component_type)
        except UnknownComponentTypeError as exc:
            raise _BuildFailure(JobBuildError(job.name, component.name, str(exc))) from None
    dependencies = {
        dg.NodeInvocation(name=node_defs[c.component_type].name, alias=name): (
            {
                INPUT: dg.MultiDependencyDefinition(
                    [dg.DependencyDefinition(upstream, OUTPUT) for upstream in graph[name]]
                )
            }
            if graph[name]
            else {}
        )
        for name, c in components.items()
    }
    loggers = {"console": dg.colored_console_logger}
    logger_config: dict = {"console": {"config": {"log_level": "INFO"}}}
    if job.file_logging:
        loggers["etl_meta_file"] = etl_meta_file_logger
        logger_config["etl_meta_file"] = {}
    tags = {
        **{key: value for key, value in job.tags.items()},
        TAG_JOB: job.name,
        TAG_REVISION: str(job.revision),
        TAG_CATALOG: catalog.revision,
        TAG_FILE_LOGGING: str(job.file_logging).lower(),
        TAG_CONFIG_VERSIONS: json.dumps(job.config_versions, sort_keys=True),
    }
    retry = dg.RetryPolicy(max_retries=job.num_of_retries) if job.num_of_retries else None
    return dg.GraphDefinition(
        name=job.name,
        description=job.description,
        node_defs=list({d.name: d for d in node_defs.values()}.values()),
        dependencies=dependencies,
    ).to_job(
        name=job.name,
        description=(job.description or f"etl-meta job {job.name}")
        + f" (store revision {job.revision}, catalog {catalog.revision})",
        config={
            "ops": {name: {"config": c.configuration} for name, c in components.items()},
            "loggers": logger_config,
        },
        tags=tags,
        metadata={
            JOB_METADATA_KEY: dg.MetadataValue.json(job_metadata(job, catalog.dataclasses)),
            "etl_meta/revision": job.revision,
            "etl_meta/catalog_revision": catalog.revision,
        },
        logger_defs=loggers,
        op_retry_policy=retry,
        executor_def=_executor(job, parallel_executor),
    )


class _BuildFailure(Exception):
    def __init__(self, error: JobBuildError) -> None:
        self.error = error
        super().__init__(str(error))


def build_jobs(
    catalog: CatalogSnapshot, *, parallel_executor: dg.ExecutorDefinition | None = None
) -> tuple[list[dg.JobDefinition], list[JobBuildError]]:
    """Every job that builds, and a clear error for each that does not (never all-or-nothing)."""
    jobs, errors = [], []
    for job in catalog.jobs:
        if not job.active_components:
            errors.append(JobBuildError(job.name, None, "has no active components"))
            continue
        try:
            jobs.append(build_job(job, catalog, parallel_executor=parallel_executor))
        except _BuildFailure as failure:
            errors.append(failure.error)
        except (dg.DagsterInvalidDefinitionError, ValueError) as exc:
            errors.append(JobBuildError(job.name, None, str(exc)))
    for error in errors:
        log.error("etl-meta job not loaded: %s", error)
    return jobs, errors
