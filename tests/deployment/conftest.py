"""Real deployments (``dagster dev``; Airflow's four processes) on a store that goes away.

These tests carry the ``deployment`` marker: ``make test`` deselects them and
``make test-deployment`` runs them (docs/internals/deployment-tests.md); the ``distributed``
ones (Celery workers, Dagster's run queue) run through ``make test-distributed`` only. Each
module starts one deployment per store backend (the distributed ones: on PostgreSQL only) and
reuses it for all its scenarios; fixtures stop every process group and drop every scratch
database (and role) they made, also when a test fails.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.backends import PostgresServer
from tests.deployment._store import DeploymentStore


def _store(
    backend: str, postgres: PostgresServer | None, root: Path, label: str
) -> Iterator[DeploymentStore]:
    store = DeploymentStore(backend, root, postgres, label=label)
    try:
        yield store
    finally:
        store.close()


@pytest.fixture(scope="module")
def dagster_store(
    backend: str,
    postgres_server: PostgresServer | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DeploymentStore]:
    """The store of this module's Dagster deployment (one per backend)."""
    root = tmp_path_factory.mktemp(f"dagster_{backend}")
    yield from _store(backend, postgres_server, root, "dagster")


@pytest.fixture(scope="module")
def airflow_store(
    backend: str,
    postgres_server: PostgresServer | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DeploymentStore]:
    """The store of this module's Airflow deployment (one per backend)."""
    root = tmp_path_factory.mktemp(f"airflow_{backend}")
    yield from _store(backend, postgres_server, root, "airflow")


@pytest.fixture(scope="module")
def distributed_store(
    request: pytest.FixtureRequest,
    postgres_server: PostgresServer | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DeploymentStore]:
    """The PostgreSQL store of this module's distributed deployment (``distributed`` tests).

    PostgreSQL only: workers on several machines share a server, never a SQLite file. Labelled
    after the module (``test_airflow_celery`` → ``airflow_celery``).
    """
    if postgres_server is None:
        pytest.skip("distributed deployments need PostgreSQL: set ETL_META_TEST_POSTGRES_URL")
    label = request.module.__name__.rpartition(".")[2].removeprefix("test_")
    root = tmp_path_factory.mktemp(label)
    yield from _store("postgresql", postgres_server, root, label)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """The measured figures of every scenario that ran (issue 16's note asks for them)."""
    from tests.deployment._scenario import FIGURES

    if FIGURES:
        terminalreporter.section("deployment figures")
        for line in FIGURES:
            terminalreporter.write_line(line)
