"""Run one component for an orchestrator: resolve its configuration, run it, record metrics.

Dagster ops and Airflow tasks both call :func:`run_component`, so a component behaves the same
under either. Configuration comes from the store at the exact version the orchestrator's snapshot
names; the orchestrator's own run config (which only ever holds masked values) may override
plain values, a masked value (``***``) always means "the stored one", and an override that
would change a secret is refused before the component runs.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from etl_meta.catalog import ComponentSnapshot, DataclassSnapshot, JobSnapshot
from etl_meta.components.base import ComponentContext, ComponentResult
from etl_meta.components.overrides import resolve_configuration
from etl_meta.components.registry import get_component_type
from etl_meta.components.sandbox import Sandbox
from etl_meta.errors import EtlMetaError, ValidationError, is_transient
from etl_meta.models import ExecutionStatus
from etl_meta.outbox import PendingPoint, as_tuples
from etl_meta.retry import retry_transient
from etl_meta.store import MetadataStore, RecordResult
from etl_meta.store.metrics import MetricTarget, check_point
from etl_meta.types import utcnow

_log = logging.getLogger(__name__)


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
    """Records a component's metrics in the store, numbering repeated names by step.

    Recording never fails or stalls the component because of the store: each write waits at
    most ``wait_seconds`` (default ``Settings.record_wait_seconds``), and a point that could not
    be written stays in :attr:`unrecorded`. Every point recorded — written or not — is kept in
    :attr:`points`, which the orchestrator integration hands to its own durable storage (see
    :mod:`etl_meta.outbox`) for reconciliation to record later. After a failed write the
    recorder leaves the store alone for ``wait_seconds`` times :data:`BACKOFF_FACTOR`, so a
    component logging in a loop does not wait on every call. Invalid points (NaN, a bad name)
    still raise :class:`~etl_meta.errors.ValidationError` at once.

    ``store`` may be a callable that opens the store, called on the first write.
    """

    #: After a failed write, skip the store for this many times ``wait_seconds``.
    BACKOFF_FACTOR = 3.0

    def __init__(
        self,
        store: MetadataStore | Callable[[], MetadataStore],
        job: JobSnapshot,
        component: str,
        run: RunIdentity,
        *,
        wait_seconds: float | None = None,
    ) -> None:
        self._store = store
        self.job = job
        self.component = component
        self.run = run
        self.wait_seconds = wait_seconds
        self.points: list[PendingPoint] = []
        self._written = 0  # points[:_written] are in the store
        self._steps: dict[str, int] = {}
        self._execution_known = False
        self._target_ids: MetricTarget | None = None
        self._quiet_until = 0.0

    @property
    def unrecorded(self) -> list[PendingPoint]:
        """Points not (yet) written to the store."""
        return self.points[self._written :]

    def _open(self) -> MetadataStore:
        """The recorder's store, opened on first use when it was given an opener."""
        if not isinstance(self._store, MetadataStore):
            self._store = self._store()
        return self._store

    def _budget(self, store: MetadataStore) -> float:
        """How long one recording call may wait for ``store``."""
        if self.wait_seconds is not None:
            return self.wait_seconds
        return store.settings.record_wait_seconds

    def _execution_values(self) -> dict[str, Any]:
        return {
            "job": self.job.name,
            "orchestrator": self.run.orchestrator,
            "external_run_id": self.run.run_id,
            "status": ExecutionStatus.RUNNING,
            # 0: a job the orchestrator did not load from the store (revision unknown)
            "job_revision": self.run.job_revision or self.job.revision or None,
            "config_versions": self.run.config_versions or self.job.config_versions or None,
            "log_path": self.run.log_path,
        }

    def ensure_execution(self, store: MetadataStore, budget: float) -> None:
        """Make sure the run exists in the store (an op may log before any sensor saw the run)."""
        if self._execution_known:
            return
        values = self._execution_values()
        retry_transient(lambda: store.executions.upsert(values), max_seconds=budget)
        self._execution_known = True

    def _adds_to(self, target: MetricTarget) -> bool:
        """Whether ensure_execution's upsert would change the run the store holds."""
        values = self._execution_values()
        if target.status.rank < ExecutionStatus.RUNNING.rank:
            return True
        stored = {
            "job_revision": target.job_revision,
            "config_versions": target.config_versions,
            "log_path": target.log_path,
        }
        return any(values[k] is not None and values[k] != v for k, v in stored.items())

    def _target(self, store: MetadataStore, deadline: float) -> MetricTarget | None:
        """The ids to record under, looked up once per recorder (then every write is one
        statement); ``None`` when the store has no such component for the run's job.

        The run is upserted first only when the store lacks it or it would change: an op of a
        run whose record is current (the usual case after its first op) skips that write.
        """
        if self._target_ids is not None:
            return self._target_ids

        def lookup() -> MetricTarget | None:
            return retry_transient(
                lambda: store.metrics.target(
                    self.component, orchestrator=self.run.orchestrator, run_id=self.run.run_id
                ),
                max_seconds=_left(deadline),
            )

        target = None if self._execution_known else lookup()
        if target is None or self._adds_to(target):
            self.ensure_execution(store, _left(deadline))
            target = lookup()
        self._execution_known = True
        self._target_ids = target
        return target

    def record(self, metrics: Mapping[str, float]) -> RecordResult:
        """Record ``{name: value}``; a name recorded again gets the next step.

        Returns how many points were written now (``inserted``) and how many the store already
        held (``skipped``); points it could not write are counted in neither and stay in
        :attr:`unrecorded`.
        """
        now = utcnow()
        points = []
        steps = dict(self._steps)
        for index, (name, value) in enumerate(metrics.items()):
            step = steps.get(name, -1) + 1
            point = (self.component, name, value, step, self.run.attempt, now)
            try:
                check_point(point)  # a bad point fails now, never later in reconciliation
            except ValidationError as exc:
                raise ValidationError.single(
                    f"points.{index}.{exc.field}", exc.problems[0].message, entity="metric"
                ) from None
            steps[name] = step
            points.append(PendingPoint(self.component, name, float(value), step, *point[4:]))
        self._steps = steps  # only a call whose every point is valid takes steps
        self.points.extend(points)
        return self.flush()

    def flush(self) -> RecordResult:
        """Write every unrecorded point now, within the wait budget (never raising for outages)."""
        pending = self.unrecorded
        result = self._write(pending) if pending else None
        if result is None:
            return RecordResult(inserted=0, skipped=0)
        self._written += len(pending)
        return result

    def write_points(self, points: Sequence[PendingPoint]) -> bool:
        """Write ``points`` of this component that are not in :attr:`points` (an earlier
        attempt's, carried by the orchestrator), under the same budget; whether they landed."""
        return bool(points) and self._write(points) is not None

    def _write(self, points: Sequence[PendingPoint]) -> RecordResult | None:
        """Write ``points`` within the wait budget; ``None`` when the store could not take them
        (then the store is left alone for a few budgets)."""
        if time.monotonic() < self._quiet_until:
            return None
        budget = self.wait_seconds if self.wait_seconds is not None else 5.0
        try:
            store = self._open()
            budget = self._budget(store)
            # One budget for the whole write (lookups included): the wait stays bounded.
            deadline = time.monotonic() + budget
            target = self._target(store, deadline)
            if target is not None:
                return retry_transient(
                    lambda: store.metrics.record_to(target, as_tuples(points)),
                    max_seconds=_left(deadline),
                )
            # No such component in the run's job: the full call raises the usual error.
            return store.metrics.record(
                as_tuples(points), orchestrator=self.run.orchestrator, run_id=self.run.run_id
            )
        except EtlMetaError as exc:
            if not is_transient(exc):
                raise
            self._quiet_until = time.monotonic() + self.BACKOFF_FACTOR * max(budget, 1.0)
            _log.warning(
                "etl-meta: %d metric point(s) of %s not recorded yet (%s); they travel with "
                "the orchestrator's record of this step and are recorded at reconciliation",
                len(points),
                self.component,
                exc,
            )
            return None


def _left(deadline: float) -> float:
    return max(deadline - time.monotonic(), 0.0)


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
    recorder: MetricRecorder | None = None,
) -> ComponentResult:
    """Run ``component`` of ``job`` once (one attempt) and record its metrics in the store.

    The configuration read waits for an unavailable store up to ``store_wait_seconds``, then
    raises :class:`~etl_meta.errors.StoreUnavailableError` (retryable: the orchestrator's retry
    policy applies). Metrics go through ``recorder`` (pass your own to hand its points off when
    the store cannot take them, see :class:`MetricRecorder`).
    """
    implementation = get_component_type(component.component_type)
    stored = retry_transient(
        lambda: store.components.configuration(
            job.name, component.name, version=component.config_version
        ),
        max_seconds=store.settings.store_wait_seconds,
    )
    config = implementation.parse_config(
        resolve_configuration(stored, overrides or {}, component_type=component.component_type)
    )
    recorder = recorder or MetricRecorder(store, job, component.name, run)
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
        # The worker's own settings decide what the step may touch, and the store's database
        # is protected even when the store was opened with a URL its settings do not name.
        sandbox=Sandbox.from_settings(
            store.settings, base_dir=base_dir or store.settings.base_dir, store_url=store.engine.url
        ),
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
