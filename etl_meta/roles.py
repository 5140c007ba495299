"""PostgreSQL roles for people and tools outside etl-meta: today a read-only role for analysts.

``etl_meta_reader`` may read the ``v_*`` views (see ``docs/sql-views.md``) and nothing else of
etl-meta's: no base table, so neither component configuration nor run configuration nor the audit
trail. A PostgreSQL view runs with its *owner's* privileges, so SELECT on a view is enough to read
it without any grant on the tables behind it.

Every function here is idempotent: it creates what is missing, re-applies the grants, and running
it twice leaves the database exactly as running it once. Roles are cluster-wide in PostgreSQL;
grants are per database, so run it once per database that holds an etl-meta store.

SQLite has no roles: these functions refuse a SQLite engine with :class:`RolesUnsupportedError`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from etl_meta import schema
from etl_meta.errors import EtlMetaError, SchemaDriftError

#: The read-only role for analysts and BI tools.
READER_ROLE = "etl_meta_reader"

#: The analyst views (migration 0002). The only objects the reader role may read.
READER_VIEWS: tuple[str, ...] = ("v_run", "v_step_attempt", "v_metric", "v_metric_daily", "v_job")

#: Table privileges the reader must not hold on any etl-meta table (checked after granting).
_TABLE_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE, TRUNCATE, REFERENCES, TRIGGER"

#: Serializes concurrent runs against one database (pg_advisory_xact_lock key: "etlmrole").
_LOCK_KEY = 0x65746C6D726F6C65

_MASKED_PASSWORD = "'********'"


class RolesUnsupportedError(EtlMetaError):
    """The database has no roles (SQLite): roles are a PostgreSQL feature."""


@dataclass(frozen=True)
class _Role:
    name: str
    password: str | None


def ensure_reader_role(engine: Engine | Connection, *, password: str | None = None) -> list[str]:
    """Create ``etl_meta_reader`` if missing and grant it SELECT on the ``v_*`` views only.

    The role is created ``NOLOGIN`` (grant it to people: ``GRANT etl_meta_reader TO alice``) unless
    ``password`` is given; then it gets ``LOGIN`` and that password, set as a SCRAM verifier
    computed here, so the clear text never reaches the server or its logs. Without ``password`` an
    existing role keeps its LOGIN attribute and password.

    Grants: CONNECT on the database, USAGE on the schema, SELECT on each view. Revoked first: every
    privilege on every table and view of the schema, and CREATE on the schema, so anything granted
    by hand before is gone. The database must be at this etl-meta's schema revision.

    Returns the statements applied (the password shown as ``'********'``) followed by any
    ``warning:`` lines about privileges the role still has through ``PUBLIC`` or membership.
    """
    if engine.dialect.name != "postgresql":
        raise RolesUnsupportedError(
            f"{engine.dialect.name} has no database roles: roles are a PostgreSQL feature"
        )
    if isinstance(engine, Connection):
        return _ensure_reader(engine, password)
    with engine.begin() as connection:
        return _ensure_reader(connection, password)


def _ensure_reader(connection: Connection, password: str | None) -> list[str]:
    schema.check_schema(connection)
    connection.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": _LOCK_KEY})
    database, schema_name = connection.execute(
        sa.text("SELECT current_database(), current_schema()")
    ).one()
    _require_views(connection, schema_name, READER_VIEWS)

    role = _Role(READER_ROLE, password)
    applied = _ensure_role(connection, role)
    quote = connection.dialect.identifier_preparer.quote
    name, db, sch = quote(role.name), quote(database), quote(schema_name)
    statements = [
        f"GRANT CONNECT ON DATABASE {db} TO {name}",
        f"GRANT USAGE ON SCHEMA {sch} TO {name}",
        f"REVOKE CREATE ON SCHEMA {sch} FROM {name}",
        f"REVOKE ALL ON ALL TABLES IN SCHEMA {sch} FROM {name}",
        f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA {sch} FROM {name}",
        "GRANT SELECT ON " + ", ".join(quote(v) for v in READER_VIEWS) + f" TO {name}",
    ]
    for statement in statements:
        connection.exec_driver_sql(statement)
    applied += statements
    return applied + _reader_warnings(connection, role.name, schema_name)


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
        # A reader that is a superuser (or may create roles/databases) reads everything anyway.
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
    driver = connection.connection.driver_connection  # psycopg.Connection
    # algorithm None: libpq asks the server which encryption it uses (password_encryption).
    verifier = driver.pgconn.encrypt_password(password.encode(), role.encode(), None)
    return verifier.decode()


def _literal(connection: Connection, value: str) -> str:
    from psycopg import sql

    return sql.Literal(value).as_string(connection.connection.driver_connection)


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


def _reader_warnings(connection: Connection, role: str, schema_name: str) -> list[str]:
    """Privileges the role holds beyond the views, e.g. through ``PUBLIC`` (not ours to revoke)."""
    from etl_meta.models import metadata

    tables = [*sorted(metadata.tables), schema.VERSION_TABLE]
    warnings = [
        f"warning: {role} still has privileges on table {table} (granted to PUBLIC or to a role "
        f"it belongs to); revoke them there"
        for table in _tables_with_privileges(connection, role, schema_name, tables)
    ]
    can_create = connection.execute(
        sa.text("SELECT has_schema_privilege(:role, :schema, 'CREATE')"),
        {"role": role, "schema": schema_name},
    ).scalar_one()
    if can_create:
        warnings.append(
            f"warning: {role} may create objects in schema {schema_name} (CREATE granted to PUBLIC?"
            f" `REVOKE CREATE ON SCHEMA {schema_name} FROM PUBLIC` fixes it for every role)"
        )
    return warnings


def _tables_with_privileges(
    connection: Connection, role: str, schema_name: str, tables: Iterable[str]
) -> list[str]:
    found = []
    check = sa.text("SELECT has_table_privilege(:role, CAST(:table AS regclass), :privileges)")
    exists = sa.text("SELECT to_regclass(:table) IS NOT NULL")
    for table in tables:
        qualified = f"{connection.dialect.identifier_preparer.quote(schema_name)}.{table}"
        if not connection.execute(exists, {"table": qualified}).scalar_one():
            continue
        params = {"role": role, "table": qualified, "privileges": _TABLE_PRIVILEGES}
        if connection.execute(check, params).scalar_one():
            found.append(table)
    return found
