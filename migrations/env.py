"""Alembic environment for etl-meta: one chain, batch mode, SQLite and PostgreSQL.

etl-meta's own commands (``etl-meta db …``) pass an open connection in
``config.attributes["connection"]``. Plain ``alembic`` (with ``-x url=...`` or
``ETL_META_DATABASE_URL``) works too, for developers writing new revisions.
"""

from alembic import context

from etl_meta.models import metadata
from etl_meta.schema import migration_context_options


def _run(connection) -> None:
    context.configure(
        connection=connection, target_metadata=metadata, **migration_context_options()
    )
    with context.begin_transaction():
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


def _run_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    from etl_meta.db import create_engine

    url = context.get_x_argument(as_dictionary=True).get("url")
    engine = create_engine(url)
    try:
        with engine.connect() as conn:
            if conn.dialect.name == "sqlite":
                conn.connection.dbapi_connection.execute("PRAGMA foreign_keys=OFF")
            _run(conn)
            conn.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    _run_offline()
else:
    _run_online()
