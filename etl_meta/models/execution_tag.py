"""Run tags: ``key=value`` annotations on executions, from orchestrators and from people."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated

import sqlalchemy as sa
from pydantic import AfterValidator
from sqlmodel import Field

from etl_meta.models.base import EtlModel, InputModel, created_at_field, updated_at_field
from etl_meta.types import string_enum
from etl_meta.validation import check_tag_key, check_text

#: Longest run tag key: Dagster's and Kubernetes-style keys (``app.kubernetes.io/name``) fit.
RUN_TAG_KEY_MAX = 255
#: Longest run tag value (MLflow keeps 8,000; a note or a JSON conf entry fits in 5,000).
RUN_TAG_VALUE_MAX = 5000
#: Most tags one run may carry: a bound on what one write and one ``runs show`` hold.
MAX_RUN_TAGS = 200


class TagSource(StrEnum):
    """Who wrote a run tag: the run's orchestrator (the values of
    :class:`~etl_meta.models.enums.Orchestrator`) or a person (``runs tag``)."""

    DAGSTER = "dagster"
    AIRFLOW = "airflow"
    MANUAL = "manual"
    USER = "user"


def check_run_tag_key(value: str) -> str:
    """``team``, ``dagster/schedule_name``, ``conf.experiment``: what filters name bare; a job
    tag's rules, with room for longer keys."""
    return check_tag_key(value, max_length=RUN_TAG_KEY_MAX)


def check_run_tag_value(value: str) -> str:
    """Any storable text up to :data:`RUN_TAG_VALUE_MAX` characters (empty allowed)."""
    if len(value) > RUN_TAG_VALUE_MAX:
        raise ValueError(f"must be at most {RUN_TAG_VALUE_MAX} characters")
    return check_text(value)


RunTagKey = Annotated[str, AfterValidator(check_run_tag_key)]
RunTagValue = Annotated[str, AfterValidator(check_run_tag_value)]


class ExecutionTag(EtlModel, table=True):
    """One tag of one run. A person's tag is never overwritten by an orchestrator's replay."""

    __tablename__ = "execution_tag"
    __table_args__ = (
        # ``run_tag.<key> = 'value'`` filters probe this; the run's own tags are its primary key.
        sa.Index("ix_execution_tag_key_value", "key", "value"),
    )

    execution_id: int = Field(
        sa_column=sa.Column(
            sa.ForeignKey("execution.id", ondelete="CASCADE"), primary_key=True, nullable=False
        )
    )
    key: str = Field(sa_column=sa.Column(sa.String(RUN_TAG_KEY_MAX), primary_key=True))
    value: str = Field(sa_column=sa.Column(sa.Text, nullable=False))
    source: TagSource = Field(sa_type=string_enum(TagSource, "tag_source", length=16))
    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class RunTagsSet(InputModel):
    """What ``store.executions.tag`` takes: a person's tags."""

    tags: dict[RunTagKey, RunTagValue] = Field(max_length=MAX_RUN_TAGS)


class RunTagsRemove(InputModel):
    """What ``store.executions.untag`` takes: the keys of a person's tags to remove."""

    remove: list[RunTagKey] = Field(max_length=MAX_RUN_TAGS)
