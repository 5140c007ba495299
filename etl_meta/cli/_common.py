"""What every ``etl-meta`` command shares: options, opening the store, output and errors.

The command groups of integrations (``etl-meta dagster …``, ``etl-meta airflow …``) are built
from the same pieces; they import them through :mod:`etl_meta.cli`, this package's public face.
"""

from __future__ import annotations

import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, NoReturn, TypeVar
from urllib.parse import unquote

import pydantic
import typer
from pydantic import BaseModel, SecretStr
from rich.console import Console
from rich.table import Table
from rich.text import Text
from typer.core import TyperGroup

from etl_meta.access import Role
from etl_meta.config import Settings, get_settings
from etl_meta.errors import EtlMetaError, ValidationError, translate_db_error
from etl_meta.store import MetadataStore
from etl_meta.validation import translate_validation_error


def _width() -> int | None:
    # Rich falls back to 80 columns when output is not a terminal, wrapping table cells; piped
    # output (grep, less, CI logs) reads better unwrapped. COLUMNS still wins when set.
    if os.environ.get("COLUMNS") or sys.stdout.isatty():
        return None
    return 200


console = Console(width=_width())
err_console = Console(stderr=True, width=_width())

F = TypeVar("F", bound=Callable[..., Any])


class OutputFormat(StrEnum):
    """How list and show commands print."""

    table = "table"
    json = "json"


DatabaseUrlOption = Annotated[
    str | None,
    typer.Option(
        "--database-url",
        envvar="ETL_META_DATABASE_URL",
        help="Store URL (default: ETL_META_DATABASE_URL, else the embedded SQLite file).",
        show_envvar=True,
        show_default=False,
    ),
]
FormatOption = Annotated[
    OutputFormat, typer.Option("--format", "-f", help="table for people, json for programs.")
]


def settings_for(database_url: str | None) -> Settings:
    """The environment's settings, with ``--database-url`` taking precedence."""
    settings = get_settings()
    if database_url:
        # model_copy does not validate: wrap the URL as the field's type itself.
        settings = settings.model_copy(update={"database_url": SecretStr(database_url)})
    return settings


#: Exit codes shared by every command (docs/cli.md, "Errors and exit codes").
EXIT_ERROR = 1  # an expected failure: bad input, the database, a migration, a file
EXIT_USAGE = 2  # the command line itself (click's code); also `db check` drift, `db roles` warning
EXIT_UNEXPECTED = 3  # an error etl-meta did not foresee: a bug; `-v` prints its traceback


@contextmanager
def handle_errors() -> Iterator[None]:
    """Print any error as one ``error: …`` line on stderr and exit with its code; never a
    traceback (unless ``-v``) and never a secret from the database URL.

    Commands wrap their work in it so the error is reported before anything else prints; the
    root command group (:class:`OneLineErrorsGroup`) wraps every command in it too, so nothing
    escapes as a traceback. ``typer.Exit`` and a missing-arguments help screen pass through.
    """
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except typer.TyperException as exc:
        # Typer vendors click and exports only the base class of its errors: the help screen
        # of a group called without arguments is one of them, and must still show.
        if type(exc).__name__ == "NoArgsIsHelpError":
            raise
        _report(exc)
    except Exception as exc:
        _report(exc)


def _report(exc: Exception) -> NoReturn:
    """Print ``exc`` as one line (plus the traceback with ``-v``) and exit with its code."""
    message, code = describe_error(exc)
    secrets = _url_secrets()
    err_console.print("[red]error:[/red] ", end="", highlight=False)
    err_console.print(_scrub(message, secrets), highlight=False, markup=False, soft_wrap=True)
    if _verbose():
        trace = "".join(traceback.format_exception(exc))
        err_console.print(_scrub(trace, secrets), highlight=False, markup=False, soft_wrap=True)
    raise typer.Exit(code) from None


