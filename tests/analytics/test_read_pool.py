"""Small PostgreSQL reads run on the store's read connections (``etl_meta.analytics._read_pool``).

The tests watch the real server from an admin connection (``pg_stat_activity``): which
connections exist, under which name and login, with which settings; they end backends with
``pg_terminate_backend``. SQLite reads use the store's own connections, so these tests are
PostgreSQL's.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
import pytest

from etl_meta import MetadataStore
from etl_meta.analytics import _read_pool, metrics_frame
from etl_meta.analytics._connections import read_connection
from etl_meta.analytics._read_pool import ReadPool, read_pool
from etl_meta.errors import StoreUnavailableError
from tests.analytics.forking import assert_a_forked_child_reads_on_its_own
from tests.backends import isolated_settings, postgresql_only
from tests.factories import Factory, sample_points
from tests.store.test_pool_liveness import terminate

pytestmark = postgresql_only()

AT = datetime(2026, 3, 1, 12, tzinfo=UTC)


@pytest.fixture
def run_id(store: MetadataStore, factory: Factory) -> int:
    factory.job(name="sales")  # extract -> load, the components sample_points names
    run = factory.finished_run("sales", run_id="pool-1")
    store.metrics.record(sample_points(0, AT), execution_id=run.id)
    return run.id


def _readers(admin: psycopg.Connection, database: str) -> dict[int, tuple[str, str]]:
    """The read connections on ``database``: pid → (login, application_name)."""
    rows = admin.execute(
        "SELECT pid, usename, application_name FROM pg_stat_activity "
        "WHERE datname = %s AND application_name LIKE %s",
        (database, "% (reads)"),
    ).fetchall()
    return {pid: (login, name) for pid, login, name in rows}


def test_a_small_read_runs_on_a_read_connection_kept_for_the_next(store, run_id, admin):
    database = store.engine.url.database
    before = _readers(admin, database)
    first = metrics_frame(store, run=run_id)
    ours = _readers(admin, database).keys() - before.keys()
    assert len(ours) == 1  # opened, then kept
    pd.testing.assert_frame_equal(metrics_frame(store, run=run_id), first)
    assert _readers(admin, database).keys() - before.keys() == ours  # the same one, reused
    with store.engine.connect() as own:
        login = own.exec_driver_sql("SELECT current_user").scalar_one()
    assert _readers(admin, database)[ours.pop()] == (login, "etl-meta (reads)")


def test_read_connections_carry_the_stores_settings_and_cannot_write(store_url, tmp_path: Path):
    settings = isolated_settings(tmp_path, statement_timeout_ms=4321)
    with MetadataStore(store_url, settings=settings) as opened:
        with read_connection(opened, small=True) as connection:
            seen = connection.prepared_rows(
                "SELECT current_setting('statement_timeout'), "
                "current_setting('default_transaction_read_only')",
                None,
            )
            assert seen == [("4321ms", "on")]
            with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
                connection.driver.execute("CREATE TABLE etl_meta_read_pool_probe (i int)")
        # The failed statement left the connection idle: it is kept and reads again.
        with read_connection(opened, small=True) as connection:
            assert connection.prepared_rows("SELECT 1", None) == [(1,)]


def test_a_read_connection_the_server_ended_is_replaced(store, run_id, admin):
    database = store.engine.url.database
    before = _readers(admin, database)
    expected = metrics_frame(store, run=run_id)
    (ended,) = _readers(admin, database).keys() - before.keys()
    terminate(admin, ended)
    # Idle for less than pool_ping_after_seconds, but its socket tells it is gone: replaced
    # before the read, which succeeds.
    pd.testing.assert_frame_equal(metrics_frame(store, run=run_id), expected)
    now = _readers(admin, database).keys() - before.keys()
    assert len(now) == 1 and ended not in now


def test_closing_the_store_closes_its_read_connections(store_url, settings, run_id, admin):
    opened = MetadataStore(store_url, settings=settings)
    database = opened.engine.url.database
    before = _readers(admin, database)
    metrics_frame(opened, run=run_id)
    assert _readers(admin, database).keys() - before.keys()
    opened.close()
    assert _read_pool._POOLS.current(opened) is None  # forgotten with the engine
    deadline = time.monotonic() + 10  # the server may list a closed backend a moment longer
    while _readers(admin, database).keys() - before.keys():
        assert time.monotonic() < deadline, "read connections outlived store.close()"
        time.sleep(0.02)


def test_a_forked_child_reads_on_read_connections_of_its_own(store, run_id):
    assert_a_forked_child_reads_on_its_own(
        store, lambda: metrics_frame(store, run=run_id), _read_pool._POOLS
    )


def _pool(store: MetadataStore, **overrides: float) -> ReadPool:
    """A read pool on ``store``'s server with these limits (one connection by default)."""
    fresh = read_pool(store)
    limits = {"keep": 1, "most": 1, "recycle_seconds": 3600.0, "ping_after_seconds": 5.0}
    return ReadPool(fresh._conninfo, **{**limits, **overrides})


