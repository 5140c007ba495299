"""Portable column types: the same Python values on SQLite and PostgreSQL.

* :class:`UTCDateTime` accepts only timezone-aware datetimes, stores UTC, and reads back aware on
  SQLite too (SQLite has no timezone type; SQLAlchemy would hand back naive values).
* :data:`JSONDocument` is ``JSON`` everywhere and ``JSONB`` on PostgreSQL (indexable, compact).
* :func:`string_enum` stores an enum by value in a ``VARCHAR`` with a named ``CHECK`` instead of a
  native PostgreSQL enum, which cannot be altered inside a transaction and is awkward to migrate.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, TypeVar

import sqlalchemy as sa
from pydantic import BeforeValidator
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect

E = TypeVar("E", bound=enum.Enum)


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timestamp that must be timezone-aware in and is always UTC-aware out."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if not isinstance(value, datetime):
            raise TypeError(f"expected a datetime, got {type(value).__name__}")
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError("naive datetime rejected: pass a timezone-aware datetime")
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            # Stored as ISO text in UTC; a fixed format keeps lexical order == time order.
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


#: JSON document column: ``JSONB`` on PostgreSQL, ``JSON`` (text) elsewhere.
JSONDocument = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

#: 64-bit integer primary keys on PostgreSQL; SQLite needs ``INTEGER`` for rowid auto-increment.
BigIntPK = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def string_enum(enum_cls: type[enum.Enum], name: str, length: int = 32) -> sa.Enum:
    """A string column restricted to ``enum_cls``'s values by a ``CHECK`` named ``name``."""
    return sa.Enum(
        enum_cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        validate_strings=True,
        values_callable=lambda members: [m.value for m in members],
    )


def utcnow() -> datetime:
    """Now, timezone-aware UTC. The single clock every default uses."""
    return datetime.now(UTC)


def lenient_enum(enum_cls: type[enum.Enum]) -> BeforeValidator:
    """The validator of ``Annotated[enum_cls, lenient_enum(enum_cls)]``: a field that accepts
    values and member names in any letter case.

    It returns the validator, not the ``Annotated`` type, so each field alias is spelled out
    where it is defined and type checkers see a real type, not a call.
    """

    def _coerce(value: Any) -> Any:
        try:
            return coerce_enum(enum_cls, value)
        except ValueError:
            return value  # pydantic then reports the allowed values

    return BeforeValidator(_coerce)


def coerce_enum(enum_cls: type[E], value: Any) -> E:
    """``enum_cls(value)`` that also accepts member names and any letter case."""
    if isinstance(value, enum_cls):
        return value
    if isinstance(value, str):
        lowered = value.strip().lower()
        for member in enum_cls:
            if member.value == lowered or member.name.lower() == lowered:
                return member
    return enum_cls(value)
