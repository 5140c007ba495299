"""Typed errors raised by etl-meta.

Every error is an :class:`EtlMetaError`; callers catch the child that matters to them. Errors carry
the entity and key they concern (and, for validation, the field path) as attributes, so programs
never parse messages. Messages never quote the values callers passed in: a value may be a secret.

The database driver's errors become these here too (:func:`translate_db_error`,
:func:`translate_driver_error`, :func:`is_transient`), for every layer that talks to the
database: the store's transactions, analytics reads, the command line. PostgreSQL's error DETAIL
quotes the offending row ("Failing row contains (…)") and SQLAlchemy's message quotes statement
parameters unless hidden; either may carry a secret. A translated error keeps only the primary
message, SQLSTATE and constraint name, and chains to a sanitized :class:`DriverError` rather than
the driver error itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NoReturn

import sqlalchemy.exc as sa_exc

from etl_meta import unavailable_causes


class EtlMetaError(Exception):
    """Base class of every error etl-meta raises on purpose."""


@dataclass(frozen=True)
class FieldProblem:
    """One thing wrong with one field: ``field`` is a dotted path such as ``components.2.name``."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


class ValidationError(EtlMetaError, ValueError):
    """Input was rejected before anything was written.

    ``problems`` lists every field at fault; ``field`` is the first, for the common single case.
    """

    def __init__(self, problems: Sequence[FieldProblem], *, entity: str | None = None) -> None:
        if not problems:
            raise ValueError("ValidationError needs at least one problem")
        self.problems = tuple(problems)
        self.entity = entity
        self.field = self.problems[0].field
        prefix = f"invalid {entity}: " if entity else "invalid input: "
        super().__init__(prefix + "; ".join(str(p) for p in self.problems))

    @classmethod
    def single(cls, field: str, message: str, *, entity: str | None = None) -> ValidationError:
        """Shorthand for an error about one field."""
        return cls([FieldProblem(field, message)], entity=entity)


class NotFoundError(EtlMetaError, LookupError):
    """The entity asked for does not exist (``get_*`` raises it; ``find_*`` returns ``None``)."""

    def __init__(self, entity: str, key: object) -> None:
        self.entity = entity
        self.key = key
        super().__init__(f"{entity} {key!r} not found")


class AlreadyExistsError(EtlMetaError):
    """An entity with the same unique key already exists."""

    def __init__(self, entity: str, key: object, *, field: str = "name") -> None:
        self.entity = entity
        self.key = key
        self.field = field
        super().__init__(f"{entity} with {field} {key!r} already exists")


class ConflictError(EtlMetaError):
    """The change contradicts the stored state (a dependency cycle, a concurrent update, ...)."""

    def __init__(self, message: str, *, entity: str | None = None, field: str | None = None):
        self.entity = entity
        self.field = field
        super().__init__(message)


class IntegrityError(EtlMetaError):
    """The database rejected a write for a constraint the store did not check itself.

    The store validates first, so seeing this usually means a concurrent writer won a race.
    ``constraint`` is the database's constraint name when the driver reports it.
    """

    def __init__(self, message: str, *, constraint: str | None = None) -> None:
        self.constraint = constraint
        super().__init__(message)


class StoreUnavailableError(EtlMetaError):
    """The database could not be reached, dropped the connection, or did not answer in time.

    ``cause`` names why in a few words (``"connection refused"``, ``"authentication failed"``,
    ``"database does not exist"``, ``"timeout"``, ``"read-only"``, ``"locked"``, …) and
    ``transient`` says whether waiting may help: a refused connection or a timeout usually
    passes, a wrong password or a missing database does not, and is not retried.
    """

    def __init__(self, message: str, *, cause: str = "unreachable", transient: bool = True):
        self.cause = cause
        self.transient = transient
        super().__init__(message)


class SchemaError(EtlMetaError):
    """The database schema does not match what this version of etl-meta expects."""

    def __init__(self, message: str, *, current: str | None, expected: str | None) -> None:
        self.current = current
        self.expected = expected
        super().__init__(message)


class SchemaNotInitializedError(SchemaError):
    """The database has no etl-meta schema yet: run ``etl-meta db upgrade``."""


class SchemaOutOfDateError(SchemaError):
    """The schema is older than the code: run ``etl-meta db upgrade``."""


class SchemaTooNewError(SchemaError):
    """The schema was migrated by a newer etl-meta than this one."""


class SchemaDriftError(SchemaError):
    """The schema is at the right revision but differs from the models (edited by hand?)."""


class PermissionDeniedError(EtlMetaError, PermissionError):
    """The caller's role may not perform the operation; nothing was read or written.

    Raised by the store before the operation starts (``source="store"``), and for PostgreSQL's
    own refusal (SQLSTATE 42501) when the database role lacks the grant (``source="database"``).
    ``role`` and ``required`` are role names when known; ``operation`` names what was refused,
    such as ``jobs.create``.
    """

    def __init__(
        self,
        message: str,
        *,
        operation: str | None = None,
        role: str | None = None,
        required: str | None = None,
        source: str = "store",
    ) -> None:
        self.operation = operation
        self.role = role
        self.required = required
        self.source = source
        super().__init__(message)


class MissingExtraError(EtlMetaError, ImportError):
    """A feature needs an optional extra that is not installed (``pip install 'etl-meta[…]'``).

    ``extra`` names the extra (``analytics``, ``plot``, ``dagster``, ``airflow``) and ``modules``
    the missing top-level modules. It is an :class:`ImportError` too, so code that treats an
    optional import's failure as "not installed" keeps doing so.
    """

    def __init__(self, extra: str, modules: Sequence[str], *, needed_by: str) -> None:
        self.extra = extra
        self.modules = tuple(modules)
        self.needed_by = needed_by
        # Two names say what is missing; the whole list (up to six) would only lengthen the line.
        named = ", ".join(self.modules[:2])
        if len(self.modules) > 2:
            named += f" and {len(self.modules) - 2} more"
        super().__init__(
            f"{needed_by} needs {named}: pip install 'etl-meta[{extra}]'",
            name=self.modules[0] if self.modules else None,
        )


# -- Driver errors as typed errors -----------------------------------------------------------------

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
        message = (
            diag.message_primary or unavailable_causes.describe(str(orig)) or type(orig).__name__
        )
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
            cause=unavailable_causes.TIMEOUT.name,
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
        cause_of = unavailable_causes.classify(message, sqlstate)
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
