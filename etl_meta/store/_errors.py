"""Turn driver and pydantic errors into etl-meta's typed errors, without leaking values.

PostgreSQL's error DETAIL quotes the offending row ("Failing row contains (…)") and SQLAlchemy's
message quotes statement parameters unless hidden; either may carry a secret. The translated error
keeps only the primary message, SQLSTATE and constraint name, and chains to a sanitized stand-in
for the driver error rather than the driver error itself.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, NoReturn

import pydantic
import sqlalchemy.exc as sa_exc

from etl_meta.components.contracts import did_you_mean
from etl_meta.errors import (
    AlreadyExistsError,
    EtlMetaError,
    FieldProblem,
    IntegrityError,
    PermissionDeniedError,
    StoreUnavailableError,
    ValidationError,
)
from etl_meta.store import _causes
from etl_meta.validation import STRICT_TYPE_MESSAGES, key_label

# SQLSTATE classes that mean "try again": connection failures, serialization failures,
# deadlocks, lock timeouts, admin shutdowns, resource pressure.
_TRANSIENT_SQLSTATE_PREFIXES = ("08", "40", "53", "57P", "55P03", "57014", "25006", "55000")
#: Failures that mean "the store cannot serve you now", retried or not: the transient ones, and
#: a login the server refuses (wrong password, unknown role or database), which waiting won't fix.
_UNAVAILABLE_SQLSTATE_PREFIXES = (*_TRANSIENT_SQLSTATE_PREFIXES, "28", "3D000")
# SQLite reports nearly everything as OperationalError; only these mean "try again".
_TRANSIENT_SQLITE_MESSAGES = (
    "database is locked",
    "database table is locked",
    "unable to open database",
    "disk i/o error",
    "database or disk is full",
)


class DriverError(Exception):
    """A sanitized copy of a driver error: SQLSTATE, constraint and primary message only."""

    def __init__(self, message: str, *, sqlstate: str | None, constraint: str | None) -> None:
        self.sqlstate = sqlstate
        self.constraint = constraint
        super().__init__(message)


def _diagnostics(error: sa_exc.DBAPIError) -> tuple[str, str | None, str | None]:
    orig = error.orig
    diag = getattr(orig, "diag", None)
    if diag is not None:  # psycopg
        # A failed connection has no server message: libpq's text is the only account of why
        # (it names host, port, database and user, never a password; describe() makes sure).
        message = diag.message_primary or _causes.describe(str(orig)) or type(orig).__name__
        return message, diag.sqlstate, diag.constraint_name
    # sqlite3 messages name the constraint or columns but never the values.
    return str(orig).splitlines()[0] if orig else type(error).__name__, None, None


def is_transient(error: BaseException) -> bool:
    """Whether retrying the same transaction may succeed (used by orchestrator writers)."""
    if isinstance(error, StoreUnavailableError):
        return error.transient
    if isinstance(error, DriverError):
        return bool(error.sqlstate and error.sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES))
    cause = error.__cause__
    return cause is not None and cause is not error and is_transient(cause)


def _unavailable(error: sa_exc.DBAPIError, message: str, sqlstate: str | None) -> bool:
    if sqlstate is not None:
        return sqlstate.startswith(_TRANSIENT_SQLSTATE_PREFIXES)
    if error.connection_invalidated or isinstance(error, sa_exc.InterfaceError):
        return True
    if isinstance(error, sa_exc.OperationalError):
        if getattr(error.orig, "diag", None) is not None:
            return True  # psycopg without a SQLSTATE: the connection itself failed
        return message.lower().startswith(_TRANSIENT_SQLITE_MESSAGES)
    return False


def translate_db_error(error: sa_exc.SQLAlchemyError) -> EtlMetaError:
    """The typed error for a SQLAlchemy error, chained to a sanitized :class:`DriverError`."""
    if isinstance(error, sa_exc.DBAPIError):
        message, sqlstate, constraint = _diagnostics(error)
        if isinstance(error, sa_exc.IntegrityError):
            cause = DriverError(message, sqlstate=sqlstate, constraint=constraint)
            translated: EtlMetaError
            if sqlstate == "23505" or message.startswith("UNIQUE constraint failed"):
                translated = AlreadyExistsError(
                    _table_of(constraint, message), constraint or message, field="unique key"
                )
            else:
                translated = IntegrityError(
                    f"the database rejected the write: {message}", constraint=constraint
                )
            translated.__cause__ = cause
            return translated
        if isinstance(error, sa_exc.DataError) and sqlstate is None:
            # Raised by the driver, not the server: a psycopg loader or dumper that cannot
            # convert a value (a timestamp past year 9999 or 'infinity' has no datetime). No
            # SQLSTATE, and its message may quote the value, so only the class is kept.
            translated = ValidationError.single(
                "(value)", f"the driver cannot convert a value ({type(error.orig).__name__})"
            )
            translated.__cause__ = DriverError(message, sqlstate=None, constraint=None)
            return translated
        return translate_driver_error(
            message,
            sqlstate,
            constraint=constraint,
            connection_failed=_unavailable(error, message, sqlstate),
        )
    if isinstance(error, sa_exc.TimeoutError):
        # The pool had no connection to hand out in time: every one is busy or being opened.
        return StoreUnavailableError(
            "the store is unavailable (timeout): no pooled connection became free in time",
            cause=_causes.TIMEOUT.name,
        )
    if isinstance(error, sa_exc.StatementError) and isinstance(error.orig, ValueError | TypeError):
        return ValidationError.single("?", str(error.orig))
    return EtlMetaError(f"database error: {type(error).__name__}")


def raise_translated(error: sa_exc.SQLAlchemyError) -> NoReturn:
    """Raise the typed error for ``error``, chained to the sanitized driver error only: the
    original's text may quote row values."""
    translated = translate_db_error(error)
    raise translated from translated.__cause__


