"""PostgreSQL roles for the people and tools around etl-meta: reader, writer and admin.

* ``etl_meta_reader`` may read the ``v_*`` views (see ``docs/sql-views.md``) and nothing else of
  etl-meta's: no base table, so neither component configuration nor run configuration nor the
  audit trail. A PostgreSQL view runs with its *owner's* privileges, so SELECT on a view is enough
  to read it without any grant on the tables behind it.
* ``etl_meta_writer`` is what orchestrators connect as: it records runs, step attempts, metrics
  and run requests, and may change no definition.
* ``etl_meta_admin`` changes definitions, rotates keys and deletes old runs; even it may only add
  to the audit trail.

Exactly what each is granted is in :mod:`etl_meta.roles_grants`; ``docs/database-roles.md``
explains why.

Every function here is idempotent: it creates what is missing, re-applies the grants, and running
it twice leaves the database exactly as running it once. Roles are cluster-wide in PostgreSQL;
grants are per database, so run it once per database that holds an etl-meta store.

SQLite has no roles: these functions refuse a SQLite engine with :class:`RolesUnsupportedError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from etl_meta import schema
from etl_meta.access import Role
from etl_meta.errors import EtlMetaError, SchemaDriftError
from etl_meta.roles_grants import (
    ADMIN_ROLE,
    READER_ROLE,
    READER_VIEWS,
    ROLE_NAMES,
    TABLE_PRIVILEGES,
    WRITER_ROLE,
    RolePlan,
    grant_statements,
    privilege_list,
    role_plan,
)

__all__ = [
    "ADMIN_ROLE",
    "READER_ROLE",
    "READER_VIEWS",
    "ROLE_NAMES",
    "WRITER_ROLE",
    "RolesUnsupportedError",
    "ensure_admin_role",
    "ensure_reader_role",
    "ensure_roles",
    "ensure_writer_role",
]

#: Serializes concurrent runs against one database (pg_advisory_xact_lock key: "etlmrole").
_LOCK_KEY = 0x65746C6D726F6C65

_MASKED_PASSWORD = "'********'"


class RolesUnsupportedError(EtlMetaError):
    """The database has no roles (SQLite): roles are a PostgreSQL feature."""


@dataclass(frozen=True)
class _Role:
    name: str
    password: str | None


def ensure_roles(
    engine: Engine | Connection,
    roles: Iterable[Role | str] | None = None,
    *,
    # Two mappings, not Mapping[Role | str, ...]: a mapping's key type is invariant, so that one
    # would refuse a plain dict[Role, str].
    passwords: Mapping[Role, str | None] | Mapping[str, str | None] | None = None,
) -> dict[Role, list[str]]:
    """Create and grant the database roles ``roles`` (default: all three) in one transaction.

    Each role is created ``NOLOGIN`` (grant it to people: ``GRANT etl_meta_admin TO alice``)
    unless ``passwords`` has one for it; then it gets ``LOGIN`` and that password, set as a SCRAM
    verifier computed here, so the clear text never reaches the server or its logs. Without a
    password an existing role keeps its LOGIN attribute and password.

    Revoked first: every privilege the role has on the database, on every table, view and
    sequence of the schema, and CREATE on the schema, so anything granted by hand before is gone.
    Then it gets exactly its :func:`~etl_meta.roles_grants.role_plan`. The database must be at
    this etl-meta's schema revision.

    Returns, per role, the statements applied (passwords shown as ``'********'``) followed by any
    ``warning:`` lines about privileges the role still has beyond its plan, through ``PUBLIC``,
    membership in another role, or ownership.

    Example::

        applied = ensure_roles(engine, ["writer"], passwords={"writer": os.environ["PW"]})
    """
    if engine.dialect.name != "postgresql":
        raise RolesUnsupportedError(
            f"{engine.dialect.name} has no database roles: roles are a PostgreSQL feature"
        )
    if isinstance(roles, str):
        roles = [roles]  # one name, not an iterable of letters
    wanted = [Role(role) for role in (Role if roles is None else roles)]
    given = {Role(role): password for role, password in (passwords or {}).items()}
    plans = [role_plan(role) for role in dict.fromkeys(wanted)]  # de-duplicated, order kept
    if isinstance(engine, Connection):
        return _ensure(engine, plans, given)
    with engine.begin() as connection:
        return _ensure(connection, plans, given)


def ensure_reader_role(engine: Engine | Connection, *, password: str | None = None) -> list[str]:
    """Create ``etl_meta_reader`` if missing and grant it SELECT on the ``v_*`` views only.

    See :func:`ensure_roles`; returns the statements applied and any ``warning:`` lines.
    """
    return ensure_roles(engine, [Role.READER], passwords={Role.READER: password})[Role.READER]


def ensure_writer_role(engine: Engine | Connection, *, password: str | None = None) -> list[str]:
    """Create ``etl_meta_writer`` (orchestrators) if missing and grant it what recording runs needs.

    See :func:`ensure_roles`; returns the statements applied and any ``warning:`` lines.
    """
    return ensure_roles(engine, [Role.WRITER], passwords={Role.WRITER: password})[Role.WRITER]


def ensure_admin_role(engine: Engine | Connection, *, password: str | None = None) -> list[str]:
    """Create ``etl_meta_admin`` if missing and grant it every change but to the audit trail.

    See :func:`ensure_roles`; returns the statements applied and any ``warning:`` lines.
    """
    return ensure_roles(engine, [Role.ADMIN], passwords={Role.ADMIN: password})[Role.ADMIN]


def _ensure(
    connection: Connection, plans: Sequence[RolePlan], passwords: Mapping[Role, str | None]
) -> dict[Role, list[str]]:
    schema.check_schema(connection)
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    database, schema_name = connection.execute(
        sa.text("SELECT current_database(), current_schema()")
    ).one()
    _require_views(connection, schema_name, sorted({v for plan in plans for v in plan.views}))
    quote = connection.dialect.identifier_preparer.quote

    applied: dict[Role, list[str]] = {}
    for plan in plans:
        lines = _ensure_role(connection, _Role(plan.name, passwords.get(plan.role)))
        statements = grant_statements(
            plan,
            quote=quote,
            database=database,
            schema_name=schema_name,
            sequences=_id_sequences(connection, schema_name, plan.inserts_into()),
        )
        for statement in statements:
            connection.exec_driver_sql(statement)
        applied[plan.role] = lines + statements
    # Warnings last: every role's grants are in place, whatever order they were applied in.
    for plan in plans:
        applied[plan.role] += _warnings(connection, plan, database, schema_name)
    return applied


def _ensure_role(connection: Connection, role: _Role) -> list[str]:
    """Create the role if missing; set LOGIN and the password when one is given."""
    quote = connection.dialect.identifier_preparer.quote
    row = connection.execute(
        sa.text(
            "SELECT rolcanlogin, rolsuper OR rolcreatedb OR rolcreaterole OR rolreplication "
            "OR rolbypassrls FROM pg_roles WHERE rolname = :name"
        ),
        {"name": role.name},
    ).one_or_none()
    applied: list[str] = []
    if row is None:
        statement = f"CREATE ROLE {quote(role.name)} NOLOGIN"
        connection.exec_driver_sql(statement)
        applied.append(statement)
        can_login, powerful = False, False
    else:
        can_login, powerful = bool(row[0]), bool(row[1])
        applied.append(
            f"-- role {role.name} exists ({'LOGIN' if can_login else 'NOLOGIN'})"
            + ("" if role.password is not None else ", login and password unchanged")
        )
    if powerful:
        # A superuser (or a role that may create roles or databases) bypasses every grant here.
        statement = (
            f"ALTER ROLE {quote(role.name)} "
            "NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"
        )
        connection.exec_driver_sql(statement)
        applied.append(statement)
    if role.password is not None:
        verifier = _password_verifier(connection, role.name, role.password)
        prefix = f"ALTER ROLE {quote(role.name)} LOGIN PASSWORD "
        connection.exec_driver_sql(prefix + _literal(connection, verifier))
        applied.append(prefix + _MASKED_PASSWORD)
    return applied


def _password_verifier(connection: Connection, role: str, password: str) -> str:
    """The password as the server stores it (SCRAM-SHA-256 by default), computed by libpq."""
    if not password:
        raise ValueError("the password is empty")
    import psycopg  # PostgreSQL only: loaded where roles are set, not at every import

    driver = connection.connection.driver_connection
    if not isinstance(driver, psycopg.Connection):
        raise TypeError(f"expected a psycopg connection, got {type(driver).__name__}")
    # algorithm None: libpq asks the server which encryption it uses (password_encryption).
    verifier = driver.pgconn.encrypt_password(password.encode(), role.encode(), None)
    return verifier.decode()


def _literal(connection: Connection, value: str) -> str:
    from psycopg import sql

    return sql.Literal(value).as_string(connection.connection.driver_connection)


def _id_sequences(
    connection: Connection, schema_name: str, tables: Sequence[str]
) -> tuple[str, ...]:
    """The sequences behind the serial id columns of ``tables``, quoted as GRANT needs them."""
    from etl_meta.models import metadata

    quote = connection.dialect.identifier_preparer.quote
    lookup = sa.text("SELECT pg_get_serial_sequence(:table, :column)")
    found = []
    for name in tables:
        table = metadata.tables.get(name)
        column = table.autoincrement_column if table is not None else None
        if column is None and table is not None and "id" in table.c:
            column = table.c.id  # metric_point: keyed by (series_id, step), id from a sequence
        if column is None:
            continue  # a composite key (metric_latest, link tables) or the version table
        qualified = f"{quote(schema_name)}.{quote(name)}"
        sequence = connection.execute(lookup, {"table": qualified, "column": column.name}).scalar()
        if sequence is not None:
            found.append(sequence)
    return tuple(found)


def _require_views(connection: Connection, schema_name: str, views: Sequence[str]) -> None:
    present = set(
        connection.execute(
            sa.text("SELECT viewname FROM pg_views WHERE schemaname = :schema"),
            {"schema": schema_name},
        ).scalars()
    )
    missing = [view for view in views if view not in present]
    if missing:
        raise SchemaDriftError(
            f"the analyst views {', '.join(missing)} are missing from schema {schema_name!r}: "
            "were they dropped by hand? Run `etl-meta db downgrade 0001` then "
            "`etl-meta db upgrade` to create them again",
            current=schema.current_revision(connection),
            expected=schema.head_revision(),
        )


_HELD = sa.text(
    "SELECT t.name, p.privilege "
    "FROM unnest(CAST(:tables AS text[])) AS t(name) "
    "CROSS JOIN unnest(CAST(:privileges AS text[])) AS p(privilege) "
    "WHERE to_regclass(quote_ident(:schema) || '.' || quote_ident(t.name)) IS NOT NULL "
    "AND has_table_privilege(:role, "
    "to_regclass(quote_ident(:schema) || '.' || quote_ident(t.name)), p.privilege)"
)


def _warnings(connection: Connection, plan: RolePlan, database: str, schema_name: str) -> list[str]:
    """Privileges the role holds beyond its plan, e.g. through ``PUBLIC`` (not ours to revoke)."""
    from etl_meta.models import metadata

    tables = [*sorted(metadata.tables), schema.VERSION_TABLE]
    held: dict[str, set[str]] = {}
    params = {
        "tables": tables,
        "privileges": list(TABLE_PRIVILEGES),
        "schema": schema_name,
        "role": plan.name,
    }
    for table, privilege in connection.execute(_HELD, params):
        held.setdefault(table, set()).add(privilege)
    warnings = []
    for table in tables:
        extra = held.get(table, set()) - plan.tables.get(table, frozenset())
        if extra:
            warnings.append(
                f"warning: {plan.name} still has {privilege_list(extra)} on table {table} "
                "(granted to PUBLIC or to a role it belongs to, or it owns the table); "
                "revoke them there"
            )
    can_create_in_schema, can_create_schemas = connection.execute(
        sa.text(
            "SELECT has_schema_privilege(:role, :schema, 'CREATE'), "
            "has_database_privilege(:role, :database, 'CREATE')"
        ),
        {"role": plan.name, "schema": schema_name, "database": database},
    ).one()
    if can_create_in_schema:
        warnings.append(
            f"warning: {plan.name} may create objects in schema {schema_name} (CREATE granted to "
            f"PUBLIC? `REVOKE CREATE ON SCHEMA {schema_name} FROM PUBLIC` fixes it for every role)"
        )
    if can_create_schemas:
        warnings.append(
            f"warning: {plan.name} may create schemas in database {database} (CREATE granted to "
            f"PUBLIC or to a role it belongs to); revoke it there"
        )
    return warnings
