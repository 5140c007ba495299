"""Fixtures: every store test runs once per backend (SQLite, and PostgreSQL when configured)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy.engine import make_url

from etl_meta import MetadataStore
from tests.backends import (
    POSTGRES_ENV,
    TEST_SECRET_KEY,
    MigratedDatabase,
    PostgresServer,
    backends,
    empty_database,
    isolated_settings,
    postgres_admin_url,
)
from tests.factories import Factory
from tests.plugins import STEP  # noqa: F401  (registers the test component type)

#: Set by `make test-core`: this venv holds the core install alone (no extra), so the tests of the
#: extras are left out — whole files below, single tests marked ``@pytest.mark.extra(NAME)``.
CORE_ONLY = os.environ.get("ETL_META_CORE_ONLY") == "1"

#: Test files and directories (under tests/) that import an extra's modules at their top. Any
#: other test file that does fails `make test-core` at collection: add it here.
_NEED_EXTRAS = [
    "analytics",
    "airflow",
    "components",  # the built-in component types work on pandas DataFrames
    "dagster",
    "deployment",
    "docs",  # the README's and docs' analytics examples
    "cli/test_gc.py",  # reads archives back with pandas
    "cli/test_metrics_export.py",
    "store/test_gc.py",
    "store/test_metric_partitions.py",  # compares frames (pandas)
    "store/test_strict_metric_values.py",  # numpy values
    "security/test_db_roles.py",
    "security/test_hostile_input.py",  # hostile filters and frames
    "security/test_secret_overrides.py",
    "security/test_sentinel_orchestrators.py",
]
collect_ignore = _NEED_EXTRAS if CORE_ONLY else []


def pytest_configure(config: pytest.Config) -> None:
    if not CORE_ONLY:
        return
    # The core selection must never pass merely because it ran in a venv that has everything.
    from etl_meta.extras import EXTRA_MODULES, installed

    present = sorted({m for ms in EXTRA_MODULES.values() for m in ms if installed(m)})
    if present:
        raise pytest.UsageError(
            f"ETL_META_CORE_ONLY=1, but extras are installed ({', '.join(present)}): "
            "run the core tests in .venv-core (make test-core)"
        )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not CORE_ONLY:
        return  # the full venv runs every test, marked or not
    deselected = [item for item in items if item.get_closest_marker("extra")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("extra")]


def pytest_report_header(config: pytest.Config) -> list[str]:
    if postgres_admin_url():
        lines = ["etl-meta backends: sqlite, postgresql"]
    else:
        lines = [f"etl-meta backends: sqlite only (set {POSTGRES_ENV} to add postgresql)"]
    if CORE_ONLY:
        lines.append("etl-meta install: the core alone (tests of the extras left out)")
    return lines


@pytest.fixture(autouse=True)
def _secret_keys_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Code that reads the environment (the CLI, orchestrators) encrypts with the test key too."""
    monkeypatch.setenv("ETL_META_SECRET_KEYS", TEST_SECRET_KEY)


@pytest.fixture(autouse=True)
def _cli_console_width(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's consoles as wide as for piped output, whatever terminal runs the tests.

    ``etl_meta.cli._common`` sizes them once, at import: 200 columns when output is not a
    terminal, unless ``COLUMNS`` is set. pytest-xdist's workers inherit ``COLUMNS=80``, which
    wrapped file paths and dropped table columns the tests look for.
    """
    from etl_meta.cli import _common

    for console in (_common.console, _common.err_console):
        monkeypatch.setattr(console, "width", 200)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer | None]:
    admin = postgres_admin_url()
    if admin is None:
        yield None
        return
    server = PostgresServer(admin)  # raises, failing every PostgreSQL test, when unreachable
    yield server
    server.close()


@pytest.fixture(scope="session", params=backends())
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def migrated_database(
    backend: str, postgres_server: PostgresServer | None, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[MigratedDatabase]:
    database = MigratedDatabase(backend, tmp_path_factory.mktemp(backend), postgres_server)
    yield database
    database.close()


@pytest.fixture
def store_url(migrated_database: MigratedDatabase, tmp_path: Path) -> str:
    """An empty, migrated database for this test."""
    return migrated_database.fresh_url(tmp_path)


@pytest.fixture
def settings(tmp_path: Path):
    return isolated_settings(tmp_path)


@pytest.fixture
def store(store_url: str, settings) -> Iterator[MetadataStore]:
    with MetadataStore(store_url, settings=settings) as opened:
        yield opened


@pytest.fixture
def factory(store: MetadataStore) -> Factory:
    return Factory(store)


@pytest.fixture
def admin(store_url: str) -> Iterator[psycopg.Connection]:
    """PostgreSQL: a connection outside any etl-meta pool, to read pg_stat_activity and end
    backends (as the store's login)."""
    dsn = make_url(store_url).set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(dsn, autocommit=True) as connection:
        yield connection


@pytest.fixture
def empty_url(
    backend: str, tmp_path: Path, postgres_server: PostgresServer | None
) -> Iterator[str]:
    """A database with no schema at all."""
    with empty_database(backend, tmp_path, postgres_server) as url:
        yield url


@pytest.fixture
def cli(store_url: str):
    """``cli("jobs", "list")``: run the ``etl-meta`` command line against this test's store."""
    from typer.testing import CliRunner

    from etl_meta.cli import app

    runner = CliRunner()

    def invoke(*args: str):
        return runner.invoke(app, [*args, "--database-url", store_url])

    return invoke


@pytest.fixture
def pg_server(postgres_server: PostgresServer | None) -> PostgresServer:
    """The PostgreSQL server, for tests of PostgreSQL-only features (database roles).

    Skips only when ``ETL_META_TEST_POSTGRES_URL`` is unset (a developer's SQLite-only run); CI
    always sets it, and then an unreachable server fails (``postgres_server`` raises).
    """
    from tests.role_databases import require_postgres

    return require_postgres(postgres_server)


@pytest.fixture
def pg_scratch_url(pg_server: PostgresServer) -> Iterator[str]:
    """A scratch database with no schema; roles' grants in it are dropped at the end."""
    from tests.role_databases import scratch_database

    with scratch_database(pg_server) as url:
        yield url
