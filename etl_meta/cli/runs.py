"""``etl-meta runs``: find executions by the store's id or the orchestrator's run id."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Annotated, Any

import typer

from etl_meta.cli._common import (
    DatabaseUrlOption,
    FormatOption,
    OutputFormat,
    console,
    err_console,
    handle_errors,
    open_store,
    parse_key_values,
    print_json,
    print_table,
    when,
)
from etl_meta.cli.metrics_output import format_number
from etl_meta.cli.run_lookup import MIN_PREFIX, AmbiguousRunError, print_candidates, resolve_run
from etl_meta.cli.runs_tag import print_tags, tag_run
from etl_meta.extras import require_extra


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
    tag: Annotated[
        list[str] | None,
        typer.Option(
            "--tag", metavar="KEY=VALUE", help="Only runs tagged KEY=VALUE (repeatable; all match)."
        ),
    ] = None,
    limit: Annotated[int, typer.Option(min=1, max=10_000, help="At most this many.")] = 50,
) -> None:
    """List runs, newest first."""
    tags = parse_key_values(tag, "--tag") or None
    with open_store(database_url) as store, handle_errors():
        runs = store.executions.list(
            job=job,
            status=status,
            orchestrator=orchestrator,
            tags=tags,
            limit=limit,
            with_steps=True,
        )
    if output is OutputFormat.json:
        # retries_used: added beside the stored fields (the table's "retries used" column).
        print_json(
            [
                {**json.loads(run.model_dump_json()), "retries_used": _retries_used(run)}
                for run in runs
            ]
        )
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
            _retries_used(run),
        )
        for run in runs
    ]
    # "retries used": attempts beyond each step's first, what this run spent of the job's
    # "max retries" (`jobs list`) per step.
    columns = ["id", "job", "by", "run id", "status", "started", "took", "retries used"]
    print_table("runs", columns, rows)


def _retries_used(run: Any) -> int:
    return sum(1 for step in run.steps or [] if step.attempt > 1)


@app.command("show")
def show_run(
    run: Annotated[
        str,
        typer.Argument(
            help="The store's id, the orchestrator's run id, or its first "
            f"{MIN_PREFIX}+ characters (the 8 the Dagster UI shows)."
        ),
    ],
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Show one run with every attempt of every step.

    A run id prefix matching several runs lists them, one per line, and exits 1.
    """
    with open_store(database_url) as store, handle_errors():
        try:
            execution = resolve_run(store, run, with_steps=True)
        except AmbiguousRunError as exc:
            print_candidates(exc)
            raise typer.Exit(1) from None
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
    if execution.tags:
        print_tags(execution)
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


@app.command(
    "compare",
    help="Compare two runs: status, duration, metrics side by side, configuration changes, "
    "run tags that differ.\n\n"
    "RUN_A is the baseline; each run is the store's id or an orchestrator's run id. Metrics are "
    "the last value of each step's final attempt. Configuration changes are field by field "
    "between the versions the runs used, secrets masked (a changed secret shows *** → ***). "
    "--since-last-success RUN compares RUN with the last successful run of its job before it.",
)
def compare_runs(
    run_a: Annotated[
        str | None, typer.Argument(help="The baseline run (store id or orchestrator run id).")
    ] = None,
    run_b: Annotated[str | None, typer.Argument(help="The run to compare with it.")] = None,
    since_last_success: Annotated[
        str | None,
        typer.Option(
            "--since-last-success",
            metavar="RUN",
            help="Compare RUN with the last successful run of its job before it.",
        ),
    ] = None,
    database_url: DatabaseUrlOption = None,
    output: FormatOption = OutputFormat.table,
) -> None:
    """Compare two runs, or a run with its job's last success (help text in the decorator)."""
    require_extra("analytics", needed_by="etl-meta runs compare")
    from etl_meta.analytics import changes_since_last_success
    from etl_meta.analytics import compare_runs as compare

    if since_last_success is not None and (run_a is not None or run_b is not None):
        raise typer.BadParameter(
            "give RUN_A RUN_B, or --since-last-success RUN, not both",
            param_hint="--since-last-success",
        )
    if since_last_success is None and (run_a is None or run_b is None):
        raise typer.BadParameter(
            "give two runs (RUN_A RUN_B) or --since-last-success RUN", param_hint="RUN_A RUN_B"
        )
    with open_store(database_url) as store, handle_errors():
        try:  # the runs as people paste them: ids, run ids or prefixes of run ids
            refs = [
                None if ref is None else resolve_run(store, ref).id
                for ref in (run_a, run_b, since_last_success)
            ]
        except AmbiguousRunError as exc:
            print_candidates(exc)
            raise typer.Exit(1) from None
        run_a, run_b, since_last_success = (None if r is None else str(r) for r in refs)
        if since_last_success is not None:
            comparison = changes_since_last_success(store, since_last_success)
            if comparison is None:
                target = store.executions.resolve(since_last_success)
                err_console.print(
                    f"[red]error:[/red] no successful run of {target.job_name} before run "
                    f"{target.id} ({target.external_run_id}) to compare with",
                    highlight=False,
                )
                raise typer.Exit(1)
        else:
            assert run_a is not None and run_b is not None
            comparison = compare(store, run_a, run_b)
    if output is OutputFormat.json:
        print_json(_comparison_json(comparison))
        return
    _print_comparison(comparison)


