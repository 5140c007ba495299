"""``etl-meta db roles``: the PostgreSQL roles analysts, orchestrators and admins connect as."""

from __future__ import annotations

import os
from typing import Annotated, Any

import sqlalchemy as sa
import typer

from etl_meta.access import Role
from etl_meta.cli._common import (
    DatabaseUrlOption,
    console,
    err_console,
    handle_errors,
    settings_for,
)
from etl_meta.db import create_engine, render_url
from etl_meta.roles import ADMIN_ROLE, READER_ROLE, WRITER_ROLE, ensure_roles
from etl_meta.roles_grants import role_plan

SQLITE_MESSAGE = (
    "SQLite has no database roles: `etl-meta db roles` needs PostgreSQL. "
    "On SQLite anyone who can read the file can read and change everything in it; give analysts "
    "a copy, or open it read-only (sqlite3 'file:etl_meta.db?mode=ro'): the v_* views are there "
    "too. The store still checks each caller's role (ETL_META_ROLE: reader, writer or admin), "
    "which keeps honest tools in their lane but protects nothing from someone with the file."
)


def _password_option(role: Role, name: str) -> Any:
    """``--<role>-password-env VAR``: the same option for each of the three roles."""
    return typer.Option(
        f"--{role.value}-password-env",
        metavar="VAR",
        help=(
            f"Give {name} LOGIN with the password in environment variable VAR (never printed). "
            "Without it a new role is NOLOGIN and an existing one keeps its login and password."
        ),
        show_default=False,
    )


def roles(
    role: Annotated[
        list[Role] | None,
        typer.Option(
            "--role",
            metavar="reader|writer|admin",
            help="Set up only this role (repeatable). Default: reader, writer and admin.",
            case_sensitive=False,
            show_default=False,
        ),
    ] = None,
    reader_password_env: Annotated[str | None, _password_option(Role.READER, READER_ROLE)] = None,
    writer_password_env: Annotated[str | None, _password_option(Role.WRITER, WRITER_ROLE)] = None,
    admin_password_env: Annotated[str | None, _password_option(Role.ADMIN, ADMIN_ROLE)] = None,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Create the PostgreSQL roles etl_meta_reader, etl_meta_writer and etl_meta_admin.

    Idempotent: creates each role if missing, revokes everything it has on the database and the
    schema's tables, then grants exactly its share: the reader the v_* views, the writer what
    orchestrators record runs with, the admin every change but to the audit trail. Run it again
    after `etl-meta db upgrade` and in every database that holds an etl-meta store. Exits 2 when
    a role still holds more than its share through PUBLIC or another role.
    """
    selected = list(dict.fromkeys(role or Role))
    passwords = _passwords(
        selected,
        {
            Role.READER: reader_password_env,
            Role.WRITER: writer_password_env,
            Role.ADMIN: admin_password_env,
        },
    )

    settings = settings_for(database_url)
    engine = create_engine(settings.resolved_database_url(), settings=settings)
    try:
        if engine.dialect.name == "sqlite":
            console.print(SQLITE_MESSAGE, highlight=False, markup=False)
            return
        with handle_errors():
            try:
                applied = ensure_roles(engine, selected, passwords=passwords)
            except sa.exc.DBAPIError as exc:
                # The driver's message only: the statement may hold a password's verifier.
                names = ", ".join(role_plan(r).name for r in selected)
                err_console.print(
                    f"[red]error:[/red] {names} could not be set up (nothing was changed): ",
                    end="",
                    highlight=False,
                )
                # libpq's message may run over several lines (a hint): errors print one.
                reason = " ".join(str(exc.orig).split())
                err_console.print(reason, markup=False, highlight=False, soft_wrap=True)
                raise typer.Exit(1) from None
    finally:
        engine.dispose()

    warned = False
    for selected_role, lines in applied.items():
        console.print(
            f"{role_plan(selected_role).name} on {render_url(engine.url)}:", highlight=False
        )
        for line in lines:
            if not line.startswith("warning:"):
                # Unwrapped, so a statement can be copied whole.
                console.print(f"  {line}", markup=False, highlight=False, soft_wrap=True)
    for selected_role, lines in applied.items():
        warnings = [line for line in lines if line.startswith("warning:")]
        for line in warnings:
            err_console.print(line, markup=False, highlight=False, soft_wrap=True)
        if warnings:
            warned = True
        else:
            console.print(
                f"ok: {role_plan(selected_role).summary}", highlight=False, soft_wrap=True
            )
    if warned:
        raise typer.Exit(2)


def _passwords(selected: list[Role], variables: dict[Role, str | None]) -> dict[Role, str]:
    """The password of each role given ``--<role>-password-env``, read from the environment."""
    passwords: dict[Role, str] = {}
    for role, variable in variables.items():
        if variable is None:
            continue
        if role not in selected:
            err_console.print(
                f"[red]error:[/red] --{role.value}-password-env is given but --role leaves out "
                f"{role.value}",
                highlight=False,
            )
            raise typer.Exit(1)
        password = os.environ.get(variable)
        if not password:
            err_console.print(
                f"[red]error:[/red] environment variable {variable} is not set or is empty",
                highlight=False,
            )
            raise typer.Exit(1)
        passwords[role] = password
    return passwords
