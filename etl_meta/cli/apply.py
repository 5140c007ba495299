"""``etl-meta apply -f FILE``: make the store match a definitions file."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated

import typer
from rich.text import Text

from etl_meta.cli._common import (
    DatabaseUrlOption,
    OutputFormat,
    console,
    err_console,
    handle_errors,
    open_store,
)
from etl_meta.definitions import (
    DefinitionsError,
    DefinitionsFile,
    Plan,
    apply_definitions,
    load_definitions,
)

_ACTION_STYLE = {
    "created": "green",
    "updated": "yellow",
    "renamed": "cyan",
    "archived": "red",
    "removed": "red",
    "unchanged": "dim",
}


def _fail(error: DefinitionsError) -> typer.Exit:
    # One `file:line:column: path: reason` line per problem, like a compiler.
    for problem in error.problems:
        err_console.print(str(problem), highlight=False, markup=False, soft_wrap=True)
    return typer.Exit(1)


def _print_plan(plan: Plan, source: str) -> None:
    width = max((len(item.name) for item in plan.items), default=0)
    for item in plan.items:
        line = Text(f"{item.kind:<10} {item.name:<{width}}  ")
        line.append(item.action, style=_ACTION_STYLE[item.action])
        if item.renamed_from:
            line.append(f" from {item.renamed_from}")
        if item.changed_fields:
            line.append(f" ({', '.join(item.changed_fields)})")
        console.print(line, highlight=False, soft_wrap=True)
    if plan.dry_run:
        verdict = "dry run, nothing was written"
    elif plan.changed:
        verdict = "applied"
    else:
        verdict = "already up to date"
    console.print(
        f"{source}: {plan.summary()} ({verdict})", highlight=False, markup=False, soft_wrap=True
    )


def apply(
    file: Annotated[
        Path,
        typer.Option(
            "--file",
            "-f",
            help="Definitions file (YAML) declaring dataclasses and jobs.",
            dir_okay=False,
        ),
    ],
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Print what would change; write nothing.")
    ] = False,
    prune: Annotated[
        bool,
        typer.Option(
            "--prune",
            help="Also archive the live jobs and dataclasses FILE does not declare.",
        ),
    ] = False,
    database_url: DatabaseUrlOption = None,
    output: Annotated[
        OutputFormat, typer.Option("--format", help="table for people, json for programs.")
    ] = OutputFormat.table,
) -> None:
    """Create or update dataclasses, jobs and components to match FILE, in one transaction.

    Prints one line per entity: created, updated (with the changed fields), renamed (a
    component's renamed_from), unchanged, or archived (components no longer in the file; with
    --prune, first, the jobs and dataclasses no longer in it). Applying the same file again
    changes nothing. Configuration values are never printed.
    """
    source = str(file)
    try:
        definitions: DefinitionsFile = load_definitions(file, name=source)
    except DefinitionsError as exc:
        raise _fail(exc) from None
    with open_store(database_url) as store, handle_errors():
        try:
            plan = apply_definitions(store, definitions, dry_run=dry_run, prune=prune)
        except DefinitionsError as exc:
            raise _fail(exc) from None
    if output is OutputFormat.json:
        sys.stdout.write(json.dumps({"source": source, **plan.to_dict()}, indent=2) + "\n")
        return
    _print_plan(plan, source)
