"""Dataclasses: the shapes of the data components exchange (a schema and validation rules).

The module is named ``dataclass_`` so it does not shadow the standard library's ``dataclasses``.
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from etl_meta.models.base import (
    EtlModel,
    InputModel,
    PublicModel,
    created_at_field,
    updated_at_field,
)
from etl_meta.types import JSONDocument
from etl_meta.validation import Identifier, JSONObject, SafeText, TypeName


class DataclassFields(EtlModel):
    """The fields a caller sets on a dataclass.

    ``schema_definition`` describes columns, e.g. ``{"columns": {"order_id": "int64"}}``;
    ``validation_rules`` holds the checks run against data of this shape.
    """

    name: Identifier = Field(max_length=63)
    dataclass_type: TypeName = Field(default="table", max_length=100)
    schema_definition: JSONObject = Field(default_factory=dict, sa_type=JSONDocument)
    validation_rules: JSONObject = Field(default_factory=dict, sa_type=JSONDocument)
    description: SafeText | None = Field(default=None, max_length=4000)


class DataclassesBase(DataclassFields):
    """The dataclass contract: name, type, schema, rules and timestamps."""

    created_at: datetime = created_at_field()
    updated_at: datetime = updated_at_field()


class Dataclass(DataclassesBase, table=True):
    __tablename__ = "dataclass"
    __table_args__ = (
        sa.UniqueConstraint("name"),
        sa.CheckConstraint("version >= 1", name="version_positive"),
    )

    # None only until the INSERT is flushed (see EtlModel).
    id: int = Field(default=None, primary_key=True)
    version: int = Field(default=1, description="Bumped when the schema or rules change.")
    is_archived: bool = Field(default=False)


class DataclassCreate(DataclassFields, InputModel):
    """Input of ``store.dataclasses.create``."""


class DataclassUpdate(InputModel):
    """Input of ``store.dataclasses.update``: only the fields that are set change."""

    dataclass_type: TypeName | None = Field(default=None, max_length=100)
    schema_definition: JSONObject | None = None
    validation_rules: JSONObject | None = None
    description: SafeText | None = Field(default=None, max_length=4000)


class DataclassPublic(DataclassesBase, PublicModel):
    """A dataclass as callers see it."""

    id: int
    version: int
    is_archived: bool