def test_a_read_beyond_the_limit_waits_then_fails_typed(store, run_id, monkeypatch):
    pool = _pool(store)
    monkeypatch.setattr(_read_pool, "WAIT_SECONDS", 0.2)
    held = pool.checkout()
    try:
        with pytest.raises(StoreUnavailableError, match="1 reads are running"):
            pool.checkout()
        # A reader waiting when the connection comes back gets it.
        got: list[object] = []
        waiter = threading.Thread(target=lambda: got.append(pool.checkout()))
        monkeypatch.setattr(_read_pool, "WAIT_SECONDS", 10.0)
        waiter.start()
    finally:
        pool.checkin(held)
    waiter.join(10)
    assert got == [held]  # the same connection, kept and handed out again
    pool.checkin(held)
    pool.dispose()
    assert held.driver.closed


def test_an_old_connection_is_replaced_and_a_busy_one_is_not_kept(store, run_id):
    pool = _pool(store, recycle_seconds=0.0)
    first = pool.checkout()
    pool.checkin(first)  # older than the recycle age: closed, not kept
    assert first.driver.closed
    pool = _pool(store)
    entry = pool.checkout()
    entry.driver.autocommit = False
    entry.driver.execute("SELECT 1")  # a transaction left open
    pool.checkin(entry)
    assert entry.driver.closed  # not handed to the next read in that state
    again = pool.checkout()
    assert again is not entry and not again.driver.closed
    pool.checkin(again)
    pool.dispose()


def test_concurrent_reads_share_a_bounded_set_of_connections(store, run_id, admin):
    """Eight threads reading at once through a pool of at most two connections: every read
    gets the right frame, and the server never sees more than two read connections."""
    pool = _pool(store, keep=2, most=2)
    expected = [(1,)]
    seen: set[int] = set()
    errors: list[BaseException] = []

    def reads() -> None:
        try:
            for _ in range(20):
                entry = pool.checkout()
                try:
                    seen.add(entry.driver.info.backend_pid)
                    assert entry.driver.execute("SELECT 1").fetchall() == expected
                finally:
                    pool.checkin(entry)
        except BaseException as exc:  # reported below, with the thread's traceback
            errors.append(exc)

    threads = [threading.Thread(target=reads) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not errors and not any(thread.is_alive() for thread in threads)
    assert 1 <= len(seen) <= 2
    pool.dispose()


def test_a_connection_that_cannot_open_gives_its_slot_back(store, run_id):
    pool = ReadPool(
        "host=127.0.0.1 port=1 connect_timeout=2",  # nothing listens on port 1
        keep=1,
        most=1,
        recycle_seconds=3600.0,
        ping_after_seconds=5.0,
    )
    for _ in range(2):  # the second would wait for a slot if the first had kept it
        with pytest.raises(psycopg.OperationalError):
            pool.checkout()
    assert pool._in_use == 0


def test_a_read_connection_that_cannot_open_is_a_typed_error_without_the_password(
    store, run_id, monkeypatch
):
    from etl_meta.analytics import _connections

    secret = "pw-read-pool-sentinel"
    unreachable = ReadPool(
        f"host=127.0.0.1 port=1 user=etl password={secret} connect_timeout=2",
        keep=1,
        most=1,
        recycle_seconds=3600.0,
        ping_after_seconds=5.0,
    )
    monkeypatch.setattr(_connections, "read_pool", lambda _store: unreachable)
    with pytest.raises(StoreUnavailableError) as caught:
        metrics_frame(store, run=run_id)
    chain: list[BaseException] = []
    error: BaseException | None = caught.value
    while error is not None:
        chain.append(error)
        error = error.__cause__ or error.__context__
    assert all(secret not in f"{each!s} {each!r}" for each in chain)
