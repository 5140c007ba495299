"""Writers: store the single input table in a file or a database table; they return ``None``."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import pydantic

from etl_meta.components.base import ComponentContext, ComponentResult, ComponentType
from etl_meta.components.builtin._common import NonEmpty, single_frame, write_atomically
from etl_meta.components.contracts import SecretText, SecretURL
from etl_meta.components.errors import ComponentFailed
from etl_meta.components.registry import register
from etl_meta.components.sandbox import Sandbox, refusals, sandbox_of
from etl_meta.errors import FieldProblem

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from etl_meta.config import Settings


def _written(path: Path, rows: int) -> ComponentResult:
    return ComponentResult(value=None, metrics={"rows_written": rows}, metadata={"path": str(path)})


class _FileWriter(ComponentType):
    """A type writing ``configuration.path``: only inside the operator's sandbox."""

    def check_definition(self, config: Any, settings: Settings) -> list[FieldProblem]:
        sandbox = Sandbox.from_settings(settings)
        return refusals(lambda: sandbox.file(config.path, field="configuration.path", write=True))


@register
class WriteParquet(_FileWriter):
    """Write the single input table to a Parquet file (pyarrow).

    Configuration: ``path`` (required; parent directories are created); ``compression``
    (default ``snappy``; ``null`` for none). The file is replaced in one step, so a failed
    attempt never leaves half a file. Returns ``None``; metric ``rows_written``; metadata
    ``path``.
    """

    name = "write_parquet"
    description = "Write a table to a Parquet file."

    class Config(ComponentType.Config):
        path: NonEmpty
        compression: Literal["snappy", "gzip", "brotli", "lz4", "zstd"] | None = "snappy"

    def run(
        self, context: ComponentContext, config: Config, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        frame = single_frame(context, inputs)
        path = sandbox_of(context).file(config.path, field="configuration.path", write=True)
        write_atomically(
            path,
            lambda target: frame.to_parquet(
                target, engine="pyarrow", compression=config.compression, index=False
            ),
        )
        context.log.info("wrote %d rows to %s", len(frame), config.path)
        return _written(path, len(frame))


@register
class WriteCsv(_FileWriter):
    """Write the single input table to a CSV file.

    Configuration: ``path`` (required; parent directories are created); ``index`` (write the
    DataFrame index as a first column, default false); ``sep`` (default ``,``); ``encoding``
    (default ``utf-8``). The file is replaced in one step. Returns ``None``; metric
    ``rows_written``; metadata ``path``.
    """

    name = "write_csv"
    description = "Write a table to a CSV file."

    class Config(ComponentType.Config):
        path: NonEmpty
        index: pydantic.StrictBool = False
        sep: NonEmpty = ","
        encoding: NonEmpty = "utf-8"

    def run(
        self, context: ComponentContext, config: Config, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        frame = single_frame(context, inputs)
        path = sandbox_of(context).file(config.path, field="configuration.path", write=True)
        write_atomically(
            path,
            lambda target: frame.to_csv(
                target, index=config.index, sep=config.sep, encoding=config.encoding
            ),
        )
        context.log.info("wrote %d rows to %s", len(frame), config.path)
        return _written(path, len(frame))


@register
class WriteTable(ComponentType):
    """Write the single input table to a database table through SQLAlchemy (``to_sql``).

    Configuration: ``table`` (required); ``connection_url`` (required, a SQLAlchemy URL;
    ``postgresql://`` uses psycopg 3; a relative SQLite path such as
    ``sqlite:///output/warehouse.db`` is taken from the base directory, whose folders are
    created); ``if_exists`` (``replace``, the default, ``append`` or ``fail``); ``schema``
    (database schema of the table); ``user`` and ``password`` (override the URL's, so the URL
    itself can stay free of credentials; SQLite has no users and ignores both);
    ``chunksize`` (rows per insert batch).

    The write runs in one transaction and the engine is disposed afterwards. ``connection_url``
    and ``password`` are secrets: masked wherever etl-meta shows configuration, and never put
    in logs, metadata or error messages (which name only the backend, host and database).
    Returns ``None``; metric ``rows_written``; metadata ``table`` and ``database``.
    """

    name = "write_table"
    description = "Write a table to a database table (SQLAlchemy)."

    class Config(ComponentType.Config):
        table: NonEmpty
        connection_url: SecretURL
        if_exists: Literal["replace", "append", "fail"] = "replace"
        # `schema` would shadow a pydantic BaseModel attribute: stored as `db_schema`.
        db_schema: NonEmpty | None = pydantic.Field(default=None, alias="schema")
        user: NonEmpty | None = None
        password: SecretText | None = None
        chunksize: pydantic.StrictInt | None = pydantic.Field(default=None, ge=1)

        @pydantic.field_validator("connection_url")
        @classmethod
        def _not_blank(cls, value: pydantic.SecretStr) -> pydantic.SecretStr:
            if not value.get_secret_value().strip():
                raise ValueError("the connection URL is blank")
            return value

    def check_definition(self, config: Any, settings: Settings) -> list[FieldProblem]:
        from sqlalchemy.engine import make_url

        sandbox = Sandbox.from_settings(settings)
        text = config.connection_url.get_secret_value()
        try:
            target: str | URL = _with_user(make_url(text.strip()), config)
        except Exception:  # refused below without quoting it
            target = text
        return refusals(lambda: sandbox.database(target, field="configuration.connection_url"))

    def run(
        self, context: ComponentContext, config: Config, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        import sqlalchemy as sa

        frame = single_frame(context, inputs)
        url = self._url(context, config)
        where = _describe(url)
        try:
            engine = sa.create_engine(url)
        except Exception as exc:
            raise _scrubbed(context, config, f"cannot use the database {where}", exc) from None
        try:
            with engine.begin() as connection:
                frame.to_sql(
                    config.table,
                    connection,
                    schema=config.db_schema,
                    if_exists=config.if_exists,
                    index=False,
                    chunksize=config.chunksize,
                )
        except Exception as exc:
            raise _scrubbed(
                context, config, f"writing table {config.table!r} to {where} failed", exc
            ) from None
        finally:
            engine.dispose()
        context.log.info("wrote %d rows to table %r on %s", len(frame), config.table, where)
        return ComponentResult(
            value=None,
            metrics={"rows_written": len(frame)},
            metadata={"table": config.table, "database": where},
        )

    @staticmethod
    def _url(context: ComponentContext, config: Config) -> URL:
        from sqlalchemy.engine import make_url

        try:
            url = make_url(config.connection_url.get_secret_value().strip())
        except Exception:  # the parser's message may quote the URL
            raise ComponentFailed(
                f"component {context.component!r}: connection_url is not a valid SQLAlchemy URL",
                component=context.component,
            ) from None
        if url.drivername in ("postgres", "postgresql"):
            url = url.set(drivername="postgresql+psycopg")  # the driver etl-meta ships with
        url = _with_user(url, config)
        # Checked before any engine exists (connecting alone creates a SQLite file), on the
        # final URL: without a database name, PostgreSQL connects to the one named like the user.
        sqlite_path = sandbox_of(context).database(url, field="configuration.connection_url")
        if url.get_backend_name() == "sqlite":
            if sqlite_path is not None:  # the sandbox's real path: symlinks resolved once
                sqlite_path.parent.mkdir(parents=True, exist_ok=True)
                url = url.set(database=str(sqlite_path))
            return url  # SQLite has no users or passwords: the URL forms refuse them
        if config.password is not None:
            url = url.set(password=config.password.get_secret_value())
        return url


def _with_user(url: URL, config: WriteTable.Config) -> URL:
    """``url`` with the configured ``user`` (SQLite has no users: left alone)."""
    if config.user is None or url.get_backend_name() == "sqlite":
        return url
    return url.set(username=config.user)


def _describe(url: URL) -> str:
    """The backend, host and database of ``url``: never its user, password or query."""
    host = f"{url.host}:{url.port}" if url.port else (url.host or "")
    if url.get_backend_name() == "sqlite":
        return f"sqlite database {url.database or ':memory:'}"
    return f"{url.get_backend_name()} database {url.database or ''!r} on {host or 'localhost'}"


def _scrubbed(
    context: ComponentContext, config: WriteTable.Config, what: str, exc: BaseException
) -> ComponentFailed:
    """A :class:`ComponentFailed` for ``exc`` with every configured secret cut out.

    The driver's own message is kept (it says why: refused, no such schema, ...) but not the
    SQL statement and parameters SQLAlchemy appends, and the original exception is not
    chained, because drivers may quote the connection string.
    """
    reason = str(getattr(exc, "orig", None) or exc).strip()
    secrets = [config.connection_url.get_secret_value()]
    if config.password is not None:
        secrets.append(config.password.get_secret_value())
    try:
        from sqlalchemy.engine import make_url

        embedded = make_url(secrets[0]).password
        if embedded:
            secrets.append(str(embedded))
    except Exception:  # an unparsable URL has no password to find
        pass
    for secret in secrets:
        if secret:
            reason = reason.replace(secret, "***")
    return ComponentFailed(
        f"component {context.component!r}: {what}: {type(exc).__name__}: {reason}",
        component=context.component,
    )
