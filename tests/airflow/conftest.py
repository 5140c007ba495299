"""Airflow runs in-process here: its environment is set before anything imports ``airflow``.

Airflow reads its configuration when first imported (and would create ``~/airflow`` otherwise),
so this module points it at a throwaway home, SQLite metadata database and dags folder at import
time, before any test module is collected. The Airflow database is created once per session;
the etl-meta store is the usual per-test ``store_url`` (SQLite, and PostgreSQL when configured).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(tempfile.mkdtemp(prefix="etl_meta_airflow_tests_"))
DAGS_FOLDER = ROOT / "dags"
DAGS_FOLDER.mkdir()
os.environ.update(
    {
        "AIRFLOW_HOME": str(ROOT / "home"),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{ROOT / 'airflow.db'}",
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
        "AIRFLOW__CORE__PLUGINS_FOLDER": str(ROOT / "plugins"),
        "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(ROOT / "logs"),
    }
)


# Airflow's in-process API client imports Starlette's test client, which warns about httpx: at
# collection (this filter) and in tests (the ini line).
_TESTCLIENT_WARNING = ".*starlette.testclient"
warnings.filterwarnings("ignore", message=_TESTCLIENT_WARNING)


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("filterwarnings", f"ignore:{_TESTCLIENT_WARNING}")


@pytest.fixture(scope="session", autouse=True)
def airflow_db() -> Iterator[Path]:
    """Airflow's metadata database, created once; the temporary tree is removed at the end."""
    from airflow.utils import db

    db.resetdb()
    yield ROOT
    from etl_meta.airflow import stores

    stores.dispose_all()
    shutil.rmtree(ROOT, ignore_errors=True)


@pytest.fixture
def airflow_env(monkeypatch: pytest.MonkeyPatch, store_url: str, tmp_path: Path) -> Iterator[Path]:
    """The environment tasks and the listener read: this test's store and home.

    The listener's background writer and circuit breaker are per process: each test starts
    with fresh ones, so nothing one test queued lands in another's store.
    """
    from etl_meta.airflow import background, stores

    monkeypatch.setenv("ETL_META_DATABASE_URL", store_url)
    monkeypatch.setenv("ETL_META_HOME", str(tmp_path))
    monkeypatch.delenv("ETL_META_AIRFLOW_DATA_DIR", raising=False)
    background.reset()
    yield tmp_path
    background.reset()
    stores.dispose_all()


@pytest.fixture(scope="session")
def api_server(airflow_db: Path) -> Iterator[Any]:
    """A real ``airflow api-server`` on this session's Airflow database (see api_server.py)."""
    from tests.airflow import api_server as server_module

    server = server_module.start(airflow_db)
    yield server
    server.stop()
