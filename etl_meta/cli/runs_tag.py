"""``etl-meta runs tag``: annotate a run after the fact with ``key=value`` tags."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from etl_meta.cli._common import (
    DatabaseUrlOption,
    FormatOption,
    OutputFormat,
    console,
    handle_errors,
    open_store,
    parse_key_values,
    print_json,
    print_table,
)
from etl_meta.cli.run_lookup import MIN_PREFIX, AmbiguousRunError, print_candidates, resolve_run

RunArgument = Annotated[
    str,
    typer.Argument(
        help=f"The store's id, the orchestrator's run id, or its first {MIN_PREFIX}+ characters."
    ),
]


def tag_run(
    run: RunArgument,
    tags: Annotated[
        list[str] | None, typer.Argument(metavar="KEY=VALUE...", help="Tags to set.")
    ] = None,
    remove: Annotated[
        list[str] | None,
        typer.Option("--remove", metavar="KEY", help="Remove a tag you set (repeatable)."),
    ] = None,
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Set (or --remove) your tags on a run; shows the run's tags after.

    Your tag overrides the orchestrator's value of the same key, and the orchestrator's later
    writes leave it alone. Tags the orchestrator wrote cannot be removed, only overwritten.
    Every change is in the audit trail; setting a value a tag already has changes nothing.
    """
    given = parse_key_values(tags, "KEY=VALUE")
    if not given and not remove:
        raise typer.BadParameter("give KEY=VALUE tags to set or --remove KEY", param_hint="TAGS")
    with open_store(database_url) as store, handle_errors():
        try:
            target = resolve_run(store, run)
        except AmbiguousRunError as exc:
            print_candidates(exc)
            raise typer.Exit(1) from None
        execution = target
        if given:
            execution = store.executions.tag(target.id, given)
        if remove:
            execution = store.executions.untag(target.id, remove)
    if output is OutputFormat.json:
        print_json(execution)
        return
    print_tags(execution)


def print_tags(execution: Any) -> None:
    """The run's tags as a table, or ``no tags`` (``runs show`` and ``runs tag``)."""
    if not execution.tags:
        console.print(f"run {execution.id}: no tags", highlight=False)
        return
    print_table(f"tags of run {execution.id}", ["key", "value"], list(execution.tags.items()))
