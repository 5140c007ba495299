"""``etl-meta audit``: read the audit trail (who changed or read what, when)."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer

from etl_meta.cli._common import (
    DatabaseUrlOption,
    FormatOption,
    OutputFormat,
    handle_errors,
    open_store,
    parse_since,
    print_json,
    print_table,
    when,
)

app = typer.Typer(help="Read the audit trail.", no_args_is_help=True)

#: Longest summary of an event's change shown in the table (the JSON output has it all).
_SUMMARY_WIDTH = 80


@app.command("list")
def list_events(
    entity_type: Annotated[
        str | None,
        typer.Option("--entity", help="job, component, dataclass, execution, run_request, ..."),
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="The entity's key, e.g. daily_sales.extract.")
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="create, update, archive, decrypt, rotate_secrets, gc, ...")
    ] = None,
    actor: Annotated[str | None, typer.Option(help="Who: user@host, dagster:<run id>, ...")] = None,
    since: Annotated[
        str | None, typer.Option(help="Only events since: 7d, 12h, or an ISO time.")
    ] = None,
    before_id: Annotated[
        int | None, typer.Option(help="Page: events older than this id (the last one shown).")
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """List audit events, newest first. Values are masked; decrypt events name fields only."""
    start = parse_since(since) if since else None
    with open_store(database_url) as store, handle_errors():
        events = store.audit.list(
            entity_type=entity_type,
            entity_key=key,
            action=action,
            actor=actor,
            since=start,
            before_id=before_id,
            limit=limit,
        )
    if output is OutputFormat.json:
        print_json(events)
        return
    # The database login column only where there is one (PostgreSQL; SQLite has no logins).
    logins = any(event.db_login for event in events)
    rows = [
        (
            event.id,
            when(event.occurred_at),
            event.actor + (f" ({event.db_login})" if logins and event.db_login else ""),
            event.action,
            event.entity_type,
            event.entity_key,
            _summary(event.after if event.after is not None else event.before),
        )
        for event in events
    ]
    actor = "actor (db login)" if logins else "actor"
    print_table("audit events", ["id", "when", actor, "action", "entity", "key", "change"], rows)


def _summary(document: dict[str, Any] | None) -> str:
    if not document:
        return ""
    text = json.dumps(document, separators=(",", ":"), default=str)
    return text if len(text) <= _SUMMARY_WIDTH else text[: _SUMMARY_WIDTH - 1] + "…"
