"""What every ``etl-meta`` command shares: options, opening the store, output and errors."""

from __future__ import annotations

import json
import os
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated, Any, TypeVar

import typer
from pydantic import BaseModel, SecretStr
from rich.console import Console
from rich.table import Table

from etl_meta.config import Settings, get_settings
from etl_meta.errors import EtlMetaError, ValidationError


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


@contextmanager
def handle_errors() -> Iterator[None]:
    """Print etl-meta errors as one readable line (exit 1), never a traceback with values."""
    try:
        yield
    except ValidationError as exc:
        err_console.print(f"[red]error:[/red] {exc.entity or 'input'} is invalid:", highlight=False)
        for problem in exc.problems:
            err_console.print(
                f"  {problem.field}: {problem.message}", highlight=False, markup=False
            )
        raise typer.Exit(1) from None
    except EtlMetaError as exc:
        err_console.print(f"[red]error:[/red] {type(exc).__name__}: ", end="", highlight=False)
        err_console.print(str(exc), highlight=False, markup=False)
        raise typer.Exit(1) from None


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
        table.add_row(*("" if cell is None else str(cell) for cell in row))
    console.print(table)


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
