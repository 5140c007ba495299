"""A pooled PostgreSQL connection the server ended is replaced at checkout; a hot one is not pinged.

The PostgreSQL tests watch the real server from a separate admin connection: they end backends
with ``pg_terminate_backend`` and read ``pg_stat_activity.query``, the last statement a backend
ran, to see whether a checkout pinged. SQLite has no server to lose a connection to.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path

import psycopg
import pytest
from pydantic import ValidationError
from sqlalchemy.engine import Engine

from etl_meta import MetadataStore
from etl_meta.config import Settings
from etl_meta.db import create_engine
from tests.backends import isolated_settings, postgresql_only

#: What a checkout's ping runs: SQLAlchemy's psycopg ``do_ping`` sends the empty statement.
PING = ";"
#: A statement only these tests run, so pg_stat_activity tells "our last query" from a ping.
MARKER = "SELECT pg_backend_pid() /* pool liveness test */"
#: ``pool_ping_after_seconds`` that leaves only the no-I/O checks to catch a dead connection.
NEVER_BY_AGE = 3600.0


@pytest.fixture
def open_engine(store_url: str, tmp_path: Path) -> Iterator[Callable[..., Engine]]:
    """``open_engine(pool_ping_after_seconds=…)``: an etl-meta engine on the test database."""
    engines: list[Engine] = []

    def open_(**settings: object) -> Engine:
        engine = create_engine(store_url, settings=isolated_settings(tmp_path, **settings))
        engines.append(engine)
        return engine

    yield open_
    for engine in engines:
        engine.dispose()


def pooled_pids(engine: Engine, count: int) -> list[int]:
    """Backend pids of ``count`` connections checked out at once, each having run ``MARKER``."""
    with ExitStack() as stack:
        connections = [
            stack.enter_context(engine.connect().execution_options(isolation_level="AUTOCOMMIT"))
            for _ in range(count)
        ]
        # AUTOCOMMIT: no COMMIT or ROLLBACK follows, so MARKER stays the backend's last statement.
        return [connection.exec_driver_sql(MARKER).scalar_one() for connection in connections]


def last_statement(admin: psycopg.Connection, pid: int) -> str:
    row = admin.execute("SELECT query FROM pg_stat_activity WHERE pid = %s", (pid,)).fetchone()
    assert row is not None, f"backend {pid} is gone"
    return row[0]


def statement_at_checkout(engine: Engine, admin: psycopg.Connection, pid: int) -> str:
    """Check a connection out (running nothing on it) and return ``pid``'s last statement."""
    raw = engine.raw_connection()
    try:
        assert raw.dbapi_connection.info.backend_pid == pid  # read locally, no round trip
        return last_statement(admin, pid)
    finally:
        raw.close()


def terminate(admin: psycopg.Connection, *pids: int) -> None:
    """End the backends ``pids`` and wait until the server no longer lists them."""
    for pid in pids:
        assert admin.execute("SELECT pg_terminate_backend(%s)", (pid,)).fetchone() == (True,)
    deadline = time.monotonic() + 10
    alive = "SELECT count(*) FROM pg_stat_activity WHERE pid = ANY(%s)"
    while admin.execute(alive, (list(pids),)).fetchone() != (0,):
        assert time.monotonic() < deadline, f"backends {pids} outlived pg_terminate_backend"
        time.sleep(0.01)


@postgresql_only()
def test_a_store_read_survives_the_server_ending_its_idle_pooled_connection(
    store_url: str, tmp_path: Path, admin: psycopg.Connection
) -> None:
    settings = isolated_settings(
        tmp_path, pool_size=1, max_overflow=0, pool_ping_after_seconds=NEVER_BY_AGE
    )
    with MetadataStore(store_url, settings=settings) as store:
        assert store.jobs.list() == []
        [ended] = pooled_pids(store.engine, 1)  # the pool's only connection
        terminate(admin, ended)

        assert store.jobs.list() == []
        [replacement] = pooled_pids(store.engine, 1)
        assert replacement != ended


