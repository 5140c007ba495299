"""Roles and the permission each store operation needs.

Three roles, each allowed everything the one before it is:

* ``reader`` — read definitions, runs, metrics and the audit trail, with secrets masked;
* ``writer`` — what an orchestrator needs: record runs, step attempts and metrics, create and
  track run requests, and decrypt a component's configuration to run it;
* ``admin`` — change definitions (jobs, components, dataclasses), rotate secrets, delete old
  runs (gc).

The store checks the role it was opened with (``ETL_META_ROLE``, or ``MetadataStore(role=...)``)
before every operation and refuses with :class:`~etl_meta.errors.PermissionDeniedError`, on SQLite
as on PostgreSQL. On PostgreSQL the matching database roles (``etl-meta db roles``) enforce the
same split in the database itself; see ``docs/security.md`` for what each check protects against.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from enum import StrEnum
from typing import Any, ParamSpec, Protocol, TypeVar

P = ParamSpec("P")
R = TypeVar("R")

#: The attribute :func:`requires` sets on a store method: the role it needs.
REQUIRES_ATTRIBUTE = "__etl_meta_requires__"


class Role(StrEnum):
    """A caller's role; a higher role may do everything a lower one may."""

    READER = "reader"
    WRITER = "writer"
    ADMIN = "admin"

    @property
    def rank(self) -> int:
        return _RANKS[self]

    def allows(self, required: Role) -> bool:
        """Whether this role may perform an operation that needs ``required``."""
        return self.rank >= required.rank


_RANKS = {Role.READER: 0, Role.WRITER: 1, Role.ADMIN: 2}


class _Authorizer(Protocol):
    def authorize(self, required: Role, operation: str) -> None: ...


class _Namespace(Protocol):
    # What requires() needs of a store namespace (``store.jobs``, …), named here so that this
    # module, which config imports, never imports the store above it.
    namespace: str

    @property
    def store(self) -> _Authorizer: ...


def requires(role: Role) -> Callable[[Callable[P, R]], Callable[P, R]]:
    """Mark a store namespace method as needing ``role``; the store checks it on every call.

    The check runs before the method body, so a refused call reads and writes nothing.
    """

    def decorate(method: Callable[P, R]) -> Callable[P, R]:
        @functools.wraps(method)
        def checked(*args: P.args, **kwargs: P.kwargs) -> R:
            api: _Namespace = args[0]  # type: ignore[assignment]
            api.store.authorize(role, f"{api.namespace}.{method.__name__}")
            return method(*args, **kwargs)

        setattr(checked, REQUIRES_ATTRIBUTE, role)
        return checked

    return decorate


def required_role(method: Any) -> Role | None:
    """The role :func:`requires` declared on ``method``, or ``None`` if it declared none."""
    return getattr(method, REQUIRES_ATTRIBUTE, None)
