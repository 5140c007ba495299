"""Jobs and their tags."""

# No `from __future__ import annotations`: SQLModel resolves relationship annotations at
# class creation and cannot parse postponed ones.
from datetime import datetime
from typing import TYPE_CHECKING, Annotated

import sqlalchemy as sa
from pydantic import StrictBool, StrictInt
from sqlmodel import Field, Relationship

from etl_meta.models.base import (
    EtlModel,
    InputModel,
    PublicModel,
    created_at_field,
    updated_at_field,
)
from etl_meta.models.enums import StrategyType
from etl_meta.types import lenient_enum, string_enum
from etl_meta.validation import Identifier, SafeText, TagKey

if TYPE_CHECKING:
    from etl_meta.models.component import Component, ComponentPublic

MAX_RETRIES = 100
StrategyTypeField = Annotated[StrategyType, lenient_enum(StrategyType)]


class JobTag(EtlModel, table=True):
    """Link table: which tags a job carries."""

    __tablename__ = "job_tag"

    job_id: int = Field(
        sa_column=sa.Column(sa.ForeignKey("job.id", ondelete="CASCADE"), primary_key=True)
    )
    tag_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("tag.id", ondelete="CASCADE"), primary_key=True, index=True
        )
    )


class TagBase(EtlModel):
    """A ``key=value`` label (``team=finance``). One row per distinct pair, shared by jobs."""

    key: TagKey = Field(max_length=63)
    value: SafeText = Field(default="", max_length=255)


class Tag(TagBase, table=True):
    __tablename__ = "tag"
    __table_args__ = (sa.UniqueConstraint("key", "value"),)

    # None only until the INSERT is flushed (see EtlModel).
    id: int = Field(default=None, primary_key=True)
    jobs: list["Job"] = Relationship(back_populates="tags", link_model=JobTag)


class JobFields(EtlModel):
    """The fields a caller sets on a job.

    Integers and booleans are strict (no ``True`` → 1, ``"3"`` → 3, ``"yes"`` → True): a value
    of the wrong type is a caller's mistake to report, not to guess at.
    """

    name: Identifier = Field(max_length=63)
    num_of_retries: StrictInt = Field(default=0, ge=0, le=MAX_RETRIES)
    file_logging: StrictBool = False
    strategy_type: StrategyTypeField = Field(
        default=StrategyType.SEQUENTIAL,
        sa_type=string_enum(StrategyType, "strategy_type", length=16),
    )
    description: SafeText | None = Field(default=None, max_length=4000)
    max_concurrency: StrictInt | None = Field(
        default=None, ge=1, le=64, description="Parallel steps at most (parallel strategy only)."
    )


class JobBase(JobFields):
    """The job contract: name, retries, file logging, strategy and timestamps."""

    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class Job(JobBase, table=True):
    __tablename__ = "job"
    __table_args__ = (
        sa.UniqueConstraint("name"),
        sa.CheckConstraint(
            f"num_of_retries >= 0 AND num_of_retries <= {MAX_RETRIES}", name="num_of_retries_range"
        ),
        sa.CheckConstraint("revision >= 1", name="revision_positive"),
    )

    # None only until the INSERT is flushed (see EtlModel).
    id: int = Field(default=None, primary_key=True)
    revision: int = Field(default=1, description="Bumped on every change to the job's definition.")
    is_archived: bool = Field(default=False)

    components: list["Component"] = Relationship(
        back_populates="job", sa_relationship_kwargs={"order_by": "Component.id"}
    )
    tags: list["Tag"] = Relationship(back_populates="jobs", link_model=JobTag)


class JobCreate(JobFields, InputModel):
    """Input of ``store.jobs.create``; tags are ``{key: value}``."""

    tags: dict[str, str] = Field(default_factory=dict)


class JobUpdate(InputModel):
    """Input of ``store.jobs.update``: only the fields that are set change."""

    num_of_retries: StrictInt | None = Field(default=None, ge=0, le=MAX_RETRIES)
    file_logging: StrictBool | None = None
    strategy_type: StrategyTypeField | None = None
    description: SafeText | None = Field(default=None, max_length=4000)
    max_concurrency: StrictInt | None = Field(default=None, ge=1, le=64)
    tags: dict[str, str] | None = None


class JobPublic(JobBase, PublicModel):
    """A job as callers see it. ``components`` is filled only when asked for."""

    id: int
    revision: int
    is_archived: bool
    tags: dict[str, str] = Field(default_factory=dict)
    components: list["ComponentPublic"] | None = None
