"""Test databases on each backend: created, migrated and cleaned here, nowhere else.

SQLite always runs. PostgreSQL runs when ``ETL_META_TEST_POSTGRES_URL`` names a server database
to administer from (``make test`` in CI sets it); then an unreachable server is an error, never a
skip. Every scratch database this module creates is named ``etl_meta_test_<pid>_…`` and dropped at
the end of the session.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from etl_meta import schema
from etl_meta.config import Settings, normalize_database_url
from etl_meta.db import create_engine
from etl_meta.models import metadata

POSTGRES_ENV = "ETL_META_TEST_POSTGRES_URL"


def postgres_admin_url() -> str | None:
    """The server database to create scratch databases from, or ``None`` (SQLite only)."""
    url = os.environ.get(POSTGRES_ENV, "").strip()
    return normalize_database_url(url) if url else None


def backends() -> list[str]:
    return ["sqlite", "postgresql"] if postgres_admin_url() else ["sqlite"]


#: The encryption key every test store uses unless a test sets its own (never a real secret).
TEST_SECRET_KEY = "dGVzdC1vbmx5LWtleS1kby1ub3QtdXNlLTAxMjM0NTY="


def isolated_settings(home: Path, **overrides: object) -> Settings:
    """Settings that ignore the developer's own ETL_META_* environment and .env file."""
    values: dict[str, object] = {
        "home": home,
        "database_url": None,
        "actor": "tester@test",
        "secret_keys": TEST_SECRET_KEY,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


class PostgresServer:
    """Creates and drops scratch databases on the test server."""

    def __init__(self, admin_url: str) -> None:
        self.admin_url = make_url(admin_url)
        self.engine = sa.create_engine(self.admin_url, isolation_level="AUTOCOMMIT")
        self.prefix = f"etl_meta_test_{os.getpid()}"
        self.created: list[str] = []
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except sa.exc.OperationalError as exc:
            raise RuntimeError(
                f"{POSTGRES_ENV} is set but PostgreSQL is unreachable at "
                f"{self.admin_url.render_as_string(hide_password=True)}: {exc.orig}"
            ) from None

    def create_database(self, label: str | None = None) -> str:
        name = f"{self.prefix}_{label or uuid.uuid4().hex[:8]}"
        with self.engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        self.created.append(name)
        return self.admin_url.set(database=name).render_as_string(hide_password=False)

    def drop_database(self, url: str) -> None:
        name = make_url(url).database
        with self.engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        if name in self.created:
            self.created.remove(name)

    def close(self) -> None:
        for name in list(self.created):
            with self.engine.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        self.engine.dispose()


class MigratedDatabase:
    """One migrated database per backend per session, reset to empty before each test."""

    def __init__(self, backend: str, workdir: Path, server: PostgresServer | None) -> None:
        self.backend = backend
        self.workdir = workdir
        self.server = server
        settings = isolated_settings(workdir)
        if backend == "sqlite":
            self.template = workdir / "template.db"
            self.url = f"sqlite:///{self.template}"
        else:
            assert server is not None
            self.url = server.create_database("shared")
        engine = create_engine(self.url, settings=settings)
        try:
            schema.upgrade(engine)
        finally:
            engine.dispose()
        self._reset_engine = (
            # pre-ping: outage tests terminate every backend of the database, this one's too
            sa.create_engine(self.url, isolation_level="AUTOCOMMIT", pool_pre_ping=True)
            if backend == "postgresql"
            else None
        )
        self._reset = self._reset_statement() if self._reset_engine is not None else ""

    def _reset_statement(self) -> str:
        """Empty every table and restart every sequence: DELETE, children first, rather than
        TRUNCATE, which replaces each table's files (70 ms against 3 ms for the few rows a test
        leaves, before each of about a thousand PostgreSQL tests)."""
        assert self._reset_engine is not None
        with self._reset_engine.connect() as connection:
            sequences = connection.exec_driver_sql(
                "SELECT sequencename FROM pg_sequences WHERE schemaname = current_schema()"
            ).scalars()
            restarts = [f'ALTER SEQUENCE "{name}" RESTART' for name in sequences]
        deletes = [f'DELETE FROM "{t.name}"' for t in reversed(metadata.sorted_tables)]
        return "; ".join(deletes + restarts)

    def fresh_url(self, tmp_path: Path) -> str:
        """A URL to an empty, fully migrated database for one test."""
        if self.backend == "sqlite":
            target = tmp_path / "store.db"
            shutil.copyfile(self.template, target)
            return f"sqlite:///{target}"
        assert self._reset_engine is not None
        with self._reset_engine.connect() as connection:
            connection.exec_driver_sql(self._reset)
        return self.url

    def close(self) -> None:
        if self._reset_engine is not None:
            self._reset_engine.dispose()


@contextmanager
def empty_database(backend: str, tmp_path: Path, server: PostgresServer | None) -> Iterator[str]:
    """A URL to a database with nothing in it (for migration tests)."""
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    assert server is not None
    url = server.create_database()
    try:
        yield url
    finally:
        server.drop_database(url)


def postgresql_only() -> pytest.MarkDecorator:
    """Run a test on the PostgreSQL backend only (plans, row locks: things SQLite lacks).

    With PostgreSQL configured (always in CI) the test runs once; without it, pytest reports an
    empty parameter set instead of a SQLite variant that could only skip.
    """
    return pytest.mark.parametrize(
        "backend", [b for b in backends() if b == "postgresql"], indirect=True
    )


def sqlite_only() -> pytest.MarkDecorator:
    """Run a test on the SQLite backend only (its file, its driver: things PostgreSQL lacks)."""
    return pytest.mark.parametrize("backend", ["sqlite"], indirect=True)
