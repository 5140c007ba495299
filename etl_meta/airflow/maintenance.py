"""The ``etl_meta_reconcile`` maintenance DAG: ``etl-meta airflow reconcile`` every few minutes.

``etl-meta airflow export`` writes ``etl_meta_maintenance.py`` into the dags folder, which calls
:func:`reconcile_dag`. Its one task runs a reconcile pass (:mod:`etl_meta.airflow.reconcile`) on
a worker, so what the listener missed during a store outage reaches the store without anyone
running a command. The DAG is tagged ``etl-meta-maintenance``, not ``etl-meta``: it is not a job,
and the listener and reconciliation leave its own runs alone.

Where the task finds Airflow's API server, first match wins:

1. an Airflow connection ``etl_meta_airflow_api`` (host with scheme and port, login, password);
2. ``ETL_META_AIRFLOW_API_URL`` and ``ETL_META_AIRFLOW_TOKEN`` or ``ETL_META_AIRFLOW_USERNAME`` /
   ``ETL_META_AIRFLOW_PASSWORD`` in the worker's environment (:mod:`etl_meta.airflow.connection`);
3. for the URL only, Airflow's own ``[api] base_url`` (``AIRFLOW__API__BASE_URL``).

The store is the worker's usual ``ETL_META_DATABASE_URL``. A pass that cannot reach the store or
Airflow fails the try (retried once); the next scheduled run starts where the last good pass
stopped, since the cursor lives in the store.
"""

from __future__ import annotations

import logging
from datetime import timedelta
from typing import Any

from airflow.sdk import DAG, task

from etl_meta.airflow.connection import ApiAccess, api_access
from etl_meta.airflow.reconcile import reconcile
from etl_meta.airflow.stores import open_store

log = logging.getLogger(__name__)

RECONCILE_DAG_ID = "etl_meta_reconcile"
MAINTENANCE_TAG = "etl-meta-maintenance"
#: The Airflow connection the task reads first (see the module docstring).
CONNECTION_ID = "etl_meta_airflow_api"
DEFAULT_INTERVAL_MINUTES = 5.0


def _airflow_base_url() -> str | None:
    try:
        from airflow.sdk.configuration import conf
    except ImportError:  # pragma: no cover - older Task SDKs
        from airflow.configuration import conf
    return conf.get("api", "base_url", fallback=None) or None


def _from_connection() -> dict[str, Any]:
    from airflow.sdk import BaseHook

    try:
        connection = BaseHook.get_connection(CONNECTION_ID)
    except Exception:  # not defined: the environment is used (Airflow raises its own type)
        return {}
    url = connection.host or ""
    if url and "://" not in url:
        url = f"{connection.schema or 'http'}://{url}"
    if url and connection.port:
        url = f"{url}:{connection.port}"
    found = {"url": url or None, "username": connection.login, "password": connection.password}
    return {key: value for key, value in found.items() if value}


def access() -> ApiAccess:
    """How the task reaches Airflow's API (see the module docstring for the order)."""
    return api_access(**_from_connection(), default_url=_airflow_base_url())


def run_reconcile() -> dict[str, Any]:
    """One reconcile pass; a small summary (runs read and written, skipped, cursor) as XCom."""
    store = open_store("task", actor=f"airflow:{RECONCILE_DAG_ID}")
    with access().client() as client:
        result = reconcile(store, client)
    for key, problem in result.skipped.items():
        log.warning("etl-meta reconcile: %s not recorded: %s", key, problem)
    log.info(
        "etl-meta reconcile: read %d run(s), wrote %d run(s), %d attempt(s), %d point(s) in %.2f s",
        result.runs_read,
        result.runs_written,
        result.attempts_written,
        result.points_written,
        result.seconds,
    )
    return {
        "runs_read": result.runs_read,
        "runs_written": result.runs_written,
        "attempts_written": result.attempts_written,
        "points_written": result.points_written,
        "skipped": len(result.skipped),
        "cursor": result.cursor,
    }


def reconcile_dag(interval_minutes: float = DEFAULT_INTERVAL_MINUTES) -> DAG:
    """The maintenance DAG: one reconcile task every ``interval_minutes``, one run at a time."""
    if interval_minutes <= 0:
        raise ValueError("interval_minutes must be positive")
    interval = timedelta(minutes=interval_minutes)
    with DAG(
        dag_id=RECONCILE_DAG_ID,
        description="etl-meta: record in the store what its Airflow listener missed",
        schedule=interval,
        catchup=False,
        max_active_runs=1,
        tags=[MAINTENANCE_TAG],
        default_args={"retries": 1, "retry_delay": timedelta(minutes=1)},
        doc_md=__doc__,
    ) as dag:
        # A pass that outlives its interval is stuck (a hung store): end it, the next one resumes.
        task(task_id="reconcile", execution_timeout=max(interval, timedelta(minutes=2)))(
            run_reconcile
        )()
    return dag
