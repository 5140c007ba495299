"""``etl-meta db roles``: the read-only ``etl_meta_reader`` role may read the ``v_*`` views only.

Database roles are a PostgreSQL feature, so most tests here need PostgreSQL. They are not
parametrized by backend: they take the ``pg_server`` fixture, which skips **only** when
``ETL_META_TEST_POSTGRES_URL`` is unset (a developer's SQLite-only run). CI always sets it, so CI
never skips them; and with it set, an unreachable server fails them (``postgres_server`` raises).

Scratch databases, the lock that serializes role tests and the cleanup of the cluster-wide role
are shared with ``tests/security/test_db_roles.py`` through ``tests/role_databases.py``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from etl_meta import schema as schema_mod
from etl_meta.cli import app
from etl_meta.db import create_engine
from etl_meta.models import metadata
from etl_meta.roles import READER_ROLE, READER_VIEWS, RolesUnsupportedError, ensure_reader_role
from tests.backends import isolated_settings
from tests.role_databases import (
    denied,
    migrate_and_seed,
    url_as,
)

PASSWORD_ENV = "ETL_META_TEST_READER_PASSWORD"
PASSWORD = "reader-pw-3c9f'quote"
SECRET = "reader-secret-e41d"
#: Base tables holding configuration, run configuration, requests or the audit trail.
SENSITIVE = ("component", "component_config", "execution", "run_request", "audit_event")
ALL_TABLES = (*sorted(metadata.tables), schema_mod.VERSION_TABLE)


@pytest.fixture
def reader_db(pg_scratch_url: str, tmp_path: Path) -> str:
    """A migrated scratch database with rows in every table and a secret in a component."""
    return migrate_and_seed(pg_scratch_url, tmp_path, secret=SECRET)


def _roles(url: str, *extra: str, env: dict[str, str] | None = None):
    return CliRunner().invoke(app, ["db", "roles", *extra, "--database-url", url], env=env)


def _as_reader(url: str) -> sa.Engine:
    return sa.create_engine(url_as(url, READER_ROLE, PASSWORD), isolation_level="AUTOCOMMIT")


def _denied(engine: sa.Engine, statement: str) -> bool:
    return denied(engine.url.render_as_string(hide_password=False), READER_ROLE, statement)


def test_roles_twice_then_the_reader_reads_the_views_and_nothing_else(reader_db):
    env = {PASSWORD_ENV: PASSWORD}
    first = _roles(reader_db, "--reader-password-env", PASSWORD_ENV, env=env)
    assert first.exit_code == 0, first.output
    second = _roles(reader_db, "--reader-password-env", PASSWORD_ENV, env=env)
    assert second.exit_code == 0, second.output
    assert f"role {READER_ROLE} exists (LOGIN)" in second.output
    for output in (first.output, second.output):
        assert PASSWORD not in output and "SCRAM" not in output
        assert "GRANT SELECT ON v_run, v_step_attempt" in output
        assert "REVOKE ALL ON ALL TABLES IN SCHEMA public FROM etl_meta_reader" in output

    reader = _as_reader(reader_db)
    try:
        with reader.connect() as connection:
            assert connection.exec_driver_sql("SELECT current_user").scalar() == READER_ROLE
            for view in READER_VIEWS:
                found = connection.exec_driver_sql(f"SELECT * FROM {view}").all()
                assert found, f"{view} returned nothing to the reader"
                assert SECRET not in repr(found)

        for table in SENSITIVE:
            assert _denied(reader, f"SELECT * FROM {table}"), table
        for table in ALL_TABLES:
            assert _denied(reader, f"SELECT 1 FROM {table} LIMIT 1"), table
            assert _denied(reader, f"INSERT INTO {table} DEFAULT VALUES"), table
            assert _denied(reader, f"DELETE FROM {table}"), table
            assert _denied(reader, f"TRUNCATE {table}"), table
        for table in metadata.sorted_tables:
            column = next(iter(table.columns)).name
            assert _denied(reader, f"UPDATE {table.name} SET {column} = {column}"), table.name
        # v_job reads one table, so PostgreSQL would let a privileged role write through it; the
        # other views join tables and are not updatable by anyone.
        assert _denied(reader, "DELETE FROM v_job")
        assert _denied(reader, "UPDATE v_job SET job = job")
        assert _denied(reader, "CREATE TABLE reader_was_here (id integer)")
        assert _denied(reader, "CREATE VIEW reader_was_here AS SELECT 1 AS one")
    finally:
        reader.dispose()


def test_roles_revokes_privileges_granted_by_hand(reader_db):
    assert _roles(reader_db).exit_code == 0
    admin = sa.create_engine(reader_db, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            connection.exec_driver_sql(f"GRANT SELECT, UPDATE ON component TO {READER_ROLE}")
            connection.exec_driver_sql(f"GRANT CREATE ON SCHEMA public TO {READER_ROLE}")
        result = _roles(reader_db)
        assert result.exit_code == 0, result.output
        assert "login and password unchanged" in result.output
        with admin.connect() as connection:
            held = connection.execute(
                sa.text(
                    "SELECT has_table_privilege(:role, 'component', 'SELECT, UPDATE'), "
                    "has_schema_privilege(:role, 'public', 'CREATE')"
                ),
                {"role": READER_ROLE},
            ).one()
        assert tuple(held) == (False, False)
    finally:
        admin.dispose()


def test_ensure_reader_role_returns_what_it_did_without_the_password(reader_db):
    engine = sa.create_engine(reader_db)
    try:
        applied = ensure_reader_role(engine, password=PASSWORD)
        again = ensure_reader_role(engine, password=PASSWORD)
        with engine.connect() as connection:
            stored = connection.execute(
                sa.text("SELECT rolcanlogin, rolpassword FROM pg_authid WHERE rolname = :name"),
                {"name": READER_ROLE},
            ).one()
    finally:
        engine.dispose()
    for lines in (applied, again):
        assert not [line for line in lines if PASSWORD in line or "SCRAM" in line]
        assert f"ALTER ROLE {READER_ROLE} LOGIN PASSWORD '********'" in lines
        assert not [line for line in lines if line.startswith("warning:")]
    assert stored[0] is True
    assert stored[1].startswith("SCRAM-SHA-256$") and PASSWORD not in stored[1]


def test_a_new_reader_role_cannot_log_in_without_a_password(pg_scratch_url):
    """The NOLOGIN default, shown on a throwaway role inside a transaction that is rolled back
    (the real role may already exist from an earlier run; roles are cluster-wide)."""
    from etl_meta.roles import _ensure_role, _Role

    name = "etl_meta_test_role_probe"
    engine = sa.create_engine(pg_scratch_url)
    try:
        with engine.connect() as connection:
            transaction = connection.begin()
            try:
                applied = _ensure_role(connection, _Role(name, None))
                created = connection.execute(
                    sa.text("SELECT rolcanlogin, rolsuper FROM pg_roles WHERE rolname = :n"),
                    {"n": name},
                ).one()
            finally:
                transaction.rollback()
            gone = connection.execute(
                sa.text("SELECT count(*) FROM pg_roles WHERE rolname = :n"), {"n": name}
            ).scalar()
    finally:
        engine.dispose()
    assert applied == [f"CREATE ROLE {name} NOLOGIN"]
    assert tuple(created) == (False, False)
    assert gone == 0


def test_roles_refuses_a_database_without_the_schema(pg_scratch_url):
    result = _roles(pg_scratch_url)
    assert result.exit_code == 1
    assert "etl-meta db upgrade" in result.output


def test_roles_refuses_an_unset_password_variable(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.db'}"  # checked before connecting, on any backend
    result = _roles(url, "--reader-password-env", "ETL_META_TEST_UNSET_VARIABLE_X")
    assert result.exit_code == 1
    assert "ETL_META_TEST_UNSET_VARIABLE_X is not set" in result.output


def test_roles_on_sqlite_explains_that_roles_need_postgresql(tmp_path):
    result = _roles(f"sqlite:///{tmp_path / 'store.db'}")
    assert result.exit_code == 0, result.output
    assert "SQLite has no database roles" in result.output
    assert "PostgreSQL" in result.output
    engine = create_engine(
        f"sqlite:///{tmp_path / 'store.db'}", settings=isolated_settings(tmp_path)
    )
    try:
        with pytest.raises(RolesUnsupportedError, match="PostgreSQL"):
            ensure_reader_role(engine)
    finally:
        engine.dispose()
