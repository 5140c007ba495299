"""Store connections for Airflow processes: one engine per process and purpose, reused.

Tasks and the listener read the store's location from the usual ``ETL_META_*`` environment
(``ETL_META_DATABASE_URL``, else the SQLite file under ``ETL_META_HOME``), which must therefore be
set for the scheduler, the API server and every worker. Airflow's own ORM session is never used.

The listener runs inside the scheduler loop and inside every task process, so its engine gets
short timeouts (overridable through the environment)::

    ETL_META_AIRFLOW_LISTENER_SQLITE_BUSY_TIMEOUT_MS     2000
    ETL_META_AIRFLOW_LISTENER_CONNECT_TIMEOUT_SECONDS    3
    ETL_META_AIRFLOW_LISTENER_STATEMENT_TIMEOUT_MS       5000

Tasks use the store's normal settings with a pool of at most two connections; opening the store
retries transient errors for ``ETL_META_STORE_WAIT_SECONDS`` (60 s), then Airflow's own retries
take over.
"""

from __future__ import annotations

import logging
import os
import threading
from typing import Literal

from etl_meta.access import Role
from etl_meta.config import Settings
from etl_meta.db import dispose_shared, shared_engine
from etl_meta.retry import retry_transient
from etl_meta.store import MetadataStore
from etl_meta.validation import ACTOR_MAX

log = logging.getLogger(__name__)

Purpose = Literal["task", "listener"]

#: ``Settings`` field → (environment variable, default) for the listener's engine.
LISTENER_TIMEOUTS: dict[str, tuple[str, int]] = {
    "sqlite_busy_timeout_ms": ("ETL_META_AIRFLOW_LISTENER_SQLITE_BUSY_TIMEOUT_MS", 2000),
    "connect_timeout_seconds": ("ETL_META_AIRFLOW_LISTENER_CONNECT_TIMEOUT_SECONDS", 3),
    "statement_timeout_ms": ("ETL_META_AIRFLOW_LISTENER_STATEMENT_TIMEOUT_MS", 5000),
}

_lock = threading.Lock()
_checked: set[tuple[int, str]] = set()


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return max(int(raw), 0)
    except ValueError:
        log.warning("ignoring %s=%r: not an integer", name, raw)
        return default


def listener_settings(base: Settings | None = None) -> Settings:
    """``base`` (default: the environment's settings) with the listener's short timeouts."""
    settings = base or Settings()
    update: dict[str, int] = {
        field: _env_int(env, default) for field, (env, default) in LISTENER_TIMEOUTS.items()
    }
    update["connect_timeout_seconds"] = max(update["connect_timeout_seconds"], 1)
    update["pool_size"] = 1
    update["max_overflow"] = 2
    return settings.model_copy(update=update)


def task_settings(base: Settings | None = None) -> Settings:
    """``base`` (default: the environment's settings) with a pool sized for one task, and every
    connect, lock wait and statement bounded by ``record_wait_seconds`` (``Settings.for_runs``):
    a store that hangs on a lock must cost a task a bounded wait, never a stuck try."""
    settings = base or Settings()
    return settings.model_copy(
        update={
            "pool_size": min(settings.pool_size, 2),
            "max_overflow": min(settings.max_overflow, 2),
        }
    ).for_runs()


def open_store(
    purpose: Purpose,
    *,
    actor: str,
    settings: Settings | None = None,
    wait_seconds: float | None = None,
) -> MetadataStore:
    """A store on this process's shared engine for ``purpose``, naming ``actor`` in the audit.

    Cheap after the first call in a process: the engine (and its pool) is reused, and the schema
    is checked once per process and database, whichever purpose opened it first (a task try used
    to pay the check twice: once in the listener's ``running`` hook, once in the task). Keyed by
    process id, so a forked child never shares its parent's connections.

    A task's open (``purpose="task"``) retries transient errors for ``store_wait_seconds``
    (``ETL_META_STORE_WAIT_SECONDS``, 60 s), so a task starting during a short outage waits
    instead of failing; past that it raises :class:`~etl_meta.errors.StoreUnavailableError`,
    which Airflow retries like any task error. The listener's open is tried once: its callers
    have their own budget. ``wait_seconds`` replaces the purpose's wait (recording from a task
    waits ``record_wait_seconds`` only).
    """
    base = settings or Settings()
    configured = listener_settings(base) if purpose == "listener" else task_settings(base)
    url = configured.resolved_database_url()
    checked = (os.getpid(), url)
    # The listener's and the task's settings differ (timeouts, pool), so each gets its engine.
    engine = shared_engine(url, configured)
    # Workers record runs and read secrets; they never change definitions (docs/security.md).
    role = Role.READER if configured.role is Role.READER else Role.WRITER

    def attempt() -> MetadataStore:
        store = MetadataStore(
            engine=engine,
            settings=configured,
            actor=actor,
            role=role,
            check_schema=checked not in _checked,
        )
        _checked.add(checked)
        return store

    if wait_seconds is None:
        wait_seconds = 0.0 if purpose == "listener" else configured.store_wait_seconds
    return retry_transient(attempt, max_seconds=wait_seconds)


def airflow_actor(
    dag_id: str, run_id: str, task_id: str | None = None, try_number: int | None = None
) -> str:
    """The audit actor for a DAG run or a task try: ``airflow:<dag>/<run>[/<task>/try-<n>]``.

    Airflow run ids may be 250 characters long; the run id is shortened to keep the actor within
    the audit trail's 200 characters, never the DAG or task id.
    """
    suffix = "" if task_id is None else f"/{task_id}/try-{int(try_number or 0)}"
    room = ACTOR_MAX - len("airflow:") - len(dag_id) - 1 - len(suffix)
    short_run = run_id if len(run_id) <= room else run_id[: max(room - 1, 0)] + "~"
    return f"airflow:{dag_id}/{short_run}{suffix}"


def dispose_all() -> None:
    """Close every engine this process opened (tests, and processes that want to let go)."""
    dispose_shared()
    with _lock:
        _checked.clear()
