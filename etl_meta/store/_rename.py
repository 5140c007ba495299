"""Renaming a component in place: same row, same id, so everything recorded about it follows.

Configuration versions, dependency edges, dataclass links, step attempts and metric points all
refer to the component's id, never its name; changing ``component.name`` is therefore the whole
rename. The alternative (archive the old component, create a new one) would split its history.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from etl_meta.errors import AlreadyExistsError
from etl_meta.repository import components as repo
from etl_meta.repository.jobs import touch_job
from etl_meta.store._base import record_change
from etl_meta.types import utcnow
from etl_meta.validation import Identifier

if TYPE_CHECKING:
    from sqlalchemy.orm import Session

    from etl_meta.models import Component, Job
    from etl_meta.store.core import MetadataStore


class ComponentRename(BaseModel):
    """The new name of a component: the same rules as a new component's name."""

    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    name: Identifier = Field(max_length=63)


def rename_component(
    store: MetadataStore, session: Session, job: Job, old: str, new: str
) -> Component:
    """Rename ``job``'s component ``old`` to ``new`` (already validated) and audit it.

    Renaming to the current name changes nothing. Raises :class:`NotFoundError` for an unknown
    ``old`` and :class:`AlreadyExistsError` when ``new`` is taken, archived components included
    (their names stay reserved: their history still answers to them).
    """
    component = repo.get_component(session, job.id, old, job_name=job.name)
    if old == new:
        return component
    if repo.find_component(session, job.id, new) is not None:
        raise AlreadyExistsError("component", f"{job.name}.{new}")
    component.name = new
    component.updated_at = utcnow()
    # Orchestrators key their step names on component names: the new revision tells them to
    # reload the job's definition.
    touch_job(job)
    record_change(
        store,
        session,
        action="rename",
        entity_type="component",
        entity_key=f"{job.name}.{new}",
        entity_id=component.id,
        before={"name": old},
        after={"name": new},
        component_type=component.component_type,
    )
    session.flush()
    return component
