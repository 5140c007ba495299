"""The one engine factory: every connection etl-meta makes is configured here.

SQLite
    WAL (readers never block the writer), foreign keys on, a busy timeout, and write transactions
    that take the write lock up front (``BEGIN IMMEDIATE``). With SQLite's default deferred
    ``BEGIN``, a read-then-write transaction that loses a race fails with "database is locked"
    instead of waiting; 23–43 % of concurrent ones did here. Read-only work goes through
    :func:`readonly` and keeps the deferred ``BEGIN``, so readers never queue behind writers.
PostgreSQL
    psycopg 3, a bounded pool, connect and (optional) statement timeouts. A pooled connection is
    checked at checkout and a dead one replaced, so a long-lived process (a Dagster sensor, an
    Airflow worker) survives a server restart or ``pg_terminate_backend``. The check costs a round
    trip only when the connection sat idle longer than ``pool_ping_after_seconds`` or psycopg or its
    socket says it may be dead (``pool_pre_ping`` pinged on every checkout, a large share of a
    small read).
Both
    ``hide_parameters=True``: driver errors never echo statement parameters, which may hold secrets.
"""

from __future__ import annotations

import logging
import os
import select
import threading
import time
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import URL, Engine, make_url
from sqlalchemy.pool import ConnectionPoolEntry

from etl_meta import query_timing
from etl_meta.config import Settings, get_settings, normalize_database_url
from etl_meta.errors import ValidationError

log = logging.getLogger(__name__)

_READONLY_OPTION = "etl_meta_readonly"
#: ``connection_record.info`` key: ``time.monotonic()`` when the pooled PostgreSQL connection was
#: last known alive: opened, or returned to the pool (after its reset).
_ALIVE_AT_KEY = "_etl_meta_alive_at"


def create_engine(url: str | URL | None = None, *, settings: Settings | None = None) -> Engine:
    """Build an engine for ``url`` (default: the configured store) with etl-meta's settings.

    A SQLite file's parent directory is created on first use; the schema is not (see
    :mod:`etl_meta.schema`).
    """
    settings = settings or get_settings()
    parsed = parse_database_url(url if url is not None else settings.resolved_database_url())
    if parsed.get_backend_name() == "sqlite":
        engine = _sqlite_engine(parsed, settings)
    else:
        engine = _postgresql_engine(parsed, settings)
    query_timing.instrument(engine, slow_query_ms=settings.slow_query_ms)
    return engine


#: The backends etl-meta's schema and queries are written for.
SUPPORTED_BACKENDS = ("sqlite", "postgresql")


def parse_database_url(url: str | URL) -> URL:
    """``url`` parsed (bare ``postgresql://`` pointed at psycopg 3) and checked to name a
    supported backend.

    Raises :class:`~etl_meta.errors.ValidationError` (field ``database_url``, also a
    ``ValueError``) when SQLAlchemy cannot read it, its port is not a number, or it names a
    backend other than SQLite or PostgreSQL. The message never quotes the URL, which may hold
    a password; for ``mysql://u:pw@h/db`` it reads ``invalid database URL: database_url:
    unsupported backend 'mysql': use sqlite or postgresql``.
    """
    if isinstance(url, URL):
        parsed = url
    else:
        try:
            parsed = make_url(normalize_database_url(url))
        except sa.exc.ArgumentError:
            raise _invalid_url(
                "not a database URL (expected sqlite:///PATH or postgresql://USER@HOST/DATABASE)"
            ) from None
        except ValueError as exc:
            # SQLAlchemy converts the port with int() and lets its ValueError (which quotes
            # the text) through; ``from None``: nothing of the URL travels with the error.
            reason = "invalid literal for int()" in str(exc)
            raise _invalid_url(
                "the port is not a number" if reason else "not a database URL"
            ) from None
    backend = parsed.get_backend_name()
    if backend not in SUPPORTED_BACKENDS:
        raise _invalid_url(f"unsupported backend {backend!r}: use sqlite or postgresql")
    if backend == "sqlite":
        try:
            parsed.get_dialect()  # an unknown driver (sqlite+nope://) fails here, not later
        except sa.exc.NoSuchModuleError:
            raise _invalid_url(
                f"unknown SQLite driver {parsed.get_driver_name()!r}: use sqlite:///PATH"
            ) from None
    return parsed


