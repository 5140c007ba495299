"""Apply a definitions file's ``retention:`` section: the complete set of stored policies.

As with a job's ``components:`` list, a present section is complete: the default and every
override it declares are stored, and a stored override (or default) it no longer declares is
removed, so that job falls back to the default. A file without the key leaves the policies
alone, as a file leaves jobs it does not mention alone. A job dropped from ``jobs:`` but still
named under ``retention.jobs`` keeps its override: its runs are still in the store.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from etl_meta.definitions.errors import DefinitionsError

if TYPE_CHECKING:
    from etl_meta.definitions.apply import StoreErrorReporter
    from etl_meta.definitions.plan import Action, Plan
    from etl_meta.definitions.spec import RetentionSpec
    from etl_meta.store import MetadataStore

DEFAULT = "default"


def sync_retention(
    store: MetadataStore, spec: RetentionSpec, plan: Plan, report: StoreErrorReporter
) -> None:
    """Make the stored policies exactly ``spec``'s, recording each in ``plan``."""
    problems = [
        report.problem(
            ("retention", "jobs", job),
            f"unknown job {job!r} (declare it under 'jobs' or create it first)",
        )
        for job in spec.jobs
        if not store.jobs.exists(job)
    ]
    if problems:
        raise DefinitionsError(problems, source=report.source_map.source)
    stored = {policy.job or DEFAULT: policy for policy in store.retention.list()}
    if spec.default is not None:
        with report.at(("retention", "default")):
            changed = store.retention.set_default(spec.default.model_dump())
        plan.add("retention", DEFAULT, _action(DEFAULT in stored, changed))
    elif DEFAULT in stored:
        store.retention.remove_default()
        plan.add("retention", DEFAULT, "removed")
    for job, override in spec.jobs.items():
        with report.at(("retention", "jobs", job)):
            changed = store.retention.set_job(job, override.model_dump())
        plan.add("retention", job, _action(job in stored, changed))
    for job in sorted(set(stored) - set(spec.jobs) - {DEFAULT}):
        store.retention.remove_job(job)
        plan.add("retention", job, "removed")


def _action(existed: bool, changed: bool) -> Action:
    if not existed:
        return "created"
    return "updated" if changed else "unchanged"
