"""Helpers for your own Airflow tasks: stored configuration in, metrics out.

The same call shape as the Dagster resource (``etl_meta.component_config(context)``,
``etl_meta.log_metrics(context, metrics)``). The component is the task (``task_id``) of the job
the DAG is named after (``dag_id``); the attempt is the task's try (``ti.try_number``)::

    from airflow.sdk import dag, task
    from etl_meta.airflow.task import component_config, log_metrics

    @dag(dag_id="daily_sales", schedule=None)
    def daily_sales():
        @task
        def load_warehouse(**context):
            config = component_config(context)   # stored configuration, secrets resolved
            ...
            log_metrics(context, {"rows": 1250, "nulls": 0})

``context`` may be omitted inside a running task (the current context is used). The store is the
usual ``ETL_META_DATABASE_URL`` (or the SQLite file under ``ETL_META_HOME``) of the worker.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Mapping
from typing import Any

from etl_meta.airflow import xcom

# Re-exported: what the helpers raise when another try would fail the same way.
from etl_meta.airflow.operator import AirflowFailException as AirflowFailException
from etl_meta.airflow.operator import EtlMetaComponentOperator, raise_final, run_overrides
from etl_meta.airflow.operator import FinalValidationError as FinalValidationError
from etl_meta.airflow.recording import ORCHESTRATOR
from etl_meta.airflow.stores import airflow_actor, open_store
from etl_meta.catalog import JobSnapshot
from etl_meta.components.overrides import resolve_configuration
from etl_meta.config import Settings
from etl_meta.models import StrategyType
from etl_meta.retry import retry_transient
from etl_meta.runtime import MetricRecorder, RunIdentity
from etl_meta.store import MetadataStore, RecordResult

# One recorder per (process, run, component, try), so a name logged again gets the next step.
_recorders: dict[tuple[int, str, str, int], MetricRecorder] = {}


def _context(context: Mapping[str, Any] | None) -> Mapping[str, Any]:
    if context is not None:
        return context
    from airflow.sdk import get_current_context

    return get_current_context()


def component(context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The running component's identity: job, component, attempt (1-based) and run id."""
    ti = _context(context)["ti"]
    return {
        "job": ti.dag_id,
        "component": ti.task_id,
        "attempt": int(ti.try_number),
        "run_id": ti.run_id,
    }


def _store(ti: Any, *, wait: bool = False) -> MetadataStore:
    """The task's store; ``wait``: opened within the recording budget, not the store wait."""
    actor = airflow_actor(ti.dag_id, ti.run_id, ti.task_id, int(ti.try_number))
    if wait:
        settings = Settings()
        return open_store(
            "task", actor=actor, settings=settings, wait_seconds=settings.record_wait_seconds
        )
    return open_store("task", actor=actor)


def component_config(context: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The component's stored configuration, unmasked, with the DAG run's overrides merged in.

    Overrides come from the run's ``conf={"components": {"<task id>": {...}}}``; ``***`` means
    "the stored value". An override that would change a secret fails the task without retries
    (``AirflowFailException`` naming the field). Inside an etl-meta DAG task the version is the
    one the DAG was exported with; elsewhere it is the component's current configuration.
    """
    ctx = _context(context)
    ti = ctx["ti"]
    task = ctx.get("task")
    version = task.component.config_version if isinstance(task, EtlMetaComponentOperator) else None
    store = _store(ti)
    try:
        # Within the store wait window; past it the StoreUnavailableError fails this try, and
        # Airflow retries it (a retryable error, unlike AirflowFailException).
        stored = retry_transient(
            lambda: store.components.configuration(ti.dag_id, ti.task_id, version=version),
            max_seconds=store.settings.store_wait_seconds,
        )
        conf = getattr(ctx.get("dag_run"), "conf", None)
        # The type decides which fields are secrets (its contract declares them).
        component_type = (
            task.component.component_type
            if isinstance(task, EtlMetaComponentOperator)
            else retry_transient(
                lambda: store.components.get(ti.dag_id, ti.task_id).component_type,
                max_seconds=store.settings.store_wait_seconds,
            )
        )
        return resolve_configuration(
            stored, run_overrides(conf, ti.task_id), component_type=component_type
        )
    except Exception as exc:
        # An override of a secret, or a secret no configured key decrypts, fails the same way
        # on every try: don't retry it.
        raise_final(exc)
        raise


def log_metrics(context: Mapping[str, Any] | None, metrics: Mapping[str, float]) -> RecordResult:
    """Record ``metrics`` for this run, component and try (replays are skipped by the store).

    Never fails or waits past ``ETL_META_RECORD_WAIT_SECONDS`` because of the store: points it
    cannot write go to XCom (:mod:`etl_meta.airflow.xcom`) for ``etl-meta airflow reconcile``.
    """
    ctx = _context(context)
    ti = ctx["ti"]
    key = (os.getpid(), ti.run_id, ti.task_id, int(ti.try_number))
    recorder = _recorders.get(key)
    if recorder is None:
        task = ctx.get("task")
        # Your own DAG's job: the run is recorded with its name only (revision unknown, 0), so
        # logging never has to read the store first.
        job = (
            task.job
            if isinstance(task, EtlMetaComponentOperator)
            else JobSnapshot(
                name=ti.dag_id,
                revision=0,
                num_of_retries=0,
                file_logging=False,
                strategy_type=StrategyType.SEQUENTIAL,
            )
        )
        run = RunIdentity(ORCHESTRATOR, ti.run_id, attempt=key[3])
        opener = functools.partial(_store, ti, wait=True)
        recorder = _recorders[key] = MetricRecorder(opener, job, ti.task_id, run)
    try:
        return recorder.record(metrics)
    except Exception as exc:
        raise_final(exc)  # invalid points are refused the same way on every try
        raise
    finally:
        xcom.hand_off(ti, recorder)
