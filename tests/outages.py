"""Make a test store unavailable the ways production stores are, and bring it back.

* :func:`writes_hang` — writers wait, readers still read: SQLite, another connection holds
  ``BEGIN EXCLUSIVE`` (WAL mode keeps readers going); PostgreSQL, another session holds
  ``EXCLUSIVE`` locks on the tables runs write (``ACCESS EXCLUSIVE`` would stop reads too).
* :func:`connections_refused` (PostgreSQL) — ``ALLOW_CONNECTIONS false`` and every backend of
  the database terminated, as an operator taking a database away would.

Each is a context manager; :func:`released_after` ends one from a timer thread, so a run can
start during the outage and go on after it.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager

import psycopg
from sqlalchemy.engine import make_url

from tests.backends import postgres_admin_url

#: The tables a run's recording writes (and, with secrets, a configuration read: the audit).
RUN_TABLES = (
    "execution",
    "component_execution",
    "metric_series",
    "metric_point",
    "metric_latest",
    "audit_event",
)


def _dsn(url: str, database: str | None = None) -> str:
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@contextmanager
def writes_hang(store_url: str, tables: tuple[str, ...] = RUN_TABLES) -> Iterator[None]:
    """Writers to the store wait for a lock until the block ends."""
    parsed = make_url(store_url)
    if parsed.get_backend_name() == "sqlite":
        holder = sqlite3.connect(parsed.database or "", isolation_level=None, timeout=30)
        try:
            holder.execute("BEGIN EXCLUSIVE")
            yield
        finally:
            holder.execute("ROLLBACK")
            holder.close()
        return
    with psycopg.connect(_dsn(store_url), autocommit=False) as holder:
        names = ", ".join(tables)
        holder.execute(f"LOCK TABLE {names} IN EXCLUSIVE MODE")
        try:
            yield
        finally:
            holder.rollback()


@contextmanager
def connections_refused(store_url: str) -> Iterator[None]:
    """PostgreSQL refuses every connection to the store's database until the block ends."""
    database = make_url(store_url).database
    admin_url = postgres_admin_url()
    assert admin_url is not None, "connections_refused needs the PostgreSQL test server"
    with psycopg.connect(_dsn(admin_url), autocommit=True) as admin:
        admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = %s AND pid <> pg_backend_pid()",
            (database,),
        )
        try:
            yield
        finally:
            admin.execute(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS true')


def outage(kind: str, store_url: str) -> AbstractContextManager[None]:
    """``"hang"`` or ``"refuse"`` (SQLite cannot refuse: a file is always there; it hangs)."""
    if kind == "refuse" and make_url(store_url).get_backend_name() == "postgresql":
        return connections_refused(store_url)
    return writes_hang(store_url)


@contextmanager
def released_after(
    seconds: float, manager: AbstractContextManager[None]
) -> Iterator[Callable[[], bool]]:
    """Enter ``manager`` now and leave it ``seconds`` later from a thread.

    Yields a function telling whether the outage is over; the block's exit waits for it.
    """
    entered = threading.Event()
    over = threading.Event()
    failure: list[BaseException] = []

    def hold() -> None:
        try:
            with manager:
                entered.set()
                over.wait(seconds)
        except BaseException as exc:  # surfaced in the test thread below
            failure.append(exc)
            entered.set()
        finally:
            over.set()

    thread = threading.Thread(target=hold, name="outage", daemon=True)
    thread.start()
    entered.wait(30)
    if failure:
        raise failure[0]
    try:
        yield over.is_set
    finally:
        thread.join(seconds + 30)
        if failure:
            raise failure[0]
