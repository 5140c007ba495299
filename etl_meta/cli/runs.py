"""``etl-meta runs``: find executions by the store's id or the orchestrator's run id."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from etl_meta.cli._common import (
    DatabaseUrlOption,
    FormatOption,
    OutputFormat,
    console,
    handle_errors,
    print_json,
    print_table,
    when,
)
from etl_meta.cli.jobs import open_store


def _duration(seconds: float | None) -> str:
    return "" if seconds is None else f"{seconds:.1f}s"


app = typer.Typer(
    help="List and show runs (executions) and their step attempts.", no_args_is_help=True
)


@app.command("list")
def list_runs(
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
    job: Annotated[str | None, typer.Option(help="Only runs of this job.")] = None,
    status: Annotated[
        str | None, typer.Option(help="queued, running, success, failed, canceled.")
    ] = None,
    orchestrator: Annotated[str | None, typer.Option(help="dagster, airflow or manual.")] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
) -> None:
    """List runs, newest first."""
    with open_store(database_url) as store, handle_errors():
        runs = store.executions.list(
            job=job, status=status, orchestrator=orchestrator, limit=limit, with_steps=True
        )
    if output is OutputFormat.json:
        print_json(runs)
        return
    rows = [
        (
            run.id,
            run.job_name,
            run.orchestrator,
            run.external_run_id,
            run.status,
            when(run.started_at),
            _duration(run.duration_seconds),
            sum(1 for s in run.steps or [] if s.attempt > 1),
        )
        for run in runs
    ]
    print_table("runs", ["id", "job", "by", "run id", "status", "started", "took", "retries"], rows)


@app.command("show")
def show_run(
    run: Annotated[str, typer.Argument(help="The store's id or the orchestrator's run id.")],
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one run with every attempt of every step."""
    with open_store(database_url) as store, handle_errors():
        execution = store.executions.resolve(run, with_steps=True)
    if output is OutputFormat.json:
        print_json(execution)
        return
    console.print(
        f"[bold]run {execution.id}[/bold] of {execution.job_name}: {execution.status}",
        highlight=False,
    )
    console.print(
        f"{execution.orchestrator} run id: {execution.external_run_id}",
        highlight=False,
        markup=False,
    )
    console.print(
        f"started {when(execution.started_at)}  ended {when(execution.ended_at)}  "
        f"took {_duration(execution.duration_seconds)}",
        highlight=False,
    )
    if execution.root_run_id or execution.parent_run_id:
        console.print(
            f"re-execution of {execution.parent_run_id} (root {execution.root_run_id})",
            highlight=False,
            markup=False,
        )
    if execution.log_path:
        console.print(f"log: {execution.log_path}", highlight=False, markup=False)
    if execution.error:
        console.print("error:", style="red")
        console.print(execution.error, highlight=False, markup=False)
    rows = [
        (
            step.component_name,
            step.attempt,
            step.status,
            when(step.started_at),
            _duration(step.duration_seconds),
            (step.error or "").splitlines()[0][:80] if step.error else "",
        )
        for step in execution.steps or []
    ]
    print_table("steps", ["component", "attempt", "status", "started", "took", "error"], rows)


@app.command("request")
def request_run(
    job: Annotated[str, typer.Argument(help="The job to run.")],
    config: Annotated[
        Path | None,
        typer.Option(
            "--config",
            help="YAML/JSON file of configuration overrides: {component: {key: value}}.",
            exists=True,
            dir_okay=False,
        ),
    ] = None,
    key: Annotated[
        str | None, typer.Option(help="Idempotency key: asking twice with it gives one run.")
    ] = None,
    orchestrator: Annotated[
        str | None, typer.Option(help="dagster or airflow (default: whichever picks it up).")
    ] = None,
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Ask for a run of JOB; an orchestrator's sensor launches it exactly once."""
    overrides = _load_overrides(config) if config else {}
    with open_store(database_url) as store, handle_errors():
        request = store.run_requests.create(
            {"job": job, "request_key": key, "orchestrator": orchestrator, "run_config": overrides}
        )
    if output is OutputFormat.json:
        print_json(request)
        return
    console.print(
        f"run request {request.id} for {request.job_name}: {request.status} "
        f"(key {request.request_key})",
        highlight=False,
    )


def _load_overrides(path: Path) -> dict:
    import yaml

    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except yaml.YAMLError as exc:
        raise typer.BadParameter(f"{path}: not valid YAML/JSON ({exc.problem})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise typer.BadParameter(f"{path}: expected {{component: {{key: value}}}}")
    return data
