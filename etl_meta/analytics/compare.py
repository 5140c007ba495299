"""Compare two runs: metrics side by side, which configuration changed field by field, and
which run tags differ.

"What changed since the last green run?" is :func:`changes_since_last_success`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from etl_meta.analytics.metrics import metrics_frame
from etl_meta.masking import mask_value
from etl_meta.models import ExecutionPublic, ExecutionStatus
from etl_meta.repository import components as components_repo
from etl_meta.repository import jobs as jobs_repo
from etl_meta.secrets import SecretDecryptError
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd
    from sqlalchemy.orm import Session

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
class TagChange:
    """A run tag that differs between two runs (``None``: the run does not carry it)."""

    key: str
    a: str | None
    b: str | None


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
    #: Run tags whose values differ (or that one run lacks), by key.
    tag_changes: tuple[TagChange, ...] = ()

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
        tag_changes=tag_changes(run_a, run_b),
    )


def tag_changes(run_a: ExecutionPublic, run_b: ExecutionPublic) -> tuple[TagChange, ...]:
    """The run tags that differ between ``run_a`` and ``run_b``, by key."""
    keys = sorted(set(run_a.tags) | set(run_b.tags))
    return tuple(
        TagChange(key, run_a.tags.get(key), run_b.tags.get(key))
        for key in keys
        if run_a.tags.get(key) != run_b.tags.get(key)
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
    same_job = run_a.job_name == run_b.job_name
    changes: list[ConfigChange] = []
    # One read transaction for every version; the plaintext read in it never leaves this
    # function (only masked values do), so no ``decrypt`` event is written: nothing is revealed.
    with store.transaction(readonly=True) as session:
        for name in sorted(set(versions_a) | set(versions_b)):
            va, vb = versions_a.get(name), versions_b.get(name)
            if same_job and va == vb:
                continue
            before = _version_fields(store, session, run_a.job_name, name, va)
            after = _version_fields(store, session, run_b.job_name, name, vb)
            for field in sorted(set(before) | set(after)):
                old, old_plain = before.get(field, (_MISSING, None))
                new, new_plain = after.get(field, (_MISSING, None))
                # Compare plaintext, show it masked: a rotated secret is a change (*** -> ***),
                # an unchanged one re-encrypted into a new version is not (Fernet tokens differ
                # on every encryption, so ciphertext would always differ).
                if old_plain != new_plain:
                    changes.append(ConfigChange(name, field, va, vb, old, new))
    return changes


def _version_fields(
    store: MetadataStore, session: Session, job: str, name: str, version: int | None
) -> dict[str, tuple[Any, dict[str, Any]]]:
    """:func:`_shown_fields` of version ``version`` of ``job``'s component ``name``.

    Empty when the run used no such version or the job has no component of that name (any
    more: renamed; or a run of another job), so its fields compare as ``<absent>``.
    """
    if version is None:
        return {}
    job_row = jobs_repo.find_job(session, job)
    component = components_repo.find_component(session, job_row.id, name) if job_row else None
    if component is None:
        return {}
    if version == component.config_version:
        stored = component.configuration
    else:
        row = components_repo.find_config_version(session, component.id, version)
        if row is None:
            return {}
        stored = row.configuration
    component_type = component.component_type
    return _shown_fields(stored, _plaintext(store, stored, component_type), component_type)


def _plaintext(store: MetadataStore, stored: Any, component_type: str | None) -> Any:
    """``stored`` with its secrets decrypted, for comparing only; never returned to callers.

    A secret this process cannot decrypt (no key, or no matching one) stays ciphertext, which
    compares unequal to anything: reported as changed rather than hidden.
    """
    try:
        return store.cipher.decrypt_document(stored, component_type=component_type)
    except SecretDecryptError:
        return stored


def _shown_fields(
    stored: Any, plaintext: Any, component_type: str | None
) -> dict[str, tuple[Any, dict[str, Any]]]:
    """Per field as displayed (flattened, masked): the masked value and the plaintext under it.

    A secret key holding a mapping is one masked field covering every plaintext field below it.
    A URL secret (``connection_url``) shows with only its password masked, and compares by its
    whole plaintext, password included.
    """
    raw = _flatten(plaintext)
    shown = _flatten(mask_value(stored, component_type=component_type))
    return {
        field: (value, {k: v for k, v in raw.items() if k == field or k.startswith(field + ".")})
        for field, value in shown.items()
    }
