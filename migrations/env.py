"""Alembic environment for etl-meta: one chain, batch mode, SQLite and PostgreSQL.

etl-meta's own commands (``etl-meta db …``) pass an open connection in
``config.attributes["connection"]``. An Engine there works too (what pytest-alembic and other
alembic test tools pass): env.py connects and migrates in a transaction of its own. Plain
``alembic`` (with ``-x url=...`` or ``ETL_META_DATABASE_URL``) works too, for developers writing
new revisions.
"""

from alembic import context
from sqlalchemy.engine import Connection, Engine

from etl_meta.migration_env import lock_for_migration, views_kept_through_batch
from etl_meta.models import metadata
from etl_meta.schema import migration_context_options


def _run(connection: Connection) -> None:
    # Before alembic reads the version: a concurrent migrator waits here, then finds the
    # version the other one left. Alembic takes the transaction this begins as the caller's.
    lock_for_migration(connection)
    context.configure(
        connection=connection, target_metadata=metadata, **migration_context_options()
    )
    with views_kept_through_batch(connection), context.begin_transaction():
        context.run_migrations()


def _run_offline() -> None:
    url = context.get_x_argument(as_dictionary=True).get("url")
    if url is None:
        from etl_meta.config import get_settings

        url = get_settings().resolved_database_url()
    context.configure(
        url=url,
        target_metadata=metadata,
        literal_binds=True,
        **migration_context_options(),
    )
    with context.begin_transaction():
        context.run_migrations()


def _run_on_engine(engine: Engine) -> None:
    """Migrate on a connection of our own, committed here (nobody else holds it)."""
    with engine.connect() as conn:
        if conn.dialect.name != "sqlite":
            _run(conn)
            conn.commit()
            return
        # Batch mode rebuilds SQLite tables; with foreign keys on, dropping the old copy would
        # cascade into child rows. The pragma only works outside a transaction, and is put back
        # as it was: the connection returns to the caller's pool.
        raw = conn.connection.dbapi_connection
        (foreign_keys,) = raw.execute("PRAGMA foreign_keys").fetchone()
        raw.execute("PRAGMA foreign_keys=OFF")
        try:
            _run(conn)
            conn.commit()
            violations = raw.execute("PRAGMA foreign_key_check").fetchall()
            if violations:
                raise RuntimeError(f"migration left broken foreign keys: {violations[:5]}")
        finally:
            raw.execute(f"PRAGMA foreign_keys={'ON' if foreign_keys else 'OFF'}")


def _run_online() -> None:
    given = context.config.attributes.get("connection")
    if isinstance(given, Engine):
        _run_on_engine(given)  # the caller's engine: used, never disposed here
        return
    if given is not None:
        _run(given)
        return
    from etl_meta.db import create_engine

    url = context.get_x_argument(as_dictionary=True).get("url")
    engine = create_engine(url)
    try:
        _run_on_engine(engine)
    finally:
        engine.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
