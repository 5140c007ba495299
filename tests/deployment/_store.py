"""The store a deployment writes to, and what the tests read back from it with plain SQL.

On PostgreSQL the store is a scratch database owned by a login role **with a password**
(``etl_meta_test_<pid>_deploy``): the URL every process of the deployment gets carries it, so a
test can assert the password never shows up in a log. (The test server may trust loopback
connections, in which case the password is not checked, only carried.) On SQLite it is a file.

The tests read the store through SQL of their own (:meth:`DeploymentStore.records`), not through
the code under test, and count rows: "recorded exactly once" is a count.
"""

from __future__ import annotations

import json
import secrets
import shutil
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import make_url

from etl_meta import MetadataStore, schema
from etl_meta.db import create_engine
from etl_meta.definitions import apply_definitions, load_definitions
from tests.backends import PostgresServer, isolated_settings

HERE = Path(__file__).resolve().parent
#: The test pipeline (jobs for both orchestrators) and the functions it calls.
PROJECT_FILES = ("pipeline.yaml", "functions.py")


@dataclass
class RunRecord:
    """What the store holds for one orchestrator run, counted row by row."""

    executions: int
    status: str | None
    error: str | None
    #: ``(component, attempt) -> [status, ...]`` (one status per row: more than one is a duplicate)
    attempts: dict[tuple[str, int], list[str]] = field(default_factory=dict)
    attempt_errors: dict[tuple[str, int], str | None] = field(default_factory=dict)
    #: ``(component, attempt, metric name) -> [value, ...]`` (one per recorded point)
    metrics: dict[tuple[str, int, str], list[float]] = field(default_factory=dict)

    @property
    def duplicates(self) -> dict[str, int]:
        """Rows recorded more than once: executions, attempts, metric points."""
        found = Counter[str]()
        if self.executions > 1:
            found["execution"] += self.executions - 1
        found["attempt"] += sum(len(v) - 1 for v in self.attempts.values() if len(v) > 1)
        found["metric"] += sum(len(v) - 1 for v in self.metrics.values() if len(v) > 1)
        return {k: v for k, v in found.items() if v}


