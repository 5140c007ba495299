"""One Dagster op per component type, shared by every job that uses the type.

Op names must be unique in a code location, so jobs invoke the type's op under each component's
name (``NodeInvocation(alias=...)``). The op learns which component it is from that alias and
finds its snapshot in the job's metadata; it never re-reads definitions from the store, only the
configuration values of the version the snapshot names.
"""

import functools
import re
from typing import Any, NamedTuple

import dagster as dg

from dagster_defs import _dagster_internal as internal
from dagster_defs.resources import (
    JOB_METADATA_KEY,
    EtlMetaResource,
    handoff_metadata,
    loaded_job_metadata,
)
from etl_meta import outbox
from etl_meta.catalog import DataclassSnapshot, JobSnapshot
from etl_meta.components import ComponentFailed, get_component_type
from etl_meta.components.failures import describe_failure, is_final
from etl_meta.runtime import MetricRecorder, RunIdentity, run_component, run_log_path

INPUT = "upstream"
OUTPUT = "result"


class ComponentOutput(NamedTuple):
    """What flows along a dependency edge: who produced it, and the value."""

    component: str
    value: Any


def op_name(component_type: str) -> str:
    """``read_csv`` → ``etl_meta__read_csv``; dots and dashes become underscores."""
    return "etl_meta__" + re.sub(r"[^A-Za-z0-9_]", "_", component_type)


def job_metadata(job: JobSnapshot, dataclasses: dict[str, DataclassSnapshot]) -> dict:
    """The JSON the ops of ``job`` read back: the job snapshot and the dataclasses it links."""
    linked = {n for c in job.components for n in (*c.inputs, *c.outputs)}
    return {
        "job": job.model_dump(mode="json"),
        "dataclasses": {
            name: snap.model_dump(mode="json")
            for name, snap in dataclasses.items()
            if name in linked
        },
    }


def _snapshot(context: dg.OpExecutionContext) -> tuple[JobSnapshot, dict[str, DataclassSnapshot]]:
    data = loaded_job_metadata(context.job_def)
    if data is None:  # the ops run only in jobs the code location built, which carry it
        raise KeyError(JOB_METADATA_KEY)
    job = JobSnapshot.model_validate(data["job"])
    dataclasses = {
        name: DataclassSnapshot.model_validate(d) for name, d in data["dataclasses"].items()
    }
    return job, dataclasses


def _hand_off_on_failure(context: dg.OpExecutionContext, recorder: MetricRecorder) -> None:
    """Put the points the store could not take on the step's own event log before it fails.

    A failed or retried step emits no output, so the hand-off rides on an event of its own
    (see ``_dagster_internal.failure_note``); reconciliation reads it back.
    """
    if recorder.unrecorded:
        context.log_event(
            internal.failure_note(
                outbox.DAGSTER_KEY,
                "metric points etl-meta could not record yet (reconciliation will)",
                handoff_metadata(recorder),
            )
        )


def _dagster_metadata(
    result_metadata: dict[str, Any], metrics: dict[str, float], recorder: MetricRecorder
) -> dict:
    metadata: dict[str, Any] = {name: float(value) for name, value in metrics.items()}
    metadata.update(handoff_metadata(recorder))
    if "row_count" in result_metadata:
        metadata["dagster/row_count"] = int(result_metadata["row_count"])
    columns = result_metadata.get("columns")
    if isinstance(columns, dict) and columns:
        metadata["dagster/column_schema"] = dg.TableSchema(
            columns=[dg.TableColumn(name=str(n), type=str(t)) for n, t in columns.items()]
        )
    if "path" in result_metadata:
        metadata["path"] = dg.MetadataValue.path(str(result_metadata["path"]))
    return metadata


@functools.cache
def op_for_type(component_type: str) -> dg.OpDefinition:
    """The op that runs every component of ``component_type`` (built once, then cached)."""
    implementation = get_component_type(component_type)

    @dg.op(
        name=op_name(component_type),
        description=implementation.description or f"Runs etl-meta {component_type} components",
        ins={INPUT: dg.In(list, default_value=[], description="Outputs of upstream components")},
        out={OUTPUT: dg.Out(dg.Any, description="The component's output (often a DataFrame)")},
        config_schema=dg.Permissive(),
        tags={"etl_meta/component_type": component_type},
    )
    def _component_op(
        context: dg.OpExecutionContext, etl_meta: EtlMetaResource, upstream: list
    ) -> dg.Output:
        job, dataclasses = _snapshot(context)
        name = context.op_handle.name
        component = next(c for c in job.components if c.name == name)
        log_path = (
            str(run_log_path(etl_meta.settings.home, job.name, context.run_id))
            if job.file_logging
            else None
        )
        run = RunIdentity(
            "dagster",
            context.run_id,
            attempt=context.retry_number + 1,
            job_revision=job.revision,
            config_versions=job.config_versions,
            log_path=log_path,
        )
        recorder = etl_meta.recorder(context, run)
        try:
            result = run_component(
                etl_meta.store,
                job=job,
                component=component,
                run=run,
                inputs={item.component: item.value for item in upstream},
                dataclasses=dataclasses,
                overrides=context.op_config or {},
                log=context.log,
                recorder=recorder,
            )
        except Exception as exc:
            _hand_off_on_failure(context, recorder)
            # Invalid configuration, an override of a secret, a sandbox refusal, a secret that
            # cannot be decrypted, a missing file, failed checks: each fails the same way on
            # every attempt, so the job's retry policy must not repeat it (see is_final).
            if not is_final(exc):
                raise
            checks = exc.checks if isinstance(exc, ComponentFailed) else ()
            raise dg.Failure(
                description=describe_failure(exc),
                metadata={"checks": dg.MetadataValue.json(list(checks))} if checks else {},
                allow_retries=False,
            ) from exc
        return dg.Output(
            ComponentOutput(name, result.value),
            metadata=_dagster_metadata(result.metadata, result.metrics, recorder),
        )

    return _component_op
