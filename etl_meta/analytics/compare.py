"""Compare two runs: metrics side by side, and which configuration changed, field by field.

"What changed since the last green run?" is :func:`changes_since_last_success`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from etl_meta.analytics.metrics import metrics_frame
from etl_meta.masking import mask_value
from etl_meta.models import ExecutionPublic, ExecutionStatus
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd

_MISSING = "<absent>"


@dataclass(frozen=True)
class ConfigChange:
    """One configuration field that differs between the versions two runs used (masked)."""

    component: str
    field: str
    version_a: int | None
    version_b: int | None
    before: Any
    after: Any


@dataclass(frozen=True)
class RunComparison:
    """Two runs side by side."""

    run_a: ExecutionPublic
    run_b: ExecutionPublic
    #: Per (component, name): the final-attempt value in each run, ``delta`` and ``pct_change``.
    metrics: pd.DataFrame
    #: Configuration fields that changed between the runs, secrets masked.
    config_changes: tuple[ConfigChange, ...]
    #: False when a run did not record which configuration versions it used (then
    #: ``config_changes`` is empty because it cannot be known, not because nothing changed).
    config_known: bool = True

    def config_frame(self) -> pd.DataFrame:
        import pandas as pd

        return pd.DataFrame([change.__dict__ for change in self.config_changes])


def compare_runs(store: MetadataStore, a: str | int, b: str | int) -> RunComparison:
    """Compare run ``a`` (the baseline) with run ``b``; each by store id or orchestrator run id."""
    run_a, run_b = store.executions.resolve(a), store.executions.resolve(b)
    known = bool(run_a.config_versions) and bool(run_b.config_versions)
    return RunComparison(
        run_a=run_a,
        run_b=run_b,
        metrics=_metrics_side_by_side(store, run_a, run_b),
        config_changes=tuple(_config_changes(store, run_a, run_b)) if known else (),
        config_known=known,
    )


def last_success_before(store: MetadataStore, run: str | int) -> ExecutionPublic | None:
    """The newest successful run of the same job created before ``run``."""
    target = store.executions.resolve(run)
    earlier = store.executions.list(
        job=target.job_name, status=ExecutionStatus.SUCCESS, before_id=target.id, limit=1
    )
    return earlier[0] if earlier else None


def changes_since_last_success(store: MetadataStore, run: str | int) -> RunComparison | None:
    """``compare_runs(last green run, run)``, or ``None`` when the job never succeeded before."""
    baseline = last_success_before(store, run)
    return compare_runs(store, baseline.id, run) if baseline else None


def _metrics_side_by_side(
    store: MetadataStore, run_a: ExecutionPublic, run_b: ExecutionPublic
) -> pd.DataFrame:
    import pandas as pd

    def latest(run: ExecutionPublic) -> pd.Series:
        points = metrics_frame(store, run=run.id, attempts="final")
        points = points.sort_values(["component", "name", "step", "metric_id"])
        last = points.groupby(["component", "name"], observed=True)["value"].last()
        return last.rename_axis(["component", "name"])

    side = pd.concat([latest(run_a).rename("a"), latest(run_b).rename("b")], axis=1)
    side["delta"] = side["b"] - side["a"]
    side["pct_change"] = side["delta"] / side["a"].where(side["a"] != 0)
    return side.reset_index()


def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, Mapping) and not value and not prefix:
        return {}
    if isinstance(value, Mapping) and value:
        flat: dict[str, Any] = {}
        for key, item in value.items():
            flat.update(_flatten(item, f"{prefix}.{key}" if prefix else str(key)))
        return flat
    return {prefix: value}


def _config_changes(
    store: MetadataStore, run_a: ExecutionPublic, run_b: ExecutionPublic
) -> list[ConfigChange]:
    versions_a = run_a.config_versions or {}
    versions_b = run_b.config_versions or {}
    changes: list[ConfigChange] = []
    for name in sorted(set(versions_a) | set(versions_b)):
        va, vb = versions_a.get(name), versions_b.get(name)
        if va == vb:
            continue
        history = {
            h.version: h
            for h in store.components.config_history(run_b.job_name, name)
            if h.version in (va, vb)
        }
        component_type = next(iter(history.values())).component_type if history else None
        before = _shown_fields(history[va].configuration, component_type) if va in history else {}
        after = _shown_fields(history[vb].configuration, component_type) if vb in history else {}
        for field in sorted(set(before) | set(after)):
            old, old_raw = before.get(field, (_MISSING, None))
            new, new_raw = after.get(field, (_MISSING, None))
            # Compare what was configured, show it masked: a rotated secret is a change too
            # (reported as *** -> ***), and its value never leaves this function.
            if old_raw != new_raw:
                changes.append(ConfigChange(name, field, va, vb, old, new))
    return changes


def _shown_fields(
    configuration: Any, component_type: str | None
) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Per field as displayed (flattened, masked): the masked value and the raw values under it.

    A secret key holding a mapping is one masked field covering every raw field below it.
    """
    raw = _flatten(configuration)
    shown = _flatten(mask_value(configuration, component_type=component_type))
    return {
        field: (value, {k: v for k, v in raw.items() if k == field or k.startswith(field + ".")})
        for field, value in shown.items()
    }
