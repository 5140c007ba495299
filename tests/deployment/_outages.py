"""Making the store unavailable for a while, the ways a real database fails.

* ``refused`` (PostgreSQL): ``ALTER DATABASE … ALLOW_CONNECTIONS false`` and
  ``pg_terminate_backend`` of every backend connected to the store: new connections are refused
  ("database … is not currently accepting connections"), open ones are cut.
* ``hung`` (PostgreSQL): another session holds ``LOCK TABLE … IN ACCESS EXCLUSIVE MODE`` on the
  tables runs are recorded in (execution, component_execution, metric_point, audit_event):
  connections succeed, and every statement touching those tables waits (until the writer's statement
  timeout, if it has one).
* ``locked`` (SQLite): another **process** holds ``BEGIN EXCLUSIVE`` on the store file; writers
  wait for their busy timeout and get "database is locked". On SQLite this is both the refusing
  and the hanging outage, so the tests run it once.

Each outage is a context manager; leaving it always ends the outage, whatever happened inside.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
from sqlalchemy.engine import make_url

from tests.deployment._store import DeploymentStore

#: How long every outage lasts (issue 16: "unavailable for 30 s").
OUTAGE_SECONDS = 30.0
#: The tables a hang locks (where runs, attempts, metrics and their audit are written).
RECORDING_TABLES = ("execution", "component_execution", "metric_point", "audit_event")

#: Outages per backend. SQLite has one way to be unavailable to writers: its lock.
OUTAGES = {"postgresql": ("refused", "hung"), "sqlite": ("locked",)}

#: What an error caused by each outage may say (lower case); the deployment's logs must name one.
EXPECTED_CAUSES = {
    "refused": (
        "not accepting connections",
        "does not allow connections",
        "connection refused",
        "terminat",  # "terminating connection due to administrator command"
        "shutting down",
        "connection lost",
    ),
    "hung": ("timeout", "timed out", "canceling statement", "lock"),
    "locked": ("locked",),
}
#: Every cause a store error may name (issue 16: refused, authentication failed, database does
#: not exist, timeout, read-only; and the other reasons a database gives).
ANY_CAUSE = (
    *{c for causes in EXPECTED_CAUSES.values() for c in causes},
    "authentication",
    "does not exist",
    "read-only",
    "too many connections",
    "host not found",
    "cannot open",
    "disk",
    "unreachable",
)

_SQLITE_LOCKER = """
import sqlite3, sys
connection = sqlite3.connect(sys.argv[1], isolation_level=None, timeout=60)
connection.execute("BEGIN EXCLUSIVE")
print("locked", flush=True)
sys.stdin.read()  # until the test closes our stdin
connection.execute("ROLLBACK")
"""


@dataclass
class OutageWindow:
    """When the outage began and ended (``time.time()``), once it is over."""

    kind: str
    began_at: float = 0.0
    ended_at: float = 0.0


def _psycopg_dsn(url: str) -> str:
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


@contextlib.contextmanager
def store_outage(store: DeploymentStore, kind: str) -> Iterator[OutageWindow]:
    """The store unavailable (``kind``: refused, hung or locked) for the ``with`` block."""
    window = OutageWindow(kind)
    makers = {"refused": _refused, "hung": _hung, "locked": _locked}
    with makers[kind](store):
        window.began_at = time.time()
        try:
            yield window
        finally:
            window.ended_at = time.time()


@contextlib.contextmanager
def _refused(store: DeploymentStore) -> Iterator[None]:
    assert store.postgres is not None and store.database is not None
    database = store.database
    with store.postgres.engine.connect() as admin:
        admin.exec_driver_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        try:
            admin.exec_driver_sql(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
            )
            yield
        finally:
            admin.exec_driver_sql(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


@contextlib.contextmanager
def _hung(store: DeploymentStore) -> Iterator[None]:
    tables = ", ".join(RECORDING_TABLES)
    with psycopg.connect(_psycopg_dsn(store.admin_url), autocommit=False) as locker:
        # Taking the lock waits for transactions already holding one; keep that bounded.
        locker.execute("SET lock_timeout = '20s'")
        locker.execute(f"LOCK TABLE {tables} IN ACCESS EXCLUSIVE MODE")
        try:
            yield
        finally:
            locker.rollback()


@contextlib.contextmanager
def _locked(store: DeploymentStore) -> Iterator[None]:
    assert store.sqlite_path is not None
    locker = subprocess.Popen(
        [sys.executable, "-c", _SQLITE_LOCKER, str(store.sqlite_path)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        assert locker.stdout is not None
        line = locker.stdout.readline().decode().strip()
        assert line == "locked", f"the SQLite locker did not take the lock (said {line!r})"
        yield
    finally:
        with contextlib.suppress(OSError):
            assert locker.stdin is not None
            locker.stdin.close()
        try:
            locker.wait(timeout=10)
        except subprocess.TimeoutExpired:
            locker.kill()
            locker.wait(timeout=10)


def store_error_lines(text: str) -> list[str]:
    """Lines of ``text`` that report the store (or a write to it) failing."""
    markers = ("store is unavailable", "storeunavailableerror", "could not record")
    return [line for line in text.splitlines() if any(m in line.lower() for m in markers)]


def lines_without_cause(lines: list[str]) -> list[str]:
    """Store error lines that do not say why (no cause a user could act on)."""
    return [line for line in lines if not any(c in line.lower() for c in ANY_CAUSE)]


def lines_naming(lines: list[str], kind: str) -> list[str]:
    """Store error lines that name the cause of outage ``kind``."""
    return [line for line in lines if any(c in line.lower() for c in EXPECTED_CAUSES[kind])]


def password_leaks(files: dict[Path, bytes], password: str | None) -> list[Path]:
    """Files holding ``password`` (none when there is no password)."""
    if not password:
        return []
    needle = password.encode()
    return [path for path, data in files.items() if needle in data]
