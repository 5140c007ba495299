"""``etl-meta db roles``: the PostgreSQL role analysts and BI tools connect with."""

from __future__ import annotations

import os
from typing import Annotated

import sqlalchemy as sa
import typer

from etl_meta.cli._common import (
    DatabaseUrlOption,
    console,
    err_console,
    handle_errors,
    settings_for,
)
from etl_meta.db import create_engine, render_url
from etl_meta.roles import READER_ROLE, READER_VIEWS, ensure_reader_role

SQLITE_MESSAGE = (
    "SQLite has no database roles: `etl-meta db roles` needs PostgreSQL. "
    "On SQLite anyone who can read the file can read everything in it; give analysts a copy, or "
    "open it read-only (sqlite3 'file:etl_meta.db?mode=ro'): the v_* views are there too."
)


def roles(
    reader_password_env: Annotated[
        str | None,
        typer.Option(
            "--reader-password-env",
            metavar="VAR",
            help=(
                f"Give {READER_ROLE} LOGIN with the password in environment variable VAR "
                "(never printed). Without it a new role is NOLOGIN and an existing one keeps "
                "its login and password."
            ),
            show_default=False,
        ),
    ] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create the read-only role etl_meta_reader (PostgreSQL) and grant it the v_* views only.

    Idempotent: creates the role if missing, revokes everything it has on the schema's tables,
    then grants CONNECT, USAGE on the schema and SELECT on the analyst views. Run it again after
    `etl-meta db upgrade` and in every database that holds an etl-meta store.
    """
    password = None
    if reader_password_env is not None:
        password = os.environ.get(reader_password_env)
        if not password:
            err_console.print(
                f"[red]error:[/red] environment variable {reader_password_env} is not set or "
                "is empty",
                highlight=False,
            )
            raise typer.Exit(1)

    settings = settings_for(database_url)
    engine = create_engine(settings.resolved_database_url(), settings=settings)
    try:
        if engine.dialect.name == "sqlite":
            console.print(SQLITE_MESSAGE, highlight=False, markup=False)
            return
        with handle_errors():
            try:
                applied = ensure_reader_role(engine, password=password)
            except sa.exc.DBAPIError as exc:
                # The driver's message only: the statement may hold the password's verifier.
                err_console.print(
                    f"[red]error:[/red] {READER_ROLE} could not be set up: ",
                    end="",
                    highlight=False,
                )
                err_console.print(str(exc.orig).strip(), markup=False, highlight=False)
                raise typer.Exit(1) from None
    finally:
        engine.dispose()

    warnings = [line for line in applied if line.startswith("warning:")]
    console.print(f"{READER_ROLE} on {render_url(engine.url)}:", highlight=False)
    for line in applied:
        if line not in warnings:
            console.print(f"  {line}", markup=False, highlight=False)
    for line in warnings:
        err_console.print(line, markup=False, highlight=False)
    if warnings:
        raise typer.Exit(2)
    console.print(
        f"ok: {READER_ROLE} may read {', '.join(READER_VIEWS)} and no etl-meta table",
        highlight=False,
    )