def describe_error(exc: BaseException) -> tuple[str, int]:
    """The one line (after ``error: ``) and the exit code that report ``exc``."""
    from alembic.util import CommandError
    from sqlalchemy import exc as sa_exc

    from etl_meta.extras import missing_extra

    # A lazy import of an extra's module that no require_extra() caught first: still one line
    # naming the extra to install, never "a bug?".
    exc = missing_extra(exc, needed_by="this command") or exc
    if isinstance(exc, typer.TyperException):  # click's errors (bad options, usage)
        context = getattr(exc, "ctx", None)  # usage errors know their command
        hint = f" (see '{context.command_path} --help')" if context is not None else ""
        return _one_line(exc.format_message()) + hint, exc.exit_code
    if isinstance(exc, pydantic.ValidationError):  # ETL_META_* settings the environment set
        exc = translate_validation_error(exc, entity="settings")
    elif isinstance(exc, sa_exc.SQLAlchemyError) and not isinstance(exc, sa_exc.ArgumentError):
        # Driver errors (a lost connection, a migration's failing statement, the loser of two
        # concurrent migrations): the store's translation keeps the primary message only,
        # never DETAIL lines or statement parameters, which may quote values.
        exc = translate_db_error(exc)
    if isinstance(exc, ValidationError):
        problems = "; ".join(str(problem) for problem in exc.problems)
        return _one_line(f"{exc.entity or 'input'} is invalid: {problems}"), EXIT_ERROR
    if isinstance(exc, EtlMetaError | sa_exc.ArgumentError | OSError):
        return _one_line(f"{type(exc).__name__}: {exc}"), EXIT_ERROR
    if isinstance(exc, CommandError):  # alembic refused: an unknown revision, a bad target
        return _one_line(f"migration refused: {exc}"), EXIT_ERROR
    # Only the first line: the rest of an unforeseen message may quote values.
    first = next(iter(str(exc).strip().splitlines()), "")
    return (
        f"unexpected {type(exc).__name__}: {first} (a bug? `etl-meta -v …` shows the traceback)",
        EXIT_UNEXPECTED,
    )


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _verbose() -> bool:
    context = _invocation.get()
    return bool(context and context.find_root().params.get("verbose"))


#: The command being run (set by :class:`OneLineErrorsGroup`): typer exports no accessor for
#: click's current context, and error reports need its options (``-v``, ``--database-url``).
_invocation: ContextVar[typer.Context | None] = ContextVar("etl_meta_cli_invocation", default=None)

#: ``ctx.meta`` key: the command line as given, for :func:`_url_secrets`.
_ARGV_KEY = "etl_meta.argv"


def _url_secrets() -> list[str]:
    """What must never be printed: the passwords (and secret query values) of the database URLs
    this process was given; the whole URL when it is not one we can read unambiguously."""
    from etl_meta.masking import is_sensitive_key
    from etl_meta.secret_urls import secret_parts

    candidates = [os.environ.get("ETL_META_DATABASE_URL", "")]
    context = _invocation.get()
    if context is not None:
        for arg in context.meta.get(_ARGV_KEY, ()):
            option, equals, value = arg.partition("=")
            # --database-url=URL; a bare URL's own "=" (?sslmode=…) is part of it.
            candidates.append(value if option.startswith("--") and equals else arg)
        candidates += [str(context.params.get("database_url") or "")]
    try:
        configured = get_settings().database_url  # also read from a .env file
    except Exception:  # invalid settings: reported by the caller, nothing to hide here
        configured = None
    if configured is not None:
        candidates.append(configured.get_secret_value())
    secrets: set[str] = set()
    for text in candidates:
        if "://" in text:
            parts = secret_parts(text, is_sensitive_key)
            secrets.update(parts if parts is not None else [text])
    secrets |= {unquote(secret) for secret in secrets}  # a driver may print the decoded form
    return sorted((secret for secret in secrets if secret), key=len, reverse=True)


