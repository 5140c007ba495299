"""Run one component for an orchestrator: resolve its configuration, run it, record metrics.

Dagster ops and Airflow tasks both call :func:`run_component`, so a component behaves the same
under either. Configuration comes from the store at the exact version the orchestrator's snapshot
names; the orchestrator's own run config (which only ever holds masked values) may override
plain values, and a masked value (``***``) always means "the stored one".
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from etl_meta.catalog import ComponentSnapshot, DataclassSnapshot, JobSnapshot
from etl_meta.components.base import ComponentContext, ComponentResult
from etl_meta.components.registry import get_component_type
from etl_meta.masking import ENCRYPTED_PREFIX, MASK
from etl_meta.models import ExecutionStatus
from etl_meta.retry import retry_transient
from etl_meta.store import MetadataStore, RecordResult


def resolve_configuration(stored: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict:
    """``stored`` with ``overrides`` merged in depth.

    A masked override value (``***``, or a stored ciphertext) means "the stored value": it keeps
    the stored one, and with nothing stored under that key it is dropped — the literal mask never
    reaches a component.
    Secrets therefore cannot be passed through orchestrator run config, only stored.
    """
    merged = dict(stored)
    for key, value in overrides.items():
        if _is_masked(value):
            continue  # masked, or stored ciphertext echoed back: keep the (decrypted) stored value
        merged[key] = _resolve_value(stored.get(key), value)
    return merged


def _is_masked(value: Any) -> bool:
    return value == MASK or (isinstance(value, str) and value.startswith(ENCRYPTED_PREFIX))


def _resolve_value(stored: Any, override: Any) -> Any:
    # Orchestrators echo the whole masked configuration back (Dagster's default run config,
    # Airflow's exported snapshot), lists included: a secret inside a list item
    # (``targets: [{api_key: ***}]``) must resolve to the stored value like any other, item by
    # item, or the component would receive the literal mask.
    if isinstance(override, Mapping):
        return resolve_configuration(stored if isinstance(stored, Mapping) else {}, override)
    if isinstance(override, list | tuple):
        base = stored if isinstance(stored, list | tuple) else []
        resolved = []
        for index, item in enumerate(override):
            if _is_masked(item):
                if index < len(base):
                    resolved.append(base[index])
                continue  # nothing stored there: drop the mask rather than pass it on
            resolved.append(_resolve_value(base[index] if index < len(base) else None, item))
        return resolved
    return override


@dataclass
class RunIdentity:
    """Which run and attempt a component execution belongs to."""

    orchestrator: str
    run_id: str
    attempt: int = 1
    job_revision: int | None = None
    config_versions: dict[str, int] = field(default_factory=dict)
    log_path: str | None = None


class MetricRecorder:
    """Records a component's metrics in the store, numbering repeated names by step."""

    def __init__(self, store: MetadataStore, job: JobSnapshot, component: str, run: RunIdentity):
        self.store = store
        self.job = job
        self.component = component
        self.run = run
        self._steps: dict[str, int] = {}
        self._execution_known = False

    def ensure_execution(self) -> None:
        """Make sure the run exists in the store (an op may log before any sensor saw the run)."""
        if self._execution_known:
            return
        retry_transient(
            lambda: self.store.executions.upsert(
                {
                    "job": self.job.name,
                    "orchestrator": self.run.orchestrator,
                    "external_run_id": self.run.run_id,
                    "status": ExecutionStatus.RUNNING,
                    "job_revision": self.run.job_revision or self.job.revision,
                    "config_versions": self.run.config_versions or self.job.config_versions or None,
                    "log_path": self.run.log_path,
                }
            )
        )
        self._execution_known = True

    def record(self, metrics: Mapping[str, float]) -> RecordResult:
        """Record ``{name: value}``; a name recorded again gets the next step."""
        if not metrics:
            return RecordResult(inserted=0, skipped=0)
        self.ensure_execution()
        points = []
        for name, value in metrics.items():
            step = self._steps.get(name, -1) + 1
            self._steps[name] = step
            points.append((self.component, name, value, step, self.run.attempt, None))
        return retry_transient(
            lambda: self.store.metrics.record(
                points, orchestrator=self.run.orchestrator, run_id=self.run.run_id
            )
        )


def run_log_path(home: Path, job: str, run_id: str) -> Path:
    """Where a run's log file goes when its job has ``file_logging`` on."""
    return home / "logs" / job / f"{run_id}.log"


def run_component(
    store: MetadataStore,
    *,
    job: JobSnapshot,
    component: ComponentSnapshot,
    run: RunIdentity,
    inputs: Mapping[str, Any],
    dataclasses: Mapping[str, DataclassSnapshot] | None = None,
    overrides: Mapping[str, Any] | None = None,
    base_dir: Path | None = None,
    log: logging.Logger | None = None,
) -> ComponentResult:
    """Run ``component`` of ``job`` once (one attempt) and record its metrics in the store."""
    implementation = get_component_type(component.component_type)
    stored = retry_transient(
        lambda: store.components.configuration(
            job.name, component.name, version=component.config_version
        )
    )
    config = implementation.parse_config(resolve_configuration(stored, overrides or {}))
    recorder = MetricRecorder(store, job, component.name, run)
    linked = {*component.inputs, *component.outputs}
    context = ComponentContext(
        job=job.name,
        component=component.name,
        component_type=component.component_type,
        config=config.model_dump(),
        attempt=run.attempt,
        run_id=run.run_id,
        orchestrator=run.orchestrator,
        base_dir=base_dir or store.settings.base_dir,
        reads=component.inputs,
        writes=component.outputs,
        dataclasses={
            name: snap.info() for name, snap in (dataclasses or {}).items() if name in linked
        },
        log=log or logging.getLogger(f"etl_meta.component.{component.name}"),
        record_metrics=recorder.record,
    )
    result = implementation.run(context, config, inputs)
    if not isinstance(result, ComponentResult):
        result = ComponentResult(value=result)
    _check_output_contracts(context, result)
    recorder.record(result.metrics)
    return result


def _is_frame(value: Any) -> bool:
    # Duck-typed so this module never imports pandas itself.
    return hasattr(value, "dtypes") and hasattr(value, "columns") and hasattr(value, "isna")


def _prefixed(
    record: Callable[[Mapping[str, float]], Any] | None, prefix: str
) -> Callable[[Mapping[str, float]], None]:
    def record_prefixed(metrics: Mapping[str, float]) -> None:
        if record is not None:
            record({prefix + key: value for key, value in metrics.items()})

    return record_prefixed


def _check_output_contracts(context: ComponentContext, result: ComponentResult) -> None:
    """Check a table output against every dataclass the component declares it writes.

    Declaring ``outputs: [orders]`` is a promise: the table must fit ``orders``' schema and
    rules. The checks are the ``validate`` type's; their metrics are recorded as
    ``contract.<dataclass>.<metric>`` and a violation fails the step for good (the same data
    would fail again).
    """
    if not context.writes or not _is_frame(result.value):
        return
    validate = get_component_type("validate")
    for name in context.writes:
        if name not in context.dataclasses:
            continue  # archived since the snapshot: nothing to hold the output to
        prefix = f"contract.{name}."
        checked = validate.run(
            replace(context, record_metrics=_prefixed(context.record_metrics, prefix)),
            validate.parse_config({"dataclass": name}),
            {context.component: result.value},
        )
        result.metrics.update({prefix + key: value for key, value in checked.metrics.items()})
        result.metadata.setdefault("columns", checked.metadata.get("columns"))
        result.metadata[f"contract.{name}"] = checked.metadata.get("checks")
