"""``EtlMetaResource``: the store, injected into ops and sensors.

No ``from __future__ import annotations`` in Dagster modules: Dagster reads parameter annotations
at definition time (notes/dagster.md).
"""

import os
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from etl_meta.access import Role
from etl_meta.catalog import JobSnapshot
from etl_meta.components.runtime import MetricRecorder, RunIdentity, resolve_configuration
from etl_meta.config import Settings
from etl_meta.retry import retry_transient
from etl_meta.store import MetadataStore, RecordResult

DATABASE_URL_ENV = "ETL_META_DATABASE_URL"


class EtlMetaResource(dg.ConfigurableResource):
    """The etl-meta store for ops and sensors of this code location.

    Ops get their component's stored configuration and identity from it, and record metrics with
    :meth:`log_metrics`, which also attaches them to the op's Dagster output event.
    """

    database_url: str = Field(
        default="",
        description=(
            "SQLAlchemy URL of the etl-meta store. Empty: ETL_META_DATABASE_URL, else the "
            "embedded SQLite file under ETL_META_HOME."
        ),
    )
    actor: str = Field(
        default="",
        description="Who the audit trail names; empty means 'dagster:<run id>' (or 'dagster').",
    )
    role: str = Field(
        default=Role.WRITER.value,
        description=(
            "What ops and sensors may do through the store: 'writer' (record runs and metrics, "
            "read secrets to run components), 'reader', or 'admin' only if your own ops change "
            "definitions: the built-in ones never do."
        ),
    )
    write_timeout_seconds: float = Field(
        default=60.0,
        description=(
            "How long store writes retry transient database errors (capped, jittered backoff) "
            "before the op fails and Dagster's retry policy takes over."
        ),
    )

    _store: MetadataStore | None = PrivateAttr(default=None)
    # One recorder per (run, op, attempt), so repeated names get increasing steps.
    _recorders: dict[tuple[str, str, int], MetricRecorder] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        run = getattr(context, "run", None)  # None outside a run (sensors)
        run_id = run.run_id if run is not None else None
        actor = self.actor or (f"dagster:{run_id}" if run_id else "dagster")
        url = self.database_url or os.environ.get(DATABASE_URL_ENV) or None
        self._store = MetadataStore(url, actor=actor, role=self.role, settings=Settings())

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def store(self) -> MetadataStore:
        """The open store (only between setup and teardown)."""
        if self._store is None:
            raise dg.DagsterInvariantViolationError("EtlMetaResource used outside execution")
        return self._store

    # -- for ops ---------------------------------------------------------------------------------

    def component(self, context: dg.OpExecutionContext) -> dict[str, Any]:
        """The running component's identity: job, component, attempt (1-based) and run id."""
        return {
            "job": context.job_name,
            "component": context.op_handle.name,
            "attempt": context.retry_number + 1,
            "run_id": context.run_id,
        }

    def component_config(self, context: dg.OpExecutionContext) -> dict[str, Any]:
        """The component's stored configuration, unmasked, with the op's run config merged in."""
        job, name = context.job_name, context.op_handle.name
        stored = retry_transient(
            lambda: self.store.components.configuration(job, name),
            max_seconds=self.write_timeout_seconds,
        )
        overrides = context.op_config if isinstance(context.op_config, Mapping) else {}
        return resolve_configuration(stored, overrides)

    def log_metrics(
        self, context: dg.OpExecutionContext, metrics: Mapping[str, float]
    ) -> RecordResult:
        """Record ``metrics`` for this run, component and attempt, and show them on the event."""
        key = (context.run_id, context.op_handle.name, context.retry_number + 1)
        recorder = self._recorders.get(key)
        if recorder is None:
            job = self.store.jobs.get(context.job_name)
            snapshot = JobSnapshot(
                name=job.name,
                revision=job.revision,
                num_of_retries=job.num_of_retries,
                file_logging=job.file_logging,
                strategy_type=job.strategy_type,
            )
            run = RunIdentity("dagster", context.run_id, attempt=key[2])
            recorder = self._recorders[key] = MetricRecorder(self.store, snapshot, key[1], run)
        result = recorder.record(metrics)
        context.add_output_metadata({name: float(value) for name, value in metrics.items()})
        return result
