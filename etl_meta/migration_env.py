"""What ``migrations/env.py`` runs etl-meta's chain with: the migration lock, and SQLite views
kept working through batch-mode table rebuilds.

Every way of migrating goes through ``env.py`` (``etl-meta db …``, :func:`etl_meta.schema.upgrade`,
plain ``alembic``), so these hold for all of them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from etl_meta.errors import SchemaError

#: PostgreSQL advisory lock every etl-meta migration holds ("etl-meta" in ASCII): any fixed
#: number works, as long as every etl-meta version uses the same one.
MIGRATION_LOCK_KEY = 0x65746C2D6D657461

#: How long a SQLite migrator waits for another one (or any writer) to finish. The usual busy
#: timeout suits short writes; a migration of a large store can take minutes.
SQLITE_MIGRATION_WAIT_MS = 3_600_000


def sqlite_driver_connection(connection: Connection) -> Any:
    """The SQLite driver's own connection under ``connection``.

    Pragmas that only work outside a transaction go straight to it: through SQLAlchemy they
    would start one (etl-meta's engine issues ``BEGIN`` itself).
    """
    raw = connection.connection.driver_connection
    if raw is None:
        # SQLAlchemy types it optional for a proxy invalidated in place; ``.connection`` above
        # hands out a live one, so this is a broken invariant, not a state to work around.
        raise RuntimeError("the SQLite connection has no driver connection")
    return raw


def lock_for_migration(connection: Connection) -> None:
    """Begin the migrating transaction (unless one is open) and take etl-meta's migration lock.

    A second migrator waits here until the first commits or rolls back, then reads the version
    the first one left, so two ``etl-meta db upgrade`` at once migrate once: the second finds
    nothing to do instead of failing on the version table's unique key. The lock lasts as long
    as the transaction. ``migrations/env.py`` calls this before alembic reads the version.

    PostgreSQL: a transaction-level advisory lock on :data:`MIGRATION_LOCK_KEY`. SQLite: the
    database's write lock, which etl-meta's engine takes at ``BEGIN`` (``BEGIN IMMEDIATE``),
    waited for up to :data:`SQLITE_MIGRATION_WAIT_MS`.
    """
    if connection.dialect.name == "sqlite":
        if connection.in_transaction():
            return  # began by etl-meta's engine: it holds the write lock already
        raw = sqlite_driver_connection(connection)
        (busy_ms,) = raw.execute("PRAGMA busy_timeout").fetchone()
        raw.execute(f"PRAGMA busy_timeout={SQLITE_MIGRATION_WAIT_MS}")
        try:
            connection.begin()
        finally:
            raw.execute(f"PRAGMA busy_timeout={int(busy_ms)}")
        return
    if not connection.in_transaction():
        connection.begin()
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")


@contextmanager
def views_kept_through_batch(connection: Connection) -> Iterator[None]:
    """Let SQLite batch operations rebuild tables that views read, then check every view.

    Batch mode rebuilds a SQLite table (copy, drop, rename the copy); since SQLite 3.26 the
    rename re-reads every view and fails while one names the dropped table ("error in view
    v_run: no such table: main.job"). ``legacy_alter_table`` makes the rename leave views alone,
    so they keep their exact SQL and read the rebuilt table. Dropping and re-creating the views
    instead would need each revision's view SQL and would break revisions that drop views
    themselves. A view left reading a dropped or renamed column fails the migration here, as
    PostgreSQL refuses such a change itself. No-op on other databases.
    """
    if connection.dialect.name != "sqlite":
        yield
        return
    raw = sqlite_driver_connection(connection)
    raw.execute("PRAGMA legacy_alter_table=ON")
    try:
        yield
        views = connection.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'view'")
        for (view,) in views.all():
            try:
                # The name comes from sqlite_master, not from input.
                connection.exec_driver_sql(f'SELECT * FROM "{view}" LIMIT 0')  # noqa: S608
            except sa.exc.OperationalError as exc:
                raise SchemaError(
                    f"the migration breaks view {view} ({exc.orig}): re-create the view in "
                    "the revision that changes what it reads",
                    current=None,
                    expected=None,
                ) from exc
    finally:
        raw.execute("PRAGMA legacy_alter_table=OFF")