def _invalid_url(message: str) -> ValidationError:
    return ValidationError.single("database_url", message, entity="database URL")


#: The settings :func:`create_engine` reads: two settings objects equal on these make the same
#: engine (see :func:`shared_engine`).
ENGINE_SETTINGS = (
    "echo_sql",
    "sqlite_busy_timeout_ms",
    "connect_timeout_seconds",
    "statement_timeout_ms",
    "pool_size",
    "max_overflow",
    "pool_recycle_seconds",
    "pool_ping_after_seconds",
)
_shared: dict[tuple[Any, ...], Engine] = {}
_shared_lock = threading.Lock()


def shared_engine(url: str | None, settings: Settings) -> Engine:
    """This process's engine for ``url`` (default: the configured store) and these settings.

    For integrations that open a store again and again in one process (a Dagster sensor tick,
    each run of an in-process executor): they reuse its pooled connections, prepared dialect and
    compiled statements instead of connecting afresh (a PostgreSQL connection costs more than
    most of what they do with it). Keyed by
    process id, so a forked child never uses its parent's connections. Never disposed: callers
    open stores on it with ``engine=``, and ``store.close()`` leaves it to the next.
    """
    resolved = url or settings.resolved_database_url()
    key = (os.getpid(), resolved, *(getattr(settings, name) for name in ENGINE_SETTINGS))
    with _shared_lock:
        engine = _shared.get(key)
        if engine is None:
            engine = _shared[key] = create_engine(resolved, settings=settings)
    return engine


def dispose_shared() -> None:
    """Close every engine :func:`shared_engine` made in this process (tests, and processes that
    want to let go of their connections)."""
    with _shared_lock:
        engines = [engine for key, engine in _shared.items() if key[0] == os.getpid()]
        _shared.clear()
    for engine in engines:
        engine.dispose()


def readonly(engine: Engine) -> Engine:
    """A view of ``engine`` (same pool) whose transactions never take SQLite's write lock."""
    return engine.execution_options(**{_READONLY_OPTION: True})


def _sqlite_engine(url: URL, settings: Settings) -> Engine:
    database = url.database or ""
    if database in ("", ":memory:") or database.startswith("file::memory:"):
        raise _invalid_url(
            "in-memory SQLite is not supported: every connection would see an empty database; "
            "use a file path"
        )
    Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(
        url,
        echo=settings.echo_sql,
        hide_parameters=True,
        connect_args={"timeout": settings.sqlite_busy_timeout_ms / 1000},
    )
    busy_timeout = settings.sqlite_busy_timeout_ms

    @sa.event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Stop pysqlite from issuing its own BEGIN so ours (below) decides the lock mode.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute(f"PRAGMA busy_timeout={int(busy_timeout)}")
            cursor.execute("PRAGMA synchronous=NORMAL")  # safe with WAL; fsync at checkpoints
        finally:
            cursor.close()

    @sa.event.listens_for(engine, "begin")
    def _on_begin(connection: sa.Connection) -> None:
        if connection.get_execution_options().get(_READONLY_OPTION):
            connection.exec_driver_sql("BEGIN")
        else:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _postgresql_engine(url: URL, settings: Settings) -> Engine:
    if url.get_driver_name() != "psycopg":
        url = url.set(drivername="postgresql+psycopg")
    connect_args: dict[str, Any] = {
        "connect_timeout": settings.connect_timeout_seconds,
        "application_name": "etl-meta",
    }
    if settings.statement_timeout_ms:
        connect_args["options"] = f"-c statement_timeout={settings.statement_timeout_ms}"
    engine = sa.create_engine(
        url,
        echo=settings.echo_sql,
        hide_parameters=True,
        pool_size=settings.pool_size,
        max_overflow=settings.max_overflow,
        pool_recycle=settings.pool_recycle_seconds,
        connect_args=connect_args,
    )
    _discard_dead_connections(engine, ping_after_seconds=settings.pool_ping_after_seconds)
    return engine