def _scrub(text: str, secrets: Sequence[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


class OneLineErrorsGroup(TyperGroup):
    """The ``etl-meta`` root group: whatever a command (a plugin's too) raises, and any bad
    option or argument, ends as one ``error:`` line (see :func:`handle_errors`).

    The overrides annotate ``typer.Context``, typer's public name for a command's context; the
    base methods (and the object passed) are its vendored click's ``Context``, which only the
    private ``typer._click`` names: hence the ignores.
    """

    def parse_args(self, ctx: typer.Context, args: list[str]) -> list[str]:  # type: ignore[override]
        ctx.meta[_ARGV_KEY] = list(args)  # every sub-command's arguments, --database-url too
        _invocation.set(ctx)
        with handle_errors():
            return super().parse_args(ctx, args)

    def invoke(self, ctx: typer.Context) -> Any:  # type: ignore[override]
        _invocation.set(ctx)
        with handle_errors():
            return super().invoke(ctx)


def print_json(data: Any) -> None:
    """JSON for programs: ISO timestamps, secrets masked (models serialize themselves)."""
    if isinstance(data, BaseModel):
        text = data.model_dump_json(indent=2)
    elif isinstance(data, list) and all(isinstance(item, BaseModel) for item in data):
        text = "[" + ",".join(item.model_dump_json() for item in data) + "]"
        text = json.dumps(json.loads(text), indent=2)
    else:
        text = json.dumps(data, indent=2, default=str)
    sys.stdout.write(text + "\n")


def print_table(title: str | None, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table for people; says so plainly when there is nothing to show."""
    if not rows:
        console.print(f"no {title or 'rows'} found", highlight=False)
        return
    table = Table(title=title, title_justify="left", show_lines=False)
    for column in columns:
        table.add_column(column, overflow="fold")
    for row in rows:
        # Text, not str: a cell holds stored text (a tag value, an error), never markup.
        table.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    console.print(table)


def parse_key_values(items: Sequence[str] | None, param_hint: str) -> dict[str, str]:
    """``["team=growth", "tier=1"]`` as ``{"team": "growth", "tier": "1"}``.

    The error names the argument by position, never by content: it may be a mistyped secret.
    """
    pairs: dict[str, str] = {}
    for number, item in enumerate(items or [], start=1):
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"argument {number} is not KEY=VALUE", param_hint=param_hint)
        pairs[key.strip()] = value.strip()
    return pairs


def when(value: Any) -> str:
    """A timestamp for tables: ``2026-01-01 12:00:00Z``."""
    if value is None:
        return ""
    return value.strftime("%Y-%m-%d %H:%M:%SZ")


_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_since(value: str) -> datetime:
    """``7d``/``12h``/``30m``/``45s``/``2w`` ago, or an ISO-8601 time (UTC if no zone given)."""
    text = value.strip()
    if len(text) > 1 and text[-1] in _UNITS and text[:-1].isdigit():
        return datetime.now(UTC) - timedelta(seconds=int(text[:-1]) * _UNITS[text[-1]])
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r}: use a duration like 7d, 12h, 30m, or an ISO time like 2026-01-31T00:00Z"
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def require_existing_store(settings: Settings) -> None:
    """Exit 1 with ``no store at PATH`` when the SQLite store file does not exist.

    Opening a SQLite URL creates the file (and its directory): a mistyped path or an unset
    ``ETL_META_HOME`` would leave an empty database behind, and every later command would then
    complain about its schema instead of its location. Commands that need a store call this
    before opening it; ``etl-meta db upgrade`` does not, since it is what creates one.
    PostgreSQL and SQLite URI filenames (``file:…?uri=true``) are left to the driver.
    """
    from pathlib import Path

    from etl_meta.db import parse_database_url

    # Not make_url: a malformed or unsupported URL is refused as such (one line, exit 1).
    url = parse_database_url(settings.resolved_database_url())
    database = url.database or ""
    if url.get_backend_name() != "sqlite" or not database or "uri" in url.query:
        return
    if database == ":memory:" or database.startswith("file:"):
        return
    path = Path(database).expanduser()
    if path.exists():
        return
    err_console.print("[red]error:[/red] ", end="", highlight=False)
    err_console.print(
        f"no store at {path}, run `etl-meta db upgrade` to create one "
        "(or point --database-url / ETL_META_DATABASE_URL at an existing store)",
        highlight=False,
        markup=False,
        soft_wrap=True,  # one line however long the path: never wrapped at the console width
    )
    raise typer.Exit(1)


def open_store(
    database_url: str | None = None,
    *,
    settings: Settings | None = None,
    role: Role | str | None = None,
) -> MetadataStore:
    """The store a command works on, opened with any error reported as one line.

    ``settings`` default to the environment's, with ``database_url`` (``--database-url``) taking
    precedence (:func:`settings_for`); ``role`` is the store's (default: ``ETL_META_ROLE``). A
    SQLite store that does not exist is refused, not created (:func:`require_existing_store`).
    Close it when done: ``with open_store(database_url) as store, handle_errors(): …``.
    """
    settings = settings if settings is not None else settings_for(database_url)
    require_existing_store(settings)
    with handle_errors():
        return MetadataStore(settings=settings, role=role)
