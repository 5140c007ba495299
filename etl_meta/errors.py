"""Typed errors raised by etl-meta.

Every error is an :class:`EtlMetaError`; callers catch the child that matters to them. Errors carry
the entity and key they concern (and, for validation, the field path) as attributes, so programs
never parse messages. Messages never quote the values callers passed in: a value may be a secret.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


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
