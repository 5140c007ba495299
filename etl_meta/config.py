"""Settings, read from ``ETL_META_*`` environment variables (and a ``.env`` file if present).

Nothing is read at import time: call :func:`get_settings` (cached) or build :class:`Settings`
yourself to override values in code and tests.
"""

from __future__ import annotations

import getpass
import math
import socket
from functools import lru_cache
from pathlib import Path
from typing import Annotated

import platformdirs
from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from etl_meta.access import Role

#: The file name of the embedded SQLite store inside :attr:`Settings.home`.
SQLITE_FILE_NAME = "etl_meta.db"
#: The file name of the local secret key file inside :attr:`Settings.home`.
SECRET_KEY_FILE_NAME = "secret.key"


def _default_home() -> Path:
    return Path(platformdirs.user_data_dir("etl-meta", appauthor=False))


def _default_actor() -> str:
    try:
        user = getpass.getuser()
    except (KeyError, OSError):  # no passwd entry, e.g. an arbitrary container uid
        user = "unknown"
    return f"{user}@{socket.gethostname()}"


def normalize_database_url(url: str) -> str:
    """Point bare PostgreSQL URLs at psycopg 3, the only PostgreSQL driver etl-meta supports.

    >>> normalize_database_url("postgres://u@h/db")
    'postgresql+psycopg://u@h/db'
    """
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