def translate_driver_error(
    message: str,
    sqlstate: str | None,
    *,
    constraint: str | None = None,
    connection_failed: bool = False,
) -> EtlMetaError:
    """The typed error for a driver's primary ``message`` and ``sqlstate`` (also for drivers
    SQLAlchemy does not wrap, such as ADBC's), chained to a sanitized :class:`DriverError`.

    ``connection_failed``: the driver says the connection itself failed (no SQLSTATE).
    """
    cause = DriverError(message, sqlstate=sqlstate, constraint=constraint)
    translated: EtlMetaError
    if sqlstate is not None and sqlstate.startswith("22"):
        # data_exception: a value the database cannot store or compare (out of range,
        # invalid text). The store validates first, so this is a value it did not foresee.
        translated = ValidationError.single("(value)", f"the database refused a value: {message}")
    elif sqlstate == "42501":  # insufficient_privilege: the database role lacks a grant
        translated = PermissionDeniedError(f"the database refused: {message}", source="database")
    elif connection_failed or (
        sqlstate is not None and sqlstate.startswith(_UNAVAILABLE_SQLSTATE_PREFIXES)
    ):
        cause_of = _causes.classify(message, sqlstate)
        translated = StoreUnavailableError(
            f"the store is unavailable ({cause_of.name}): {message}",
            cause=cause_of.name,
            transient=cause_of.transient,
        )
    else:
        translated = IntegrityError(f"the database rejected the statement: {message}")
    translated.__cause__ = cause
    return translated


def _table_of(constraint: str | None, message: str) -> str:
    if constraint and constraint.startswith("uq_"):
        return constraint[3:].split("_", 1)[0]
    if ":" in message:  # "UNIQUE constraint failed: job.name"
        return message.split(":", 1)[1].strip().split(".", 1)[0]
    return "row"


def translate_validation_error(
    error: pydantic.ValidationError,
    *,
    entity: str | None = None,
    prefix: str = "",
    known_keys: Iterable[str] = (),
) -> ValidationError:
    """Our :class:`ValidationError` for a pydantic one: field paths and reasons, never input.

    An unknown top-level key is named as the field, with a "did you mean" hint when it is close
    to one of ``known_keys`` (the model's fields).
    """
    problems = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        loc = ".".join(str(part) for part in item["loc"]) or "(root)"
        message = item["msg"].removeprefix("Value error, ")
        if item["type"] == "extra_forbidden":
            # The key is the caller's, not a field name: escaped unless it is a plain word.
            *parents, key = item["loc"]
            loc = ".".join([*(str(part) for part in parents), key_label(key)])
            # Input models are flat, so only a top-level key has candidates to hint at.
            hint = did_you_mean(str(key), known_keys) if not parents else ""
            message = f"unknown key{hint}"
        else:
            message = STRICT_TYPE_MESSAGES.get(item["type"], message)
        problems.append(FieldProblem(f"{prefix}{loc}", message))
    return ValidationError(problems, entity=entity)


def validate_input(
    model: type[pydantic.BaseModel],
    data: Any,
    *,
    entity: str,
    context: dict[str, Any] | None = None,
    prefix: str = "",
) -> Any:
    """Validate ``data`` (a dict or an instance of ``model``) with the store's limits.

    Instances are dumped and validated again: they may have been built with default limits or
    with ``model_construct``, which skips validation.
    """
    if isinstance(data, pydantic.BaseModel):
        data = data.model_dump(exclude_unset=True)
    try:
        return model.model_validate(data, context=context)
    except pydantic.ValidationError as exc:
        raise translate_validation_error(
            exc, entity=entity, prefix=prefix, known_keys=model.model_fields
        ) from None
