"""``etl-meta jobs``: look at stored job definitions, and retire or bring back a job."""

from __future__ import annotations

from typing import Annotated

import typer

from etl_meta.cli._common import (
    DatabaseUrlOption,
    FormatOption,
    OutputFormat,
    console,
    handle_errors,
    open_store,
    print_json,
    print_table,
    when,
)

app = typer.Typer(help="List, show, archive and restore jobs.", no_args_is_help=True)


@app.command("list")
def list_jobs(
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
    tag: Annotated[
        list[str] | None, typer.Option(help="Only jobs tagged KEY=VALUE (repeatable).")
    ] = None,
    archived: Annotated[bool, typer.Option(help="Include archived jobs.")] = False,
) -> None:
    """List jobs with their max retries per step, strategy, tags and latest run."""
    tags = {key: value for key, _, value in (t.partition("=") for t in tag or [])}
    with open_store(database_url) as store, handle_errors():
        jobs = store.jobs.list(include_archived=archived, tags=tags, with_components=True)
        latest = store.jobs.latest_executions(job.name for job in jobs)
    if output is OutputFormat.json:
        print_json(jobs)
        return
    rows = [
        (
            job.name,
            len(job.components or []),
            job.num_of_retries,
            job.strategy_type,
            "yes" if job.file_logging else "no",
            ", ".join(f"{k}={v}" for k, v in job.tags.items()),
            job.revision,
            f"{latest[job.name].status} {when(latest[job.name].started_at)}"
            if job.name in latest
            else "never",
        )
        for job in jobs
    ]
    print_table(
        "jobs",
        # "max retries": how often a failed step may be retried (num_of_retries), a limit,
        # unlike `runs list`'s "retries used"; JSON keeps the field name num_of_retries.
        ["name", "components", "max retries", "strategy", "file log", "tags", "rev", "last run"],
        rows,
    )


@app.command("show")
def show_job(
    name: Annotated[str, typer.Argument(help="Job name.")],
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show a job, its components (configuration masked) and its dependency graph."""
    with open_store(database_url) as store, handle_errors():
        job = store.jobs.get(name, with_components=True)
        graph = store.components.graph(name)
    if output is OutputFormat.json:
        print_json(job)
        return
    console.print(f"[bold]{job.name}[/bold]  (revision {job.revision})", highlight=False)
    if job.description:
        console.print(job.description, highlight=False, markup=False)
    console.print(
        f"max retries: {job.num_of_retries}   strategy: {job.strategy_type}"
        + (f" (max {job.max_concurrency})" if job.max_concurrency else "")
        + f"   file logging: {'on' if job.file_logging else 'off'}",
        highlight=False,
    )
    if job.tags:
        console.print("tags: " + ", ".join(f"{k}={v}" for k, v in job.tags.items()), markup=False)
    rows = [
        (
            c.name,
            c.component_type,
            c.status,
            c.config_version,
            ", ".join(c.depends_on),
            ", ".join(c.inputs),
            ", ".join(c.outputs),
        )
        for c in job.components or []
    ]
    print_table(
        "components", ["name", "type", "status", "config v", "after", "reads", "writes"], rows
    )
    if graph:
        console.print("[bold]run order[/bold]")
        for step, upstream in graph.items():
            arrow = f"  ← {', '.join(upstream)}" if upstream else ""
            console.print(f"  {step}{arrow}", highlight=False, markup=False)


def _set_archived(
    name: str, archived: bool, database_url: str | None, output: OutputFormat
) -> None:
    verb = "archived" if archived else "restored"
    with open_store(database_url) as store, handle_errors():
        before = store.jobs.get(name)
        job = store.jobs.archive(name) if archived else store.jobs.restore(name)
    if output is OutputFormat.json:
        print_json(job)
        return
    # Idempotent: asking again is not an error, but says nothing changed.
    status = verb if before.is_archived != job.is_archived else f"already {verb}"
    console.print(f"job {job.name}: {status} (revision {job.revision})", highlight=False)


@app.command("archive")
def archive_job(
    name: Annotated[str, typer.Argument(help="Job name.")],
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Retire a job: orchestrators stop running it, listings hide it; its runs and metrics stay.

    Archiving an archived job changes nothing. Undo with `etl-meta jobs restore NAME`.
    """
    _set_archived(name, True, database_url, output)


@app.command("restore")
def restore_job(
    name: Annotated[str, typer.Argument(help="Job name.")],
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Bring an archived job back, with its components as they were. Idempotent."""
    _set_archived(name, False, database_url, output)
