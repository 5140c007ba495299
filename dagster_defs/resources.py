"""``EtlMetaResource``: the store, injected into ops and sensors.

No ``from __future__ import annotations`` in Dagster modules: Dagster reads parameter annotations
at definition time (notes/dagster.md).
"""

import os
import time
from collections.abc import Mapping
from typing import Any

import dagster as dg
from pydantic import Field, PrivateAttr

from etl_meta import outbox
from etl_meta.access import Role
from etl_meta.catalog import JobSnapshot
from etl_meta.components.failures import describe_failure, is_final
from etl_meta.components.overrides import resolve_configuration
from etl_meta.config import Settings
from etl_meta.db import shared_engine
from etl_meta.models import StrategyType
from etl_meta.retry import retry_transient
from etl_meta.runtime import MetricRecorder, RunIdentity
from etl_meta.store import MetadataStore, RecordResult

DATABASE_URL_ENV = "ETL_META_DATABASE_URL"
#: Job metadata key holding the loaded snapshot (written by dagster_defs.ops.job_metadata).
JOB_METADATA_KEY = "etl_meta/job"


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
    write_timeout_seconds: float | None = Field(
        default=None,
        description=(
            "How long opening the store and reading a component's configuration wait for an "
            "unavailable store (retrying with capped, jittered backoff) before the op fails "
            "with a retryable error, for the job's retry policy to take over. Default: "
            "ETL_META_STORE_WAIT_SECONDS (60)."
        ),
    )
    record_timeout_seconds: float | None = Field(
        default=None,
        description=(
            "How long a metric write waits for an unavailable store. Then the op goes on: its "
            "metrics travel on the op's Dagster event and reconciliation records them. "
            "Default: ETL_META_RECORD_WAIT_SECONDS (5)."
        ),
    )

    _settings: Settings | None = PrivateAttr(default=None)
    _actor: str = PrivateAttr(default="dagster")
    _store: MetadataStore | None = PrivateAttr(default=None)
    # One recorder per (run, op, attempt), so repeated names get increasing steps.
    _recorders: dict[tuple[str, str, int], MetricRecorder] = PrivateAttr(default_factory=dict)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        # No connection here: an exception in setup fails the run before any op (or retry
        # policy) runs, so the store is opened on first use, with retries (open_store).
        run = getattr(context, "run", None)  # None outside a run (sensors)
        run_id = run.run_id if run is not None else None
        self._actor = self.actor or (f"dagster:{run_id}" if run_id else "dagster")
        waits = {
            "store_wait_seconds": self.write_timeout_seconds,
            "record_wait_seconds": self.record_timeout_seconds,
        }
        settings = Settings()
        self._settings = settings.model_copy(
            update={k: v for k, v in waits.items() if v is not None}
        ).for_runs()

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def settings(self) -> Settings:
        """The settings ops and sensors use (the environment's, with this resource's waits)."""
        if self._settings is None:
            raise dg.DagsterInvariantViolationError("EtlMetaResource used outside execution")
        return self._settings

    def open_store(self, max_seconds: float | None = None) -> MetadataStore:
        """The store, opened on first use; waits up to ``max_seconds`` (default
        ``write_timeout_seconds``) for an unavailable one, then raises
        :class:`~etl_meta.errors.StoreUnavailableError` naming the cause.
        """
        if self._store is None:
            settings = self.settings
            url = self.database_url or os.environ.get(DATABASE_URL_ENV) or None
            wait = settings.store_wait_seconds if max_seconds is None else max_seconds
            # The process's engine for this URL: each run of an in-process executor and each
            # sensor tick would otherwise connect afresh (the schema is still checked per open).
            engine = shared_engine(url, settings)
            self._store = retry_transient(
                lambda: MetadataStore(
                    engine=engine, actor=self._actor, role=self.role, settings=settings
                ),
                max_seconds=wait,
            )
        return self._store

    @property
    def store(self) -> MetadataStore:
        """The open store (only between setup and teardown); see :meth:`open_store`."""
        return self.open_store()

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
        """The component's stored configuration, unmasked, with the op's run config merged in.

        ``***`` in the run config means "the stored value"; an override that would change a
        secret fails the op without retries (naming the field). Waits up to
        ``write_timeout_seconds`` for an unavailable store, then raises a retryable
        :class:`~etl_meta.errors.StoreUnavailableError`.
        """
        job, name = context.job_name, context.op_handle.name
        deadline = time.monotonic() + self.settings.store_wait_seconds
        store = self.open_store()
        overrides = context.op_config if isinstance(context.op_config, Mapping) else {}
        try:
            stored = retry_transient(
                lambda: store.components.configuration(job, name),
                max_seconds=max(deadline - time.monotonic(), 0.0),
            )
            # The type decides which fields are secrets (its contract declares them).
            component_type = retry_transient(
                lambda: store.components.get(job, name).component_type,
                max_seconds=max(deadline - time.monotonic(), 0.0),
            )
            return resolve_configuration(stored, overrides, component_type=component_type)
        except Exception as exc:
            # An override of a secret, or a secret no key decrypts, fails the same way on every
            # attempt: don't retry it (the store being down stays retryable).
            if is_final(exc):
                raise dg.Failure(description=describe_failure(exc), allow_retries=False) from exc
            raise

    def recorder(
        self, context: dg.OpExecutionContext, run: RunIdentity | None = None
    ) -> MetricRecorder:
        """The metric recorder of this run, op and attempt (its points are the hand-off);
        ``run`` names the run as the caller knows it (the built-in ops add the log path)."""
        key = (context.run_id, context.op_handle.name, context.retry_number + 1)
        recorder = self._recorders.get(key)
        if recorder is None:
            snapshot = _job_snapshot(context)
            run = run or RunIdentity(
                "dagster",
                context.run_id,
                attempt=key[2],
                job_revision=snapshot.revision if snapshot.revision else None,
                config_versions=dict(snapshot.config_versions),
            )
            recorder = self._recorders[key] = MetricRecorder(
                lambda: self.open_store(self.settings.record_wait_seconds),
                snapshot,
                key[1],
                run,
                wait_seconds=self.settings.record_wait_seconds,
            )
        return recorder

    def log_metrics(
        self, context: dg.OpExecutionContext, metrics: Mapping[str, float]
    ) -> RecordResult:
        """Record ``metrics`` for this run, component and attempt, and show them on the event.

        Never fails the op because of the store: points it cannot write within
        ``record_timeout_seconds`` ride on the op's output event (``etl_meta/metrics``) and
        reconciliation records them.
        """
        recorder = self.recorder(context)
        result = recorder.record(metrics)
        context.add_output_metadata(
            {
                **{name: float(value) for name, value in metrics.items()},
                **handoff_metadata(recorder),
            }
        )
        return result