def _comparison_json(comparison: Any) -> dict[str, Any]:
    metrics = comparison.metrics.astype(object)
    metrics = metrics.where(metrics.notna(), None)
    return {
        "run_a": json.loads(comparison.run_a.model_dump_json()),
        "run_b": json.loads(comparison.run_b.model_dump_json()),
        "metrics": metrics.to_dict("records"),
        "config_known": comparison.config_known,
        "config_changes": [dataclasses.asdict(change) for change in comparison.config_changes],
        "tag_changes": [dataclasses.asdict(change) for change in comparison.tag_changes],
    }


app.command("tag")(tag_run)


def _print_comparison(comparison: Any) -> None:
    for label, run in (("a", comparison.run_a), ("b", comparison.run_b)):
        console.print(
            f"[bold]{label}[/bold]: run {run.id} of {run.job_name} ({run.orchestrator} "
            f"{run.external_run_id}): {run.status}, took {_duration(run.duration_seconds) or '?'}"
            f", started {when(run.started_at) or '?'}",
            highlight=False,
        )
    rows = [
        (
            row.component,
            row.name,
            format_number(row.a),
            format_number(row.b),
            format_number(row.delta, signed=True),
            "" if row.pct_change != row.pct_change else f"{row.pct_change:+.1%}",
        )
        for row in comparison.metrics.itertuples(index=False)
    ]
    print_table("metrics", ["component", "name", "a", "b", "delta", "pct"], rows)
    if not comparison.config_known:
        console.print(
            "configuration: not known (a run did not record which versions it used)",
            highlight=False,
        )
    elif not comparison.config_changes:
        console.print("configuration: unchanged", highlight=False)
    else:
        print_table(
            "configuration changes",
            ["component", "field", "version", "before", "after"],
            [
                (
                    change.component,
                    change.field,
                    f"{_version(change.version_a)} → {_version(change.version_b)}",
                    _config_value(change.before),
                    _config_value(change.after),
                )
                for change in comparison.config_changes
            ],
        )

    if not comparison.tag_changes:
        console.print("run tags: the same", highlight=False)
    else:
        absent = "-"
        print_table(
            "run tags that differ",
            ["key", "a", "b"],
            [
                (c.key, c.a if c.a is not None else absent, c.b if c.b is not None else absent)
                for c in comparison.tag_changes
            ],
        )


def _version(version: int | None) -> str:
    return "-" if version is None else f"v{version}"


def _config_value(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, default=str)


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
        # The problem phrase only: str(exc) quotes the file, whose lines may hold secrets. Only
        # a marked error has one; a non-printable character raises a ReaderError.
        if isinstance(exc, yaml.MarkedYAMLError):
            problem = exc.problem or "invalid YAML"
        elif isinstance(exc, yaml.reader.ReaderError):
            problem = "the file holds a non-printable character"
        else:
            problem = "invalid YAML"
        raise typer.BadParameter(f"{path}: not valid YAML/JSON ({problem})") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) for v in data.values()):
        raise typer.BadParameter(f"{path}: expected {{component: {{key: value}}}}")
    return data
