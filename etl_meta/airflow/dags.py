"""The DAG factory: stored jobs, from an exported catalog snapshot, as Airflow DAGs.

==========================  ====================================================================
stored                      Airflow
==========================  ====================================================================
job                         a DAG of the same name (``dag_id``); description, ``doc_md``
job tags                    DAG tags ``key:value``, plus ``etl-meta`` (how the listener knows
                            its DAGs)
active component            an :class:`~etl_meta.airflow.operator.EtlMetaComponentOperator`
                            task named after the component
disabled component          left out; its dependants wait for its upstreams (order kept)
archived component          absent
``component_dependency``    task dependencies (``JobSnapshot.runnable_graph()``)
``num_of_retries``          ``retries`` of every task (``retry_delay`` from the export)
``strategy_type``           sequential: ``max_active_tasks=1``; parallel: ``max_active_tasks =
                            max_concurrency`` (unset: Airflow's default)
configuration               on each task, **masked** (``doc_md``); the task reads real values
==========================  ====================================================================

DAGs have no schedule (trigger them, or wrap the factory and set one) and ``catchup=False``.
Building never touches the store: it only reads the snapshot file.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from pathlib import Path
from typing import TypedDict

from airflow.sdk import DAG

from etl_meta.airflow.export import DEFAULT_RETRY_DELAY_SECONDS, job_problem, read_catalog
from etl_meta.airflow.operator import EtlMetaComponentOperator
from etl_meta.airflow.recording import DAG_TAG
from etl_meta.catalog import CatalogSnapshot, JobSnapshot

log = logging.getLogger(__name__)

_MAX_TAG = 100  # Airflow's limit on a tag's length


def dag_tags(job: JobSnapshot) -> list[str]:
    """``etl-meta`` and the job's tags as ``key:value`` (cut to Airflow's 100 characters)."""
    tags = [DAG_TAG]
    tags += [f"{key}:{value}"[:_MAX_TAG] for key, value in sorted(job.tags.items())]
    return list(dict.fromkeys(tags))


def _doc(job: JobSnapshot, catalog: CatalogSnapshot) -> str:
    graph = job.runnable_graph()
    rows = "\n".join(
        f"| `{c.name}` | `{c.component_type}` | {c.config_version} | "
        f"{', '.join(graph.get(c.name, ())) or '-'} |"
        for c in job.active_components
    )
    return (
        f"{job.description or ''}\n\n"
        f"etl-meta job **{job.name}**, store revision {job.revision}, catalog {catalog.revision} "
        f"(exported {catalog.taken_at:%Y-%m-%d %H:%M} UTC).\n\n"
        "| component | type | config version | after |\n|---|---|---|---|\n"
        f"{rows}\n"
    )


class _Limits(TypedDict, total=False):
    """The ``DAG`` arguments a job may set; a TypedDict so ``**limits`` is checked per key."""

    max_active_tasks: int


def build_dag(
    job: JobSnapshot,
    catalog: CatalogSnapshot,
    *,
    retry_delay: timedelta = timedelta(seconds=DEFAULT_RETRY_DELAY_SECONDS),
) -> DAG:
    """The DAG for ``job``; raises ``ValueError`` naming what is wrong with the job."""
    problem = job_problem(job)
    if problem is not None:
        raise ValueError(f"etl-meta job {job.name!r} {problem}")
    graph = job.runnable_graph()
    linked = {n for c in job.active_components for n in (*c.inputs, *c.outputs)}
    dataclasses = {name: d for name, d in catalog.dataclasses.items() if name in linked}
    sequential = job.strategy_type == "sequential"
    limits: _Limits = {}  # what is left out keeps Airflow's configured default
    if sequential:
        limits["max_active_tasks"] = 1
    elif job.max_concurrency:
        limits["max_active_tasks"] = job.max_concurrency
    dag = DAG(
        dag_id=job.name,
        description=(job.description or f"etl-meta job {job.name}")
        + f" (store revision {job.revision}, catalog {catalog.revision})",
        doc_md=_doc(job, catalog),
        schedule=None,
        catchup=False,
        tags=dag_tags(job),
        default_args={"retries": job.num_of_retries, "retry_delay": retry_delay},
        auto_register=False,
        **limits,
    )
    tasks = {
        component.name: EtlMetaComponentOperator(
            job=job,
            component=component,
            upstream_components=graph[component.name],
            dataclasses=dataclasses,
            dag=dag,
        )
        for component in job.active_components
    }
    for name, upstream in graph.items():
        for parent in upstream:
            tasks[parent] >> tasks[name]
    return dag


def build_dags(
    catalog: CatalogSnapshot, *, retry_delay_seconds: float = DEFAULT_RETRY_DELAY_SECONDS
) -> dict[str, DAG]:
    """``{dag_id: DAG}`` for every job that builds; each job that does not is logged, skipped."""
    dags: dict[str, DAG] = {}
    delay = timedelta(seconds=retry_delay_seconds)
    for job in catalog.jobs:
        try:
            dags[job.name] = build_dag(job, catalog, retry_delay=delay)
        except Exception as exc:  # one broken job must not hide every other DAG
            log.error("etl-meta job %s not loaded as a DAG: %s", job.name, exc)
    return dags


def dags_from_catalog_file(
    path: str | Path, *, retry_delay_seconds: float = DEFAULT_RETRY_DELAY_SECONDS
) -> dict[str, DAG]:
    """The DAGs of an exported ``etl_meta_catalog.json`` (what the generated DAG file calls)."""
    return build_dags(read_catalog(Path(path)), retry_delay_seconds=retry_delay_seconds)