def handoff_metadata(recorder: MetricRecorder) -> dict[str, Any]:
    """The recorder's points as event metadata (see etl_meta.outbox), or nothing if none."""
    if not recorder.points:
        return {}
    return {outbox.DAGSTER_KEY: dg.MetadataValue.json(outbox.encode(recorder.points))}


def loaded_job_metadata(job: dg.JobDefinition) -> Mapping[str, Any] | None:
    """What the code location stored on a job it built (``None``: a hand-written job)."""
    entry = job.metadata.get(JOB_METADATA_KEY)
    if entry is None:
        return None
    value = entry.value  # any metadata kind to Dagster's types; ours is always a JSON object
    if not isinstance(value, Mapping):
        raise TypeError(f"the {JOB_METADATA_KEY!r} metadata of job {job.name!r} is not an object")
    return value


def _job_snapshot(context: dg.OpExecutionContext) -> JobSnapshot:
    """The job as the code location loaded it, or (a hand-written job) just its name."""
    loaded = loaded_job_metadata(context.job_def)
    if loaded is not None:
        return JobSnapshot.model_validate(loaded["job"])
    # revision 0: unknown here; the store keeps whatever revision it already recorded.
    return JobSnapshot(
        name=context.job_name,
        revision=0,
        num_of_retries=0,
        file_logging=False,
        strategy_type=StrategyType.SEQUENTIAL,
    )
