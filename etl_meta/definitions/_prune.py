"""``apply --prune``: archive the live jobs and dataclasses a definitions file does not declare.

With ``--prune`` the file is the whole truth: after apply, the live jobs are exactly those it
declares, and the live dataclasses exactly those it declares. A pruned dataclass must then not be
in use by a component that stays live, so such a prune is refused before anything is written,
with the position of each use; the store itself would let it happen (archiving a dataclass keeps
its existing links) and leave a live job reading an archived shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from etl_meta.definitions.errors import DefinitionProblem, DefinitionsError

if TYPE_CHECKING:
    from etl_meta.definitions.apply import StoreErrorReporter
    from etl_meta.definitions.plan import Plan
    from etl_meta.definitions.spec import DefinitionsFile
    from etl_meta.store import MetadataStore


@dataclass(frozen=True)
class Prunes:
    """The live jobs and dataclasses a file does not declare, by name."""

    jobs: tuple[str, ...]
    dataclasses: tuple[str, ...]


def find_prunes(store: MetadataStore, definitions: DefinitionsFile) -> Prunes:
    """What ``--prune`` would archive (already archived entities are left as they are)."""
    jobs = {job.name for job in definitions.jobs}
    dataclasses = {dataclass.name for dataclass in definitions.dataclasses}
    return Prunes(
        jobs=tuple(job.name for job in store.jobs.list() if job.name not in jobs),
        dataclasses=tuple(d.name for d in store.dataclasses.list() if d.name not in dataclasses),
    )


def check_prunes(
    store: MetadataStore,
    definitions: DefinitionsFile,
    prunes: Prunes,
    report: StoreErrorReporter,
) -> None:
    """Refuse to prune a dataclass that a component staying live would still use.

    Such a component is one the file declares naming it in ``inputs``/``outputs`` (reported at
    the name), or a stored live component of a job declared without a ``components:`` key, whose
    components apply leaves alone (reported at the job).

    Raises:
        DefinitionsError: every such use; nothing has been written.
    """
    pruned = set(prunes.dataclasses)
    if not pruned:
        return
    problems: list[DefinitionProblem] = []
    for j_index, job in enumerate(definitions.jobs):
        for c_index, component in enumerate(job.components):
            for role in ("inputs", "outputs"):
                for index, name in enumerate(getattr(component, role)):
                    if name in pruned:
                        path = ("jobs", j_index, "components", c_index, role, index)
                        message = (
                            f"dataclass {name!r} is not declared in this file, so --prune would "
                            "archive it while this component uses it (declare it under "
                            "'dataclasses')"
                        )
                        problems.append(report.problem(path, message))
        if "components" in job.model_fields_set or not store.jobs.exists(job.name):
            continue
        for stored in store.components.list(job.name):
            for name in sorted({*stored.inputs, *stored.outputs} & pruned):
                message = (
                    f"dataclass {name!r} is not declared in this file, so --prune would archive "
                    f"it while component {job.name}.{stored.name} uses it (declare the dataclass, "
                    "or list the job's components)"
                )
                problems.append(report.problem(("jobs", j_index), message))
    if problems:
        raise DefinitionsError(problems, source=report.source_map.source)


def apply_prunes(store: MetadataStore, prunes: Prunes, plan: Plan) -> None:
    """Archive the pruned jobs, then the pruned dataclasses; each gets a plan line."""
    for name in prunes.jobs:
        store.jobs.archive(name)
        plan.add("job", name, "archived")
    for name in prunes.dataclasses:
        store.dataclasses.archive(name)
        plan.add("dataclass", name, "archived")
