"""Dependencies and dataclass links of components: replaced whole, checked for cycles."""

from __future__ import annotations

from collections.abc import Iterable
from graphlib import CycleError, TopologicalSorter

from sqlalchemy.orm import Session

from etl_meta.errors import ConflictError, ValidationError
from etl_meta.models import Component, ComponentStatus, DataclassRole, Job
from etl_meta.repository import components as repo
from etl_meta.repository import dataclasses as dataclasses_repo


def replace_dependencies(
    session: Session,
    job: Job,
    component: Component,
    names: Iterable[str],
    by_name: dict[str, Component],
    prefix: str = "",
) -> None:
    upstream_ids = []
    for name in names:
        upstream = by_name.get(name)
        if upstream is None or upstream.status == ComponentStatus.ARCHIVED:
            raise ValidationError.single(
                f"{prefix}depends_on",
                f"no live component {name!r} in job {job.name!r} "
                "(dependencies stay within one job)",
                entity="component",
            )
        if upstream.id == component.id:
            raise ValidationError.single(
                f"{prefix}depends_on", "a component cannot depend on itself", entity="component"
            )
        upstream_ids.append(upstream.id)
    repo.set_dependencies(session, component, upstream_ids)


def replace_links(
    session: Session,
    component: Component,
    inputs: Iterable[str] | None,
    outputs: Iterable[str] | None,
    prefix: str = "",
) -> None:
    for role, names in ((DataclassRole.INPUT, inputs), (DataclassRole.OUTPUT, outputs)):
        if names is None:
            continue
        wanted = list(names)
        ids = dataclasses_repo.dataclass_ids(session, wanted)
        missing = sorted(set(wanted) - ids.keys())
        if missing:
            raise ValidationError.single(
                f"{prefix}{role.value}s",
                f"unknown or archived dataclass(es): {', '.join(missing)}",
                entity="component",
            )
        repo.set_dataclass_links(session, component, role, ids.values())


def check_acyclic(session: Session, job: Job) -> None:
    graph: dict[int, set[int]] = {}
    for component_id, upstream_id in repo.dependency_edges(session, job.id):
        graph.setdefault(component_id, set()).add(upstream_id)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        ids = exc.args[1]
        names = {c.id: c.name for c in repo.components_by_name(session, job.id).values()}
        cycle = " -> ".join(names.get(i, str(i)) for i in reversed(ids))
        raise ConflictError(
            f"dependency cycle in job {job.name!r}: {cycle}",
            entity="component",
            field="depends_on",
        ) from None


def refuse_if_depended_on(session: Session, job: Job, component: Component) -> None:
    by_id = {c.id: c for c in repo.components_by_name(session, job.id).values()}
    dependants = sorted(
        by_id[child].name
        for child, upstream in repo.dependency_edges(session, job.id)
        if upstream == component.id and by_id[child].status != ComponentStatus.ARCHIVED
    )
    if dependants:
        raise ConflictError(
            f"cannot archive {job.name}.{component.name}: {', '.join(dependants)} depend(s) on it",
            entity="component",
            field="status",
        )
