"""What each etl-meta database role is granted, as data: the reader, the writer and the admin.

:mod:`etl_meta.roles` applies these plans to a PostgreSQL database; this module only says what
they are and renders the statements, so the grants can be read (and tested) in one place.

* ``etl_meta_reader`` — SELECT on the analyst views ``v_*`` only (see ``docs/sql-views.md``).
* ``etl_meta_writer`` — what an orchestrator needs: SELECT on every etl-meta table (it reads
  definitions and decrypts configuration client-side), INSERT and UPDATE on the tables runs are
  recorded in (:data:`WRITER_RECORDS`), INSERT only on the audit trail, TEMPORARY on the database
  (metric points go through a TEMP staging table and COPY). No DELETE, no write on definitions.
* ``etl_meta_admin`` — definitions, key rotation and gc: SELECT, INSERT, UPDATE and DELETE on every
  etl-meta table except the audit trail, which stays append-only (:data:`APPEND_ONLY`) so that it
  can be trusted; TEMPORARY, since an admin store may record metrics too.

No role gets TRUNCATE, REFERENCES, TRIGGER, CREATE on the schema or the database, or write access
to the schema version table: migrations stay with the role that owns the schema.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import cache
from types import MappingProxyType

from etl_meta.access import Role
from etl_meta.schema import VERSION_TABLE

READER_ROLE = "etl_meta_reader"
WRITER_ROLE = "etl_meta_writer"
ADMIN_ROLE = "etl_meta_admin"

#: The database role of each store role.
ROLE_NAMES: Mapping[Role, str] = {
    Role.READER: READER_ROLE,
    Role.WRITER: WRITER_ROLE,
    Role.ADMIN: ADMIN_ROLE,
}

#: The analyst views (migrations 0002 and 0009). The only objects the reader role may read.
READER_VIEWS: tuple[str, ...] = (
    "v_run",
    "v_step_attempt",
    "v_metric",
    "v_metric_daily",
    "v_job",
    "v_run_tag",
)

#: Where the writer records runs: rows are added and updated (status moves forward), never removed.
WRITER_RECORDS: tuple[str, ...] = (
    "component_execution",
    "execution",
    "execution_tag",
    "metric_latest",
    "metric_name",
    "metric_point",
    "metric_series",
    "run_request",
    "sync_cursor",
)

#: Append-only for every role, admin included: a trail its writers could rewrite proves nothing.
APPEND_ONLY: tuple[str, ...] = ("audit_event",)

#: Every table privilege PostgreSQL has, in the order statements and messages list them.
TABLE_PRIVILEGES: tuple[str, ...] = (
    "SELECT",
    "INSERT",
    "UPDATE",
    "DELETE",
    "TRUNCATE",
    "REFERENCES",
    "TRIGGER",
)

_READ = frozenset({"SELECT"})
_RECORD = frozenset({"SELECT", "INSERT", "UPDATE"})
_APPEND = frozenset({"SELECT", "INSERT"})
_CHANGE = frozenset({"SELECT", "INSERT", "UPDATE", "DELETE"})


@dataclass(frozen=True)
class RolePlan:
    """Everything one database role is granted in one database.

    ``tables`` maps each table (etl-meta's and the schema version table) the role may use to its
    privileges; a table not in it gets none. ``temporary`` adds TEMPORARY on the database to
    CONNECT; ``summary`` is the one line ``etl-meta db roles`` prints when the role is set up.
    """

    role: Role
    name: str
    tables: Mapping[str, frozenset[str]]
    views: tuple[str, ...]
    temporary: bool
    summary: str

    def inserts_into(self) -> tuple[str, ...]:
        """The tables the role inserts into: their id sequences need USAGE (``nextval``)."""
        return tuple(table for table, privileges in self.tables.items() if "INSERT" in privileges)


def store_tables() -> tuple[str, ...]:
    """etl-meta's own tables, from the models (the version table is not one of them)."""
    from etl_meta.models import metadata

    return tuple(sorted(metadata.tables))


def definition_tables() -> tuple[str, ...]:
    """The tables only the admin may change: jobs, components, dataclasses, tags and their links."""
    return tuple(t for t in store_tables() if t not in WRITER_RECORDS and t not in APPEND_ONLY)


def _reader() -> RolePlan:
    return RolePlan(
        Role.READER,
        READER_ROLE,
        tables=MappingProxyType({}),
        views=READER_VIEWS,
        temporary=False,
        summary=f"{READER_ROLE} may read {', '.join(READER_VIEWS)} and no etl-meta table",
    )


def _writer() -> RolePlan:
    tables = {table: _READ for table in (*store_tables(), VERSION_TABLE)}
    tables.update(dict.fromkeys(WRITER_RECORDS, _RECORD))
    tables.update(dict.fromkeys(APPEND_ONLY, _APPEND))
    return RolePlan(
        Role.WRITER,
        WRITER_ROLE,
        tables=MappingProxyType(tables),  # plans are cached and shared: read-only
        views=READER_VIEWS,
        temporary=True,
        summary=(
            f"{WRITER_ROLE} may read every etl-meta table, record into "
            f"{', '.join(WRITER_RECORDS)} (insert, update) and {', '.join(APPEND_ONLY)} "
            "(insert only); no delete, no definition change, no DDL"
        ),
    )


def _admin() -> RolePlan:
    tables = {table: _CHANGE for table in store_tables()}
    tables.update(dict.fromkeys(APPEND_ONLY, _APPEND))
    tables[VERSION_TABLE] = _READ
    return RolePlan(
        Role.ADMIN,
        ADMIN_ROLE,
        tables=MappingProxyType(tables),  # plans are cached and shared: read-only
        views=READER_VIEWS,
        temporary=True,
        summary=(
            f"{ADMIN_ROLE} may read and change every etl-meta table but {', '.join(APPEND_ONLY)} "
            "(insert only); no truncate, no DDL"
        ),
    )


_PLANS: Mapping[Role, Callable[[], RolePlan]] = {
    Role.READER: _reader,
    Role.WRITER: _writer,
    Role.ADMIN: _admin,
}


@cache
def role_plan(role: Role | str) -> RolePlan:
    """The plan of ``role`` (``reader``, ``writer`` or ``admin``)."""
    return _PLANS[Role(role)]()


def privilege_list(privileges: frozenset[str] | set[str]) -> str:
    """``privileges`` in PostgreSQL's canonical order: ``SELECT, INSERT, UPDATE``."""
    return ", ".join(p for p in TABLE_PRIVILEGES if p in privileges)


def grant_statements(
    plan: RolePlan,
    *,
    quote: Callable[[str], str],
    database: str,
    schema_name: str,
    sequences: tuple[str, ...],
) -> list[str]:
    """The statements that give ``plan.name`` exactly its plan in one database and schema.

    Everything the role held on the database, the schema's tables, views and sequences is revoked
    first, so privileges granted by hand before are gone and running them twice changes nothing.
    ``sequences`` are the (already quoted) id sequences of :meth:`RolePlan.inserts_into`.
    """
    name, db, sch = quote(plan.name), quote(database), quote(schema_name)
    database_privileges = "CONNECT, TEMPORARY" if plan.temporary else "CONNECT"
    statements = [
        # CREATE on the database would let the role create schemas (DDL); TEMPORARY only if planned.
        f"REVOKE ALL ON DATABASE {db} FROM {name}",
        f"GRANT {database_privileges} ON DATABASE {db} TO {name}",
        f"GRANT USAGE ON SCHEMA {sch} TO {name}",
        f"REVOKE CREATE ON SCHEMA {sch} FROM {name}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {sch} FROM {name}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {sch} FROM {name}",
    ]
    if plan.views:
        statements.append(
            "GRANT SELECT ON " + ", ".join(quote(v) for v in plan.views) + f" TO {name}"
        )
    # One GRANT per privilege set, fewest privileges first: read, append, record, change.
    by_privileges: dict[frozenset[str], list[str]] = {}
    for table in sorted(plan.tables):
        by_privileges.setdefault(plan.tables[table], []).append(table)
    for privileges, tables in sorted(by_privileges.items(), key=lambda item: len(item[0])):
        statements.append(
            f"GRANT {privilege_list(privileges)} ON "
            + ", ".join(quote(t) for t in tables)
            + f" TO {name}"
        )
    if sequences:
        # USAGE allows nextval (serial ids) but not setval, which only UPDATE would.
        statements.append(f"GRANT USAGE ON SEQUENCE {', '.join(sequences)} TO {name}")
    return statements
