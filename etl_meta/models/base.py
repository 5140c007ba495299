"""The metadata every etl-meta table belongs to, and what all models share.

etl-meta's tables live in their own :class:`~sqlalchemy.MetaData` (not ``SQLModel.metadata``),
so an application that also defines SQLModel tables neither sees ours in its ``create_all`` nor
changes our constraint names. The naming convention is set before any table class exists, so
every constraint and index has a stable, predictable name that migrations can refer to.
"""

from __future__ import annotations

from typing import Any, ClassVar

import sqlalchemy as sa
from pydantic import field_serializer
from sqlalchemy.orm import registry
from sqlmodel import Field, SQLModel

from etl_meta.masking import mask_value
from etl_meta.types import UTCDateTime, utcnow

NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_N_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
mapper_registry = registry(metadata=metadata)


class EtlModel(SQLModel, registry=mapper_registry):
    """Root of every etl-meta model, table or schema.

    ``repr``/``str`` mask secret values in any field listed in ``_masked_fields``.

    Table primary keys are typed ``id: int`` with a ``None`` default: the database assigns them
    at the INSERT, and every row the store reads or hands on has one. Typing them ``int | None``
    would make each use of a stored row's id narrow away a ``None`` that cannot occur.
    """

    # Pydantic quotes offending input in its error text by default; input may hold secrets.
    # Plain dicts here and in the subclasses: SQLModel types ``model_config`` as its own
    # TypedDict (ConfigDict plus ``table`` and ``registry``), which a ``ConfigDict(...)`` is not.
    model_config = {"hide_input_in_errors": True}

    #: Fields holding configuration-like JSON whose secret values must never be shown.
    _masked_fields: ClassVar[tuple[str, ...]] = ()

    def _component_type_for_masking(self) -> str | None:
        return getattr(self, "component_type", None)

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name in self._masked_fields:
                value = mask_value(value, component_type=self._component_type_for_masking())
            yield name, value


class InputModel(EtlModel):
    """Root of what callers hand the store: the ``*Create``, ``*Update`` and ``*Upsert`` models
    and metric points.

    Unknown keys are refused, not dropped: ``{"retries": 3}`` would otherwise store the default
    and say nothing. Table models never inherit this config: they are built from validated input
    and from rows, and SQLModel validates neither on ``__init__``. A family whose fields a table
    shares (``JobFields``) adds this class as a second base of its input model only.
    """

    model_config = {"extra": "forbid"}


class PublicModel(EtlModel):
    """What callers get back: detached, serializable, secrets masked in JSON and dumps.

    Timestamps serialize as ISO-8601 in UTC (``2026-01-01T00:00:00Z``).
    """

    model_config = {"from_attributes": True}

    @field_serializer("*", mode="wrap", when_used="always", check_fields=False)
    def _mask_secrets(self, value: Any, handler: Any, info: Any) -> Any:
        # A wrap serializer keeps pydantic's own handling (nested include/exclude, ISO-8601 'Z'
        # timestamps) and only post-processes the configuration-like fields.
        serialized = handler(value)
        if info.field_name in self._masked_fields:
            return mask_value(serialized, component_type=self._component_type_for_masking())
        return serialized


def table_of(model: type[SQLModel]) -> sa.Table:
    """The table a SQLModel class maps (mypy sees no ``__table__`` on SQLModel classes)."""
    table = sa.inspect(model).local_table
    assert isinstance(table, sa.Table)
    return table


def created_at_field() -> Any:
    """``created_at``: set once by the store, aware UTC."""
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)


def updated_at_field() -> Any:
    """``updated_at``: bumped by the store on every change, aware UTC."""
    return Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