@postgresql_only()
def test_store_reads_survive_the_server_ending_every_pooled_connection(
    store_url: str, tmp_path: Path, admin: psycopg.Connection
) -> None:
    settings = isolated_settings(
        tmp_path, pool_size=2, max_overflow=0, pool_ping_after_seconds=NEVER_BY_AGE
    )
    with MetadataStore(store_url, settings=settings) as store:
        ended = set(pooled_pids(store.engine, 2))  # both of the pool's connections
        assert len(ended) == 2
        terminate(admin, *ended)

        assert store.jobs.list() == []
        replacements = set(pooled_pids(store.engine, 2))
        assert len(replacements) == 2 and not replacements & ended


@postgresql_only()
def test_a_connection_back_from_a_recent_query_is_handed_out_without_a_ping(
    open_engine: Callable[..., Engine], admin: psycopg.Connection
) -> None:
    engine = open_engine(pool_ping_after_seconds=NEVER_BY_AGE)
    [pid] = pooled_pids(engine, 1)
    assert last_statement(admin, pid) == MARKER

    assert statement_at_checkout(engine, admin, pid) == MARKER
    assert statement_at_checkout(engine, admin, pid) == MARKER


@postgresql_only()
def test_a_connection_just_opened_is_handed_out_without_a_ping(
    open_engine: Callable[..., Engine], admin: psycopg.Connection
) -> None:
    engine = open_engine(pool_ping_after_seconds=NEVER_BY_AGE)
    raw = engine.raw_connection()  # the pool's first connection: opened by this checkout
    try:
        assert last_statement(admin, raw.dbapi_connection.info.backend_pid) != PING
    finally:
        raw.close()


@postgresql_only()
def test_with_ping_after_zero_every_checkout_pings(
    open_engine: Callable[..., Engine], admin: psycopg.Connection
) -> None:
    engine = open_engine(pool_ping_after_seconds=0)
    [pid] = pooled_pids(engine, 1)
    assert last_statement(admin, pid) == MARKER

    assert statement_at_checkout(engine, admin, pid) == PING


@postgresql_only()
def test_a_connection_idle_past_the_threshold_is_pinged_at_checkout(
    open_engine: Callable[..., Engine], admin: psycopg.Connection
) -> None:
    engine = open_engine(pool_ping_after_seconds=0.2)
    [pid] = pooled_pids(engine, 1)
    time.sleep(0.3)
    assert last_statement(admin, pid) == MARKER

    assert statement_at_checkout(engine, admin, pid) == PING


def test_pool_ping_after_seconds_refuses_a_negative_value(tmp_path: Path) -> None:
    with pytest.raises(ValidationError) as caught:
        isolated_settings(tmp_path, pool_ping_after_seconds=-1)
    assert [error["loc"] for error in caught.value.errors()] == [("pool_ping_after_seconds",)]


def test_pool_ping_after_seconds_defaults_to_five_and_reads_its_environment_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("ETL_META_POOL_PING_AFTER_SECONDS", raising=False)
    assert Settings(_env_file=None, home=tmp_path).pool_ping_after_seconds == 5.0

    monkeypatch.setenv("ETL_META_POOL_PING_AFTER_SECONDS", "0.5")
    assert Settings(_env_file=None, home=tmp_path).pool_ping_after_seconds == 0.5
    monkeypatch.setenv("ETL_META_POOL_PING_AFTER_SECONDS", "0")
    assert Settings(_env_file=None, home=tmp_path).pool_ping_after_seconds == 0


@postgresql_only()
def test_the_metric_writes_own_connection_is_replaced_when_the_server_ends_it(store, admin):
    from tests.factories import Factory

    job = Factory(store).job()
    Factory(store).execution(job.name, run_id="held")
    target = store.metrics.target("extract", orchestrator="dagster", run_id="held")
    assert store.metrics.record_to(target, [("extract", "rows", 1.0, 0)]).inserted == 1
    held = store.held_connection.acquire()
    pid = held.info.backend_pid
    store.held_connection.release()
    terminate(admin, pid)
    # No error reaches the writer: the dead connection is seen before use and replaced.
    assert store.metrics.record_to(target, [("extract", "rows", 2.0, 1)]).inserted == 1
    held = store.held_connection.acquire()
    assert held.info.backend_pid != pid
    store.held_connection.release()