def _discard_dead_connections(engine: Engine, *, ping_after_seconds: float) -> None:
    """Make the pool replace a dead connection at checkout, pinging only those that may be dead.

    SQLAlchemy's pessimistic disconnect handling: a ``checkout`` listener that raises
    :class:`~sqlalchemy.exc.DisconnectionError` makes the pool discard the connection and retry
    with a fresh one. A connection known alive less than ``ping_after_seconds`` ago that still
    looks alive without any I/O (see :func:`looks_alive`) is handed out as is; any other is
    pinged first.
    """
    dialect = engine.dialect
    driver_error = dialect.loaded_dbapi.Error

    @sa.event.listens_for(engine, "connect")
    def _on_connect(_dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        record.info[_ALIVE_AT_KEY] = time.monotonic()  # the connect itself was the round trip

    @sa.event.listens_for(engine, "checkin")
    def _on_checkin(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
        if dbapi_connection is not None:  # None: invalidated; a reconnect starts a fresh info
            record.info[_ALIVE_AT_KEY] = time.monotonic()

    @sa.event.listens_for(engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: Any) -> None:
        alive_at = record.info.get(_ALIVE_AT_KEY)
        if (
            alive_at is not None
            and time.monotonic() - alive_at < ping_after_seconds
            and looks_alive(dbapi_connection)
        ):
            return
        try:
            dialect.do_ping(dbapi_connection)
        except driver_error as exc:
            raise sa.exc.DisconnectionError("pooled connection failed its liveness ping") from exc


def looks_alive(dbapi_connection: Any) -> bool:
    """Whether an idle psycopg connection looks alive without any I/O: open, idle, and nothing
    to read on its socket.

    The server ends a backend (restart, ``pg_terminate_backend``, ``idle_session_timeout``) with
    a FATAL message and closes the socket, so an idle connection's socket turns readable.
    Nothing else arrives on an idle connection of ours (we never ``LISTEN``); if something
    harmless ever does, the cost is one ping.
    """
    import psycopg
    from psycopg.pq import TransactionStatus

    try:
        return (
            not dbapi_connection.closed
            and dbapi_connection.pgconn.transaction_status == TransactionStatus.IDLE
            and not _has_pending_input(dbapi_connection.fileno())
        )
    except (psycopg.Error, OSError, ValueError):  # unknown state: ping
        return False


def conninfo_of(driver: Any, *, suffix: str) -> str:
    """libpq parameters of a live psycopg connection, password included (kept in memory only;
    nothing logs or shows it), for another connection with the same login and limits.

    ``application_name`` gets `` (suffix)``, so ``pg_stat_activity`` tells that connection
    from the store's own.
    """
    from psycopg.conninfo import conninfo_to_dict, make_conninfo

    info = driver.info
    parameters = conninfo_to_dict(info.dsn)
    name = str(parameters.get("application_name") or "etl-meta")
    # PostgreSQL keeps 63 bytes of a name.
    extra = {"application_name": f"{name[: 63 - len(suffix) - 3]} ({suffix})"}
    if info.password:
        extra["password"] = info.password
    return make_conninfo(info.dsn, **extra)


def _has_pending_input(fileno: int) -> bool:
    """Whether the socket ``fileno`` has something to read (or hung up), without blocking."""
    if hasattr(select, "poll"):
        # poll, not select: select() refuses descriptors past FD_SETSIZE (1024), which a
        # long-lived worker holding many files and sockets can reach.
        poller = select.poll()
        poller.register(fileno, select.POLLIN)
        return bool(poller.poll(0))
    readable, _, _ = select.select([fileno], [], [], 0)  # Windows: no poll, and no such limit
    return bool(readable)


#: Series ids a held connection remembers (an op writes a handful; a listener many runs').
MAX_REMEMBERED_SERIES = 10_000


class HeldConnection:
    """One driver connection taken out of an engine's pool and kept by a store, for the metric
    write an op makes many times over (:meth:`MetricsAPI.record_to
    <etl_meta.store.metrics.MetricsAPI.record_to>`).

    A pool checkout and return cost a good part of a one-row transaction
    (``benchmarks/metric_call.py``); a connection of its own costs nothing per call. It is
    configured like every pooled one (the engine's ``connect`` events ran on it). A PostgreSQL
    one is checked as the pool checks its own: without I/O, and pinged after
    ``ping_after_seconds`` idle; one found dead is replaced before use.

    One thread uses it at a time: :meth:`acquire` gives ``None`` while another thread holds it,
    or in a forked child (the parent's connection is not the child's to use), and the caller
    takes a pooled connection instead. The owner closes it (``store.close()``).
    """

    def __init__(self, engine: Engine, *, ping_after_seconds: float = 5.0) -> None:
        self._engine = engine
        self._postgresql = engine.dialect.name == "postgresql"
        self._ping_after = ping_after_seconds
        self._lock = threading.Lock()
        self._pooled: Any = None
        self._driver: Any = None
        self._used_at = 0.0
        self._pid = os.getpid()
        #: Metric series ids by ``(execution_id, component_id, attempt, name)``, as committed
        #: in this database (etl_meta.repository.metrics.commit_points); at most
        #: :data:`MAX_REMEMBERED_SERIES`, forgotten all at once beyond.
        self.series_ids: dict[tuple[int, int, int, str], int] = {}

    def acquire(self) -> Any | None:
        """The connection, this thread's until :meth:`release`; ``None``: use the pool instead."""
        if self._pid != os.getpid() or not self._lock.acquire(blocking=False):
            return None
        try:
            if self._postgresql:
                if self._pooled is not None and not self._alive():
                    self._close()  # the server ended it (restart, idle timeout): take another
                self._used_at = time.monotonic()
            if self._pooled is None:
                pooled = self._engine.raw_connection()  # checked by the pool on checkout
                self._driver = pooled.driver_connection  # detached, the proxy no longer says
                # detach(): the pool forgets it (and opens another when it needs one); closing it
                # later closes the driver connection instead of returning it.
                pooled.detach()
                self._pooled = pooled
            return self._driver
        except BaseException:
            self._lock.release()
            raise

    def _alive(self) -> bool:
        if time.monotonic() - self._used_at < self._ping_after and looks_alive(self._driver):
            return True
        try:
            self._engine.dialect.do_ping(self._driver)
        except self._engine.dialect.loaded_dbapi.Error:
            return False
        return True

    def remember_series(self, series: dict[tuple[int, int, int, str], int]) -> None:
        """Add committed series ids to :attr:`series_ids`."""
        if len(self.series_ids) + len(series) > MAX_REMEMBERED_SERIES:
            self.series_ids.clear()  # a long-lived process moves on to other runs
        self.series_ids.update(series)

    def release(self, *, discard: bool = False) -> None:
        """Give the connection back; ``discard`` closes it (an error said it may be broken)."""
        try:
            if discard:
                self._close()
        finally:
            self._lock.release()

    def close(self) -> None:
        """Close the connection (a later :meth:`acquire` opens a new one)."""
        with self._lock:
            self._close()

    def _close(self) -> None:
        pooled, self._pooled, self._driver = self._pooled, None, None
        if pooled is not None and self._pid == os.getpid():
            try:
                pooled.close()
            except Exception:  # closing a dead connection may fail: it is gone either way
                log.debug("closing the held connection failed", exc_info=True)


def render_url(url: str | URL) -> str:
    """``url`` with its password hidden, for messages and CLI output."""
    if isinstance(url, str):
        url = make_url(normalize_database_url(url))
    return url.render_as_string(hide_password=True)
