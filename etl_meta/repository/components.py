"""Components, their configuration history, dependency edges and dataclass links.

:func:`load_components` is the one way stored components are read back whole (with their
dependencies and dataclass links): ``store.components``, ``store.jobs`` (``with_components``)
and through them the catalog orchestrators build from and ``etl-meta apply`` all go through it.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session, aliased
from sqlmodel import col

from etl_meta.errors import NotFoundError
from etl_meta.models import (
    Component,
    ComponentConfig,
    ComponentDataclass,
    ComponentDependency,
    ComponentPublic,
    ComponentStatus,
    Dataclass,
    DataclassRole,
)
from etl_meta.validation import storable


def find_component(session: Session, job_id: int, name: str) -> Component | None:
    """The component ``name`` of job ``job_id``, or ``None``."""
    if not storable(name):
        return None
    return session.scalars(
        sa.select(Component).where(col(Component.job_id) == job_id, col(Component.name) == name)
    ).one_or_none()


def get_component(session: Session, job_id: int, name: str, *, job_name: str) -> Component:
    """The component ``name`` of job ``job_id``; raises :class:`NotFoundError`."""
    component = find_component(session, job_id, name)
    if component is None:
        raise NotFoundError("component", f"{job_name}.{name}")
    return component


def list_components(
    session: Session, job_ids: Iterable[int], *, include_archived: bool = False
) -> Sequence[Component]:
    """Components of the given jobs, in creation order."""
    query = sa.select(Component).where(col(Component.job_id).in_(list(job_ids)))
    if not include_archived:
        query = query.where(col(Component.status) != ComponentStatus.ARCHIVED)
    return session.scalars(query.order_by(col(Component.id))).all()


def components_by_name(session: Session, job_id: int) -> dict[str, Component]:
    """Every component of the job (archived too), by name."""
    rows = session.scalars(sa.select(Component).where(col(Component.job_id) == job_id))
    return {component.name: component for component in rows}


def add_config_version(
    session: Session, component: Component, configuration: dict[str, Any], *, actor: str
) -> int:
    """Store ``configuration`` as the component's next version and make it current."""
    assert component.id is not None
    latest = session.scalar(
        sa.select(sa.func.max(col(ComponentConfig.version))).where(
            col(ComponentConfig.component_id) == component.id
        )
    )
    version = (latest or 0) + 1
    session.add(
        ComponentConfig(
            component_id=component.id,
            version=version,
            configuration=configuration,
            created_by=actor,
        )
    )
    component.configuration = configuration
    component.config_version = version
    session.flush()
    return version


def config_history(session: Session, component_id: int) -> Sequence[ComponentConfig]:
    """Every configuration version of a component, oldest first."""
    return session.scalars(
        sa.select(ComponentConfig)
        .where(col(ComponentConfig.component_id) == component_id)
        .order_by(col(ComponentConfig.version))
    ).all()


def find_config_version(
    session: Session, component_id: int, version: int
) -> ComponentConfig | None:
    """One configuration version of a component, or ``None``."""
    return session.scalars(
        sa.select(ComponentConfig).where(
            col(ComponentConfig.component_id) == component_id,
            col(ComponentConfig.version) == version,
        )
    ).one_or_none()


def dependency_edges(session: Session, job_id: int) -> list[tuple[int, int]]:
    """``(component_id, depends_on_id)`` for every edge between components of the job."""
    rows = session.execute(
        sa.select(col(ComponentDependency.component_id), col(ComponentDependency.depends_on_id))
        .join(Component, col(Component.id) == ComponentDependency.component_id)
        .where(col(Component.job_id) == job_id)
    )
    return [(a, b) for a, b in rows]


def set_dependencies(session: Session, component: Component, depends_on_ids: Iterable[int]) -> None:
    """Replace the component's upstream set (the caller has checked job and cycles)."""
    session.execute(
        sa.delete(ComponentDependency).where(col(ComponentDependency.component_id) == component.id)
    )
    for upstream_id in sorted(set(depends_on_ids)):
        session.add(ComponentDependency(component_id=component.id, depends_on_id=upstream_id))
    session.flush()


def dependency_names(session: Session, component_ids: Iterable[int]) -> dict[int, list[str]]:
    """``{component_id: [upstream names]}`` in one query."""
    ids = list(component_ids)
    result: dict[int, list[str]] = defaultdict(list)
    if not ids:
        return result
    upstream = aliased(Component)
    rows = session.execute(
        sa.select(col(ComponentDependency.component_id), col(upstream.name))
        .join(upstream, col(upstream.id) == ComponentDependency.depends_on_id)
        .where(col(ComponentDependency.component_id).in_(ids))
        .order_by(col(upstream.name))
    )
    for component_id, name in rows:
        result[component_id].append(name)
    return result


def set_dataclass_links(
    session: Session, component: Component, role: DataclassRole, dataclass_ids: Iterable[int]
) -> None:
    """Replace which dataclasses the component reads (``input``) or writes (``output``)."""
    session.execute(
        sa.delete(ComponentDataclass).where(
            col(ComponentDataclass.component_id) == component.id,
            col(ComponentDataclass.role) == role,
        )
    )
    for dataclass_id in sorted(set(dataclass_ids)):
        session.add(
            ComponentDataclass(component_id=component.id, dataclass_id=dataclass_id, role=role)
        )
    session.flush()


def dataclass_links(
    session: Session, component_ids: Iterable[int]
) -> dict[int, dict[DataclassRole, list[str]]]:
    """``{component_id: {role: [dataclass names]}}`` in one query."""
    ids = list(component_ids)
    result: dict[int, dict[DataclassRole, list[str]]] = defaultdict(lambda: defaultdict(list))
    if not ids:
        return result
    rows = session.execute(
        sa.select(
            col(ComponentDataclass.component_id), col(ComponentDataclass.role), col(Dataclass.name)
        )
        .join(Dataclass, col(Dataclass.id) == ComponentDataclass.dataclass_id)
        .where(col(ComponentDataclass.component_id).in_(ids))
        .order_by(col(Dataclass.name))
    )
    for component_id, role, name in rows:
        result[component_id][DataclassRole(role)].append(name)
    return result


def load_component(session: Session, component: Component, *, job_name: str) -> ComponentPublic:
    """``component`` as callers receive it: with its upstream names and dataclass links."""
    return _public(
        component,
        job_name=job_name,
        depends_on=dependency_names(session, [component.id])[component.id],
        links=dataclass_links(session, [component.id])[component.id],
    )


def load_components(
    session: Session, job_names: Mapping[int, str], *, include_archived: bool = False
) -> dict[int, list[ComponentPublic]]:
    """``{job id: its components}`` for the jobs in ``job_names`` (``{id: name}``), in creation
    order, with upstream names and dataclass links: three queries however many components."""
    components = list_components(session, job_names, include_archived=include_archived)
    ids = [c.id for c in components]
    deps = dependency_names(session, ids)
    links = dataclass_links(session, ids)
    result: dict[int, list[ComponentPublic]] = {}
    for c in components:
        result.setdefault(c.job_id, []).append(
            _public(c, job_name=job_names[c.job_id], depends_on=deps[c.id], links=links[c.id])
        )
    return result


def _public(
    component: Component,
    *,
    job_name: str,
    depends_on: Sequence[str],
    links: dict[DataclassRole, list[str]],
) -> ComponentPublic:
    data = component.model_dump()
    data.update(
        job_name=job_name,
        depends_on=list(depends_on),
        inputs=list(links.get(DataclassRole.INPUT, [])),
        outputs=list(links.get(DataclassRole.OUTPUT, [])),
    )
    return ComponentPublic.model_validate(data)