class Settings(BaseSettings):
    """Everything etl-meta reads from its environment.

    ``database_url`` is a secret (it may carry a password): it prints masked.
    """

    model_config = SettingsConfigDict(
        env_prefix="ETL_META_", env_file=".env", extra="ignore", validate_default=True
    )

    home: Path = Field(
        default_factory=_default_home,
        description="Directory of the embedded SQLite store (used when no database URL is set).",
    )
    database_url: SecretStr | None = Field(
        default=None,
        description="SQLAlchemy URL of the store; unset means a SQLite file under `home`.",
    )
    base_dir: Path = Field(
        default_factory=Path.cwd,
        description="Where relative paths in component configuration are resolved.",
    )
    actor: str = Field(
        default_factory=_default_actor,
        max_length=200,
        description="Who the audit trail names for changes made through this process.",
    )
    role: Role = Field(
        default=Role.ADMIN,
        description=(
            "What this process may do through the store: reader, writer (orchestrators) or admin."
        ),
    )
    pool_size: int = Field(default=5, ge=1, le=100, description="PostgreSQL pool size.")
    max_overflow: int = Field(default=5, ge=0, le=100, description="PostgreSQL pool overflow.")
    pool_recycle_seconds: int = Field(default=1800, ge=30, description="Recycle older connections.")
    # Why 5 s: a connection the server ended (restart, pg_terminate_backend) shows up without any
    # I/O, as a readable socket, but one a middlebox (NAT, firewall, load balancer) dropped for
    # idling does not: nothing arrives, and only a round trip tells. Those idle timeouts are
    # minutes long, so pinging after 5 s idle is safe, and a hot loop of small reads, where the
    # ping would be a large share of each call, never pays for it.
    pool_ping_after_seconds: float = Field(
        default=5.0,
        ge=0,
        description=(
            "Ping a pooled PostgreSQL connection before use only when it sat idle longer than "
            "this, or psycopg or its socket says it may be dead; 0 pings on every checkout."
        ),
    )
    connect_timeout_seconds: int = Field(default=10, ge=1, le=600)
    statement_timeout_ms: int = Field(
        default=0, ge=0, description="PostgreSQL statement_timeout; 0 leaves the server's value."
    )
    sqlite_busy_timeout_ms: int = Field(default=30_000, ge=0)
    # The store is a dependency of observation, not of execution (docs/store.md, "Outages"):
    # a run waits for it only where it must (its configuration), and briefly where it need not.
    store_wait_seconds: float = Field(
        default=60.0,
        ge=0,
        le=3600,
        description=(
            "How long a running component waits for an unavailable store to open it and read "
            "its configuration before it fails (with a retryable error)."
        ),
    )
    record_wait_seconds: float = Field(
        default=5.0,
        ge=0,
        le=600,
        description=(
            "How long recording from inside a run (metrics, outcomes) waits for the store; "
            "then the record is left in the orchestrator's own storage for reconciliation."
        ),
    )
    max_json_bytes: int = Field(
        default=256 * 1024, ge=1024, description="Largest JSON document accepted, serialized."
    )
    max_json_depth: int = Field(default=32, ge=2, le=256, description="Deepest JSON nesting.")
    echo_sql: bool = Field(default=False, description="Log SQL statements (never parameters).")
    retention_archive_dir: Path | None = Field(
        default=None,
        description=(
            "Where the retention pass writes the Parquet archive of runs whose policy says "
            "`archive: true` (a deployment fact, so it lives here and not in definitions)."
        ),
    )
    retention_schedule: str = Field(
        default="0 3 * * *",
        description="Cron (UTC) of the Dagster schedule and Airflow DAG of the retention pass.",
    )
    retention_schedule_running: bool = Field(
        default=False,
        description=(
            "Start the Dagster retention schedule as running when the code location loads "
            "(default: stopped until someone turns it on; the pass deletes data)."
        ),
    )
    slow_query_ms: float | None = Field(
        default=None,
        ge=0,
        description=(
            "Log statements that take at least this many milliseconds on the "
            "`etl_meta.slow_query` logger (duration, statement without parameters, caller)."
        ),
    )
    secret_keys: SecretStr | None = Field(
        default=None,
        description="Comma-separated Fernet keys, newest first, encrypting stored secrets.",
    )
    secret_key_file: Path | None = Field(
        default=None,
        description="Key file used when `secret_keys` is unset; default `home`/secret.key.",
    )

    worker_component_types: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Component types installed only on workers (comma-separated names, `prefix.*` for "
            "a family): their components may be stored here unchecked; workers check them when "
            "they run. Any other type this process does not know is an error."
        ),
    )

    # The sandbox of the built-in component types (docs/security.md#threat-model): what a
    # definitions file, which carries no code, may make a worker read, write, import or connect to.
    sandbox_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description=(
            "Directories (comma-separated; relative ones from `base_dir`) under which built-in "
            "readers and writers, SQLite targets of `write_table` and file-based `python` "
            "callables may be; empty means `base_dir` only."
        ),
    )
    sandbox_callable_modules: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Module prefixes (comma-separated, e.g. `shop_etl,shop_etl_extras.steps`) whose "
            "functions a `python` component may call as `module:function`; empty means none. "
            "`path/file.py:function` inside the sandbox roots is always allowed; a hard "
            "deny-list (os, subprocess, builtins, etl_meta, ...) no entry can lift."
        ),
    )
    sandbox_databases: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description=(
            "Databases `write_table` may write to (comma-separated): `sqlite` (any SQLite file "
            "inside the sandbox roots), `sqlite:///path`, `postgresql://host[:port]/database` "
            "or `postgresql://host[:port]/*`; empty means any, SQLite files inside the roots "
            "only. The store's own database is always refused."
        ),
    )

    @field_validator(
        "worker_component_types",
        "sandbox_roots",
        "sandbox_callable_modules",
        "sandbox_databases",
        mode="before",
    )
    @classmethod
    def _comma_separated(cls, value: object) -> object:
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    def is_worker_component_type(self, component_type: str) -> bool:
        """Whether ``component_type`` is declared as installed only on workers."""
        return any(
            component_type == entry
            or (entry.endswith(".*") and component_type.startswith(entry[:-1]))
            for entry in self.worker_component_types
        )

    @field_validator("home", "base_dir", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser()

    @property
    def resolved_secret_key_file(self) -> Path:
        """Where the local key file is (read when ``secret_keys`` is unset)."""
        return (self.secret_key_file or self.home / SECRET_KEY_FILE_NAME).expanduser()

    @property
    def sqlite_path(self) -> Path:
        """Where the embedded store lives when ``database_url`` is unset."""
        return self.home / SQLITE_FILE_NAME

    def for_runs(self) -> Settings:
        """These settings for a process inside a run (an op, a task, a sensor tick).

        Every connect, SQLite lock wait and PostgreSQL statement is bounded by
        ``record_wait_seconds``: a store that hangs (a held lock, a stalled server) costs a run
        a bounded wait per call, never a stuck step. Longer waits, where a run must wait (its
        configuration), are retries of bounded calls within ``store_wait_seconds``.
        """
        bound_ms = max(int(self.record_wait_seconds * 1000), 100)
        statement_ms = self.statement_timeout_ms
        return self.model_copy(
            update={
                "connect_timeout_seconds": max(
                    min(self.connect_timeout_seconds, math.ceil(self.record_wait_seconds)), 1
                ),
                "sqlite_busy_timeout_ms": min(self.sqlite_busy_timeout_ms, bound_ms),
                "statement_timeout_ms": min(statement_ms, bound_ms) if statement_ms else bound_ms,
            }
        )

    def resolved_database_url(self) -> str:
        """The URL to connect to: the configured one, or the embedded SQLite file."""
        if self.database_url is not None:
            return normalize_database_url(self.database_url.get_secret_value())
        return f"sqlite:///{self.sqlite_path}"


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read from the environment on first call."""
    return Settings()
