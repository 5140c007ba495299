"""Scratch databases for tests of the etl-meta database roles (``etl-meta db roles``).

Roles are cluster-wide: the tests use the real names (``etl_meta_reader``, ``etl_meta_writer``,
``etl_meta_admin``), accept that they may exist from an earlier run, and never drop them. Each
test works in its own scratch database; before that database is dropped ``DROP OWNED BY`` removes
the roles' grants there. A session-level advisory lock on the admin database serializes these
tests across pytest workers and concurrent sessions on the same server.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from etl_meta import MetadataStore, schema
from etl_meta.db import create_engine
from etl_meta.models import metadata
from etl_meta.roles import ROLE_NAMES
from tests.backends import POSTGRES_ENV, PostgresServer, isolated_settings
from tests.seed import seed_every_table

#: Session advisory lock key ("etlmtest") every role test takes before touching a role.
ROLE_TEST_LOCK_KEY = 0x65746C6D74657374


def require_postgres(server: PostgresServer | None) -> PostgresServer:
    """The test server; skips only when ``ETL_META_TEST_POSTGRES_URL`` is unset (CI sets it)."""
    if server is None:
        pytest.skip(f"{POSTGRES_ENV} is not set: database roles are a PostgreSQL feature")
    return server


@contextmanager
def roles_locked(server: PostgresServer) -> Iterator[None]:
    """Hold the role tests' lock: one test at a time touches the cluster-wide roles."""
    with server.engine.connect() as connection:
        connection.exec_driver_sql(f"SELECT pg_advisory_lock({ROLE_TEST_LOCK_KEY})")
        try:
            yield
        finally:
            connection.exec_driver_sql(f"SELECT pg_advisory_unlock({ROLE_TEST_LOCK_KEY})")


def drop_owned_by_roles(url: str) -> None:
    """Remove every etl-meta role's grants in the database ``url`` (the roles themselves stay)."""
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            for name in ROLE_NAMES.values():
                exists = connection.execute(
                    sa.text("SELECT 1 FROM pg_roles WHERE rolname = :name"), {"name": name}
                ).first()
                if exists:
                    connection.exec_driver_sql(f"DROP OWNED BY {name}")
    finally:
        engine.dispose()


@contextmanager
def scratch_database(server: PostgresServer) -> Iterator[str]:
    """A scratch database with no schema, under the role tests' lock, cleaned up after."""
    with roles_locked(server):
        url = server.create_database()
        try:
            yield url
        finally:
            drop_owned_by_roles(url)
            server.drop_database(url)


def migrate_and_seed(url: str, home: Path, *, secret: str) -> str:
    """Migrate ``url`` as its owner, put rows in every table and ``secret`` in a configuration."""
    settings = isolated_settings(home)
    engine = create_engine(url, settings=settings)
    try:
        schema.upgrade(engine)
        with MetadataStore(engine=engine, settings=settings) as store:
            seed_every_table(store)
            store.components.update(
                "daily_sales",
                "load",
                {
                    "configuration": {
                        "table": "t",
                        "connection_url": "postgresql://etl@warehouse/dw",
                        "password": secret,
                    }
                },
            )
    finally:
        engine.dispose()
    return url


def url_as(url: str, role: str, password: str) -> str:
    """``url`` with another user and password (the server trusts; the password is for show)."""
    return make_url(url).set(username=role, password=password).render_as_string(hide_password=False)


def denied(url: str, user: str, statement: str) -> bool:
    """Whether the database refuses ``statement`` run as ``user`` for lack of a privilege.

    Any other error fails the test: a statement refused for a typo proves nothing.
    """
    engine = sa.create_engine(url_as(url, user, "any"), isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.exec_driver_sql(statement)
    except sa.exc.ProgrammingError as exc:
        assert getattr(exc.orig, "sqlstate", None) == "42501", (statement, str(exc.orig))
        return True
    finally:
        engine.dispose()
    return False


_ROLE_NAMES = ", ".join(f"'{name}'" for name in ROLE_NAMES.values())
_TABLE_PRIVILEGES = "'SELECT','INSERT','UPDATE','DELETE','TRUNCATE','REFERENCES','TRIGGER'"
#: Every privilege each etl-meta role holds (granted, through PUBLIC or membership) in a database.
_HELD = f"""
SELECT r.name, c.relname, p.privilege
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN unnest(ARRAY[{_TABLE_PRIVILEGES}]) AS p(privilege)
CROSS JOIN unnest(ARRAY[{_ROLE_NAMES}]) AS r(name)
WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'v', 'p')
  AND has_table_privilege(r.name, c.oid, p.privilege)
UNION ALL
SELECT r.name, c.relname, p.privilege
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
CROSS JOIN unnest(ARRAY['USAGE', 'SELECT', 'UPDATE']) AS p(privilege)
CROSS JOIN unnest(ARRAY[{_ROLE_NAMES}]) AS r(name)
WHERE n.nspname = current_schema() AND c.relkind = 'S'
  AND has_sequence_privilege(r.name, c.oid, p.privilege)
UNION ALL
SELECT r.name, 'schema', p.privilege
FROM unnest(ARRAY['USAGE', 'CREATE']) AS p(privilege)
CROSS JOIN unnest(ARRAY[{_ROLE_NAMES}]) AS r(name)
WHERE has_schema_privilege(r.name, current_schema(), p.privilege)
UNION ALL
SELECT r.name, 'database', p.privilege
FROM unnest(ARRAY['CONNECT', 'TEMPORARY', 'CREATE']) AS p(privilege)
CROSS JOIN unnest(ARRAY[{_ROLE_NAMES}]) AS r(name)
WHERE has_database_privilege(r.name, current_database(), p.privilege)
"""


def held_privileges(url: str) -> set[tuple[str, str, str]]:
    """``(role, object, privilege)`` for everything the etl-meta roles may do in ``url``.

    Objects are the schema's tables, views and sequences by name, plus ``schema`` and
    ``database`` for privileges on the schema and the database themselves.
    """
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {(r, obj, p) for r, obj, p in connection.exec_driver_sql(_HELD)}
    finally:
        engine.dispose()


def fingerprint(url: str) -> dict[str, tuple[int, str]]:
    """Row count and a digest of every row, per etl-meta table: equal means nothing changed."""
    tables = [*sorted(metadata.tables), schema.VERSION_TABLE]
    digest = "SELECT count(*), md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), ''))"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as connection:
            return {
                table: tuple(connection.exec_driver_sql(f"{digest} FROM {table} AS t").one())
                for table in tables
            }
    finally:
        engine.dispose()