class DeploymentStore:
    """A migrated store holding the test pipeline; removed (database, role) by :meth:`close`."""

    def __init__(
        self, backend: str, root: Path, postgres: PostgresServer | None, *, label: str
    ) -> None:
        self.backend = backend
        self.root = root
        self.home = root / "etl_meta_home"
        self.home.mkdir(parents=True, exist_ok=True)
        self.project = root / "project"
        self.project.mkdir(parents=True, exist_ok=True)
        for name in PROJECT_FILES:
            shutil.copyfile(HERE / name, self.project / name)
        self.postgres = postgres
        self.password: str | None = None
        self.role: str | None = None
        self.database: str | None = None
        self.sqlite_path: Path | None = None
        if backend == "sqlite":
            self.sqlite_path = root / "store.db"
            self.url = f"sqlite:///{self.sqlite_path}"
        else:
            assert postgres is not None, "PostgreSQL backend without a server"
            self.url = self._create_postgres(postgres, label)
        self._reader: sa.Engine | None = None
        try:
            engine = create_engine(self.url, settings=isolated_settings(self.home))
            try:
                schema.upgrade(engine)
            finally:
                engine.dispose()
            with MetadataStore(self.url, settings=isolated_settings(self.home)) as store:
                apply_definitions(store, load_definitions(self.project / "pipeline.yaml"))
        except BaseException:
            self.close()
            raise

    def _create_postgres(self, postgres: PostgresServer, label: str) -> str:
        self.role = f"{postgres.prefix}_deploy_{label}"
        self.password = "pw-" + secrets.token_hex(12)
        self.database = f"{postgres.prefix}_{label}"
        with postgres.engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{self.role}"')
            connection.exec_driver_sql(
                f"CREATE ROLE \"{self.role}\" LOGIN PASSWORD '{self.password}'"
            )
            connection.exec_driver_sql(f'CREATE DATABASE "{self.database}" OWNER "{self.role}"')
        url = postgres.admin_url.set(
            username=self.role, password=self.password, database=self.database
        )
        return url.render_as_string(hide_password=False)

    @property
    def admin_url(self) -> str:
        """PostgreSQL: the store database as the server's administrator (outages, reads)."""
        assert self.postgres is not None and self.database is not None
        return self.postgres.admin_url.set(database=self.database).render_as_string(
            hide_password=False
        )

    def reader(self) -> sa.Engine:
        if self._reader is None:
            url = self.url if self.backend == "sqlite" else self.admin_url
            self._reader = sa.create_engine(url, poolclass=sa.pool.NullPool)
        return self._reader

    def records(self, orchestrator: str, run_ids: list[str]) -> dict[str, RunRecord]:
        """What the store holds for each of ``run_ids`` (runs it lacks are left out)."""
        if not run_ids:
            return {}
        found: dict[str, RunRecord] = {}
        ids: dict[int, str] = {}
        params = {"orchestrator": orchestrator, "run_ids": list(run_ids)}
        executions = sa.text(
            "SELECT id, external_run_id, status, error FROM execution "
            "WHERE orchestrator = :orchestrator AND external_run_id IN :run_ids"
        ).bindparams(sa.bindparam("run_ids", expanding=True))
        attempts = sa.text(
            "SELECT ce.execution_id, c.name, ce.attempt, ce.status, ce.error "
            "FROM component_execution ce JOIN component c ON c.id = ce.component_id "
            "WHERE ce.execution_id IN :ids"
        ).bindparams(sa.bindparam("ids", expanding=True))
        metrics = sa.text(
            "SELECT s.execution_id, c.name, s.attempt, n.name, p.value "
            "FROM metric_point p JOIN metric_series s ON s.id = p.series_id "
            "JOIN metric_name n ON n.id = s.name_id JOIN component c ON c.id = s.component_id "
            "WHERE s.execution_id IN :ids ORDER BY p.series_id, p.step"
        ).bindparams(sa.bindparam("ids", expanding=True))
        with self.reader().connect() as connection:
            for row in connection.execute(executions, params):
                ids[row.id] = row.external_run_id
                if row.external_run_id in found:
                    found[row.external_run_id].executions += 1
                else:
                    found[row.external_run_id] = RunRecord(1, row.status, row.error)
            if not ids:
                return found
            for execution_id, name, attempt, status, error in connection.execute(
                attempts, {"ids": list(ids)}
            ):
                record = found[ids[execution_id]]
                record.attempts.setdefault((name, attempt), []).append(status)
                record.attempt_errors[(name, attempt)] = error
            for execution_id, component, attempt, name, value in connection.execute(
                metrics, {"ids": list(ids)}
            ):
                key = (component, attempt, name)
                found[ids[execution_id]].metrics.setdefault(key, []).append(value)
        return found

    def run_tags(self, orchestrator: str, run_ids: list[str]) -> dict[str, dict[str, str]]:
        """``{run id: {key: value}}`` of the run tags the store holds for ``run_ids``."""
        query = sa.text(
            "SELECT e.external_run_id, t.key, t.value FROM execution_tag t "
            "JOIN execution e ON e.id = t.execution_id "
            "WHERE e.orchestrator = :orchestrator AND e.external_run_id IN :run_ids"
        ).bindparams(sa.bindparam("run_ids", expanding=True))
        found: dict[str, dict[str, str]] = {run_id: {} for run_id in run_ids}
        if not run_ids:
            return found
        with self.reader().connect() as connection:
            params = {"orchestrator": orchestrator, "run_ids": list(run_ids)}
            for run_id, key, value in connection.execute(query, params):
                found[run_id][key] = value
        return found

    def created_as(self, orchestrator: str, run_ids: list[str]) -> dict[str, str]:
        """``{run id: status}`` each run had when the store first recorded it (its audit trail's
        ``create`` event)."""
        query = sa.text(
            "SELECT e.external_run_id, a.after FROM audit_event a "
            "JOIN execution e ON e.id = a.entity_id "
            "WHERE a.entity_type = 'execution' AND a.action = 'create' "
            "AND e.orchestrator = :orchestrator AND e.external_run_id IN :run_ids"
        ).bindparams(sa.bindparam("run_ids", expanding=True))
        if not run_ids:
            return {}
        with self.reader().connect() as connection:
            params = {"orchestrator": orchestrator, "run_ids": list(run_ids)}
            rows = connection.execute(query, params).all()
        # JSON comes back parsed from PostgreSQL, as text from SQLite.
        return {
            run_id: (json.loads(after) if isinstance(after, str) else after)["status"]
            for run_id, after in rows
        }

    def close(self) -> None:
        """Drop the database and role (PostgreSQL); the SQLite file goes with the temp dir."""
        if self._reader is not None:
            self._reader.dispose()
            self._reader = None
        if self.postgres is None or self.database is None:
            return
        with self.postgres.engine.connect() as connection:
            connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{self.database}" WITH (FORCE)')
            connection.exec_driver_sql(f'DROP ROLE IF EXISTS "{self.role}"')


def redact(url: str) -> str:
    """``url`` with its password hidden (for messages)."""
    return make_url(url).render_as_string(hide_password=True)
