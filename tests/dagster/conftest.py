"""Fixtures for the Dagster tests: the example pipeline, and ONE ``dagster dev`` per backend.

The server is session-scoped (the e2e and reload tests share it) so it gets its own store
database: the function-scoped ``store_url`` empties the shared one before every test, which
must not happen under a running daemon.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

from etl_meta import MetadataStore, schema
from etl_meta.db import create_engine
from etl_meta.definitions import DefinitionsFile, apply_definitions, load_definitions
from tests.backends import PostgresServer, isolated_settings
from tests.dagster._server import REPO_ROOT, DagsterDev, server_env, write_dagster_home

EXAMPLES = REPO_ROOT / "examples"
PIPELINE = EXAMPLES / "pipeline.yaml"


def copy_examples(target: Path) -> Path:
    """The example project (pipeline, data, functions.py) in ``target``; outputs land there."""
    shutil.copytree(EXAMPLES, target, ignore=shutil.ignore_patterns("output", "__pycache__"))
    return target


def example_definitions() -> DefinitionsFile:
    return load_definitions(PIPELINE)


@dataclass
class DagsterDevServer:
    """A running ``dagster dev`` with the example applied to its own store."""

    backend: str
    server: DagsterDev
    store_url: str
    home: Path
    project: Path

    @contextmanager
    def store(self) -> Iterator[MetadataStore]:
        with MetadataStore(self.store_url, settings=isolated_settings(self.home)) as opened:
            yield opened

    @contextmanager
    def instance(self):  # -> DagsterInstance: the server's own (runs, events, step stats)
        import dagster as dg

        instance = dg.DagsterInstance.from_config(str(self.server.dagster_home))
        try:
            yield instance
        finally:
            instance.dispose()


@pytest.fixture(scope="session")
def dagster_dev(
    backend: str,
    postgres_server: PostgresServer | None,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[DagsterDevServer]:
    root = tmp_path_factory.mktemp(f"dagster_dev_{backend}")
    home = root / "etl_meta_home"
    home.mkdir()
    if backend == "sqlite":
        url = f"sqlite:///{root / 'store.db'}"
    else:
        assert postgres_server is not None
        url = postgres_server.create_database("dagster_dev")
    try:
        engine = create_engine(url, settings=isolated_settings(home))
        try:
            schema.upgrade(engine)
        finally:
            engine.dispose()
        project = copy_examples(root / "project")
        with MetadataStore(url, settings=isolated_settings(home)) as store:
            apply_definitions(store, load_definitions(project / "pipeline.yaml"))
        env = server_env(
            store_url=url,
            home=home,
            base_dir=project,
            dagster_home=write_dagster_home(root / "dagster_home"),
        )
        server = DagsterDev(env, root / "dagster_dev.log")
        with server:
            server.wait_for_sensors()
            yield DagsterDevServer(backend, server, url, home, project)
    finally:
        if backend == "postgresql":
            assert postgres_server is not None
            postgres_server.drop_database(url)  # after the server (and its daemon) stopped
