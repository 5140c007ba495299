"""``MetadataStore``: the one facade over etl-meta's database.

The store owns transactions. Every method runs in its own transaction unless called inside
``with store.transaction():``, in which case all calls share that one and commit or roll back
together::

    store = MetadataStore()                      # ETL_META_DATABASE_URL or the embedded SQLite file
    with store.transaction():
        store.jobs.create({"name": "daily_sales", "num_of_retries": 2})
        store.components.create("daily_sales", {"name": "extract", "component_type": "read_csv"})

Entities have their own namespaces: ``store.jobs``, ``store.components``, ``store.dataclasses``,
``store.executions``, ``store.metrics``, ``store.run_requests``, ``store.secrets``,
``store.retention`` and ``store.audit``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from functools import cached_property
from typing import Any

import sqlalchemy.exc as sa_exc
from pydantic import SecretStr
from sqlalchemy.engine import URL, Engine
from sqlalchemy.orm import Session

from etl_meta import schema
from etl_meta.access import Role
from etl_meta.config import Settings, get_settings, normalize_database_url
from etl_meta.db import HeldConnection, create_engine, readonly, render_url
from etl_meta.errors import (
    EtlMetaError,
    PermissionDeniedError,
    StoreUnavailableError,
    ValidationError,
    raise_translated,
    translate_db_error,
)
from etl_meta.secrets import Cipher
from etl_meta.store.audit import AuditAPI
from etl_meta.store.components import ComponentsAPI
from etl_meta.store.dataclasses import DataclassesAPI
from etl_meta.store.executions import ExecutionsAPI
from etl_meta.store.jobs import JobsAPI
from etl_meta.store.maintenance import MaintenanceAPI
from etl_meta.store.metrics import MetricsAPI
from etl_meta.store.retention import RetentionAPI
from etl_meta.store.run_requests import RunRequestsAPI
from etl_meta.store.secrets import SecretsAPI
from etl_meta.store.sync_cursors import SyncCursorsAPI
from etl_meta.types import coerce_enum
from etl_meta.validation import check_actor

log = logging.getLogger(__name__)


class MetadataStore:
    """Validated, audited access to jobs, components, dataclasses, runs and metrics.

    Args:
        url: SQLAlchemy URL; default ``ETL_META_DATABASE_URL`` or the embedded SQLite file.
        settings: settings to use instead of the environment's.
        actor: who the audit trail names for changes made through this store.
        role: what callers may do through this store (``reader``, ``writer``, ``admin``);
            default ``ETL_META_ROLE`` (``admin``). See :mod:`etl_meta.access`.
        engine: an existing engine (its URL wins over ``url``); the store will not dispose it.
        check_schema: refuse a database whose schema is not exactly this code's (default).

    Raises:
        SchemaError: the schema is missing, behind or ahead; the message names the fix.
        StoreUnavailableError: the database cannot be reached.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        settings: Settings | None = None,
        actor: str | None = None,
        role: Role | str | None = None,
        engine: Engine | None = None,
        check_schema: bool = True,
    ) -> None:
        settings = settings or get_settings()
        self._owns_engine = engine is None
        self.engine = engine or create_engine(url, settings=settings)
        # The settings must name the database this store really uses: the sandbox refuses
        # components that would write into it, and it finds it through the settings.
        self.settings = _naming(settings, self.engine.url) if url or engine else settings
        self._readonly_engine = readonly(self.engine)
        self._actor = check_actor(actor or self.settings.actor)
        self._acting_as: ContextVar[str | None] = ContextVar(f"etl_meta_actor_{id(self)}")
        self.role = _role(role) if role else self.settings.role
        self._session: ContextVar[Session | None] = ContextVar(f"etl_meta_session_{id(self)}")
        # The metric write's own connection (opened on first use; see HeldConnection).
        self.held_connection = HeldConnection(
            self.engine, ping_after_seconds=self.settings.pool_ping_after_seconds
        )
        if check_schema:
            try:
                schema.check_schema(self.engine)
            except sa_exc.SQLAlchemyError as exc:
                raise_translated(exc)
        self.jobs = JobsAPI(self)
        self.components = ComponentsAPI(self)
        self.dataclasses = DataclassesAPI(self)
        self.executions = ExecutionsAPI(self)
        self.metrics = MetricsAPI(self)
        self.run_requests = RunRequestsAPI(self)
        self.audit = AuditAPI(self)
        self.maintenance = MaintenanceAPI(self)
        self.retention = RetentionAPI(self)
        self.secrets = SecretsAPI(self)
        self.sync_cursors = SyncCursorsAPI(self)

    @cached_property
    def cipher(self) -> Cipher:
        """Encrypts secrets on write, decrypts them for running code (keys from the settings)."""
        return Cipher.from_settings(self.settings)

    @property
    def url(self) -> str:
        """The database URL with any password hidden."""
        return render_url(self.engine.url)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    def __repr__(self) -> str:
        return f"MetadataStore(url={self.url!r}, actor={self.actor!r}, role={self.role.value!r})"

    @property
    def actor(self) -> str:
        """Who the audit trail names for changes made now (see :meth:`acting_as`)."""
        return self._acting_as.get(None) or self._actor

    @contextmanager
    def acting_as(self, actor: str) -> Iterator[str]:
        """Name ``actor`` in the audit trail for changes made inside the block (this context).

        For long-lived processes that act for many parties through one store: a sensor records
        each Dagster run as ``dagster:<run id>``, not as itself.
        """
        token = self._acting_as.set(check_actor(actor))
        try:
            yield self.actor
        finally:
            self._acting_as.reset(token)

    def authorize(self, required: Role, operation: str) -> None:
        """Refuse with :class:`PermissionDeniedError` unless this store's role allows ``required``.

        Every store operation calls it before touching the database (see
        :func:`etl_meta.access.requires`).
        """
        if self.role.allows(required):
            return
        log.warning(
            "refused %s to %s (role %s, needs %s)", operation, self.actor, self.role, required
        )
        raise PermissionDeniedError(
            f"role {self.role.value!r} may not {operation} (needs {required.value!r}); "
            f"open the store with role={required.value!r} or set ETL_META_ROLE",
            operation=operation,
            role=self.role.value,
            required=required.value,
        )

    @contextmanager
    def transaction(self, *, readonly: bool = False) -> Iterator[Session]:
        """A session whose work commits on exit and rolls back on any error.

        Nested calls (including every store method called inside) join the outermost
        transaction. ``readonly=True`` avoids taking SQLite's write lock; don't write in it.
        Driver errors come out as typed :class:`~etl_meta.errors.EtlMetaError` s.
        """
        current = self._session.get(None)
        if current is not None:
            yield current
            return
        bind = self._readonly_engine if readonly else self.engine
        session = Session(bind=bind, expire_on_commit=False, autoflush=True)
        token = self._session.set(session)
        try:
            try:
                yield session
                session.commit()
            except BaseException:
                session.rollback()
                raise
        except sa_exc.SQLAlchemyError as exc:
            log.warning("store transaction failed: %s", translate_db_error(exc))
            raise_translated(exc)
        finally:
            self._session.reset(token)
            session.close()

    def in_transaction(self) -> bool:
        """Whether the calling context is inside ``store.transaction()``."""
        return self._session.get(None) is not None

    def ping(self) -> None:
        """Round-trip to the database; raises :class:`StoreUnavailableError` when it can't."""
        try:
            with self._readonly_engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except sa_exc.SQLAlchemyError as exc:
            raise_translated(exc)

    def close(self) -> None:
        """Close the store's own connection and release pooled ones (those only when the store
        created its engine)."""
        self.held_connection.close()
        if self._owns_engine:
            self.engine.dispose()

    def __enter__(self) -> MetadataStore:
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.close()


def _naming(settings: Settings, url: URL) -> Settings:
    """``settings`` with ``database_url`` set to ``url`` (unchanged when it already is)."""
    text = url.render_as_string(hide_password=False)
    if settings.resolved_database_url() == normalize_database_url(text):
        return settings
    return settings.model_copy(update={"database_url": SecretStr(text)})


def _role(value: Role | str) -> Role:
    try:
        return Role(coerce_enum(Role, value))
    except ValueError:
        roles = ", ".join(r.value for r in Role)
        raise ValidationError.single("role", f"must be one of {roles}") from None


__all__ = ["EtlMetaError", "MetadataStore", "StoreUnavailableError"]
