"""Components (the steps of a job), their configuration history and their dependencies.

``component.configuration`` is the current configuration (the seed's 1:1) and ``config_version``
names its row in ``component_config``, which keeps every version ever stored (1:N history), so a run
can record exactly which configuration it used and analysts can diff two versions.
"""

# No `from __future__ import annotations`: SQLModel resolves relationship annotations at
# class creation and cannot parse postponed ones.
from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, ClassVar

import sqlalchemy as sa
from sqlmodel import Field, Relationship

from etl_meta.models.base import (
    EtlModel,
    InputModel,
    PublicModel,
    created_at_field,
    updated_at_field,
)
from etl_meta.models.enums import ComponentStatus, DataclassRole
from etl_meta.types import JSONDocument, lenient_enum, string_enum
from etl_meta.validation import Identifier, JSONObject, SafeText, TypeName

if TYPE_CHECKING:
    from etl_meta.models.job import Job

ComponentStatusField = Annotated[ComponentStatus, lenient_enum(ComponentStatus)]
DataclassRoleField = Annotated[DataclassRole, lenient_enum(DataclassRole)]


class ComponentDependency(EtlModel, table=True):
    """``component_id`` runs after ``depends_on_id`` (both in the same job; no cycles)."""

    __tablename__ = "component_dependency"
    __table_args__ = (
        sa.CheckConstraint("component_id <> depends_on_id", name="no_self_dependency"),
    )

    component_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("component.id", ondelete="CASCADE"), primary_key=True)
    )
    depends_on_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("component.id", ondelete="CASCADE"), primary_key=True, index=True
        )
    )


class ComponentDataclass(EtlModel, table=True):
    """Which dataclass a component reads (``input``) or writes (``output``)."""

    __tablename__ = "component_dataclass"

    component_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("component.id", ondelete="CASCADE"), primary_key=True)
    )
    dataclass_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("dataclass.id", ondelete="CASCADE"), primary_key=True, index=True
        )
    )
    role: DataclassRoleField = Field(
        sa_column=sa.Column(string_enum(DataclassRole, "role", length=8), primary_key=True)
    )


class ComponentFields(EtlModel):
    """The fields a caller sets on a component."""

    _masked_fields: ClassVar[tuple[str, ...]] = ("configuration",)

    name: Identifier = Field(max_length=63)
    component_type: TypeName = Field(max_length=100)
    configuration: JSONObject = Field(default_factory=dict, sa_type=JSONDocument)
    status: ComponentStatusField = Field(
        default=ComponentStatus.ACTIVE,
        sa_type=string_enum(ComponentStatus, "component_status", length=16),
    )
    description: SafeText | None = Field(default=None, max_length=4000)


class ComponentBase(ComponentFields):
    """The component contract: name, type, configuration, status and timestamps."""

    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class Component(ComponentBase, table=True):
    __tablename__ = "component"
    __table_args__ = (
        sa.UniqueConstraint("job_id", "name"),
        sa.CheckConstraint("config_version >= 1", name="current_version_positive"),
    )

    # None only until the INSERT is flushed (see EtlModel).
    id: int = Field(default=None, primary_key=True)
    job_id: int = Field(sa_column=sa.Column(sa.ForeignKey("job.id"), nullable=False, index=True))
    config_version: int = Field(default=1)

    job: "Job" = Relationship(back_populates="components")
    config_history: list["ComponentConfig"] = Relationship(
        back_populates="component",
        sa_relationship_kwargs={"order_by": "ComponentConfig.version", "passive_deletes": True},
    )
    depends_on: list["Component"] = Relationship(
        link_model=ComponentDependency,
        sa_relationship_kwargs={
            "primaryjoin": "Component.id == ComponentDependency.component_id",
            "secondaryjoin": "Component.id == ComponentDependency.depends_on_id",
            "order_by": "Component.name",
            "viewonly": True,
        },
    )


class ComponentConfig(EtlModel, table=True):
    """One stored version of a component's configuration (version 1 is the first)."""

    __tablename__ = "component_config"
    __table_args__ = (
        sa.UniqueConstraint("component_id", "version"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
    )
    _masked_fields: ClassVar[tuple[str, ...]] = ("configuration",)

    # None only until the INSERT is flushed (see EtlModel).
    id: int = Field(default=None, primary_key=True)
    component_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("component.id", ondelete="CASCADE"), nullable=False)
    )
    version: int
    configuration: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDocument)
    created_at: datetime = created_at_field()
    created_by: str = Field(max_length=200)

    component: "Component" = Relationship(back_populates="config_history")


class ComponentCreate(ComponentFields, InputModel):
    """Input of ``store.components.create``.

    ``depends_on`` names components of the same job; ``inputs``/``outputs`` name dataclasses.
    """

    depends_on: list[Identifier] = Field(default_factory=list)
    inputs: list[Identifier] = Field(default_factory=list)
    outputs: list[Identifier] = Field(default_factory=list)


class ComponentUpdate(InputModel):
    """Input of ``store.components.update``: only the fields that are set change.

    A changed ``configuration`` becomes a new version; an identical one changes nothing.
    """

    _masked_fields: ClassVar[tuple[str, ...]] = ("configuration",)

    component_type: TypeName | None = Field(default=None, max_length=100)
    configuration: JSONObject | None = None
    status: ComponentStatusField | None = None
    description: SafeText | None = Field(default=None, max_length=4000)
    depends_on: list[Identifier] | None = None
    inputs: list[Identifier] | None = None
    outputs: list[Identifier] | None = None


class ComponentPublic(ComponentBase, PublicModel):
    """A component as callers see it; ``configuration`` is masked in dumps, JSON and repr."""

    id: int
    job_id: int
    job_name: str
    config_version: int
    depends_on: list[str] = Field(default_factory=list)
    inputs: list[str] = Field(default_factory=list)
    outputs: list[str] = Field(default_factory=list)


class ComponentConfigPublic(PublicModel):
    """One version of a component's configuration (masked)."""

    _masked_fields: ClassVar[tuple[str, ...]] = ("configuration",)

    component_type: str | None = Field(default=None, exclude=True)
    version: int
    configuration: dict[str, Any]
    created_at: datetime
    created_by: str
