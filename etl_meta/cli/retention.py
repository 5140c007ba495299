"""``etl-meta retention show`` and the report of ``etl-meta gc --policy``."""

from __future__ import annotations

import typer
from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

from etl_meta.cli._common import (
    DatabaseUrlOption,
    console,
    err_console,
    handle_errors,
    open_store,
    print_table,
    when,
)
from etl_meta.store import MetadataStore
from etl_meta.store.retention_pass import JobRetention, RetentionResult

app = typer.Typer(no_args_is_help=True, help="Retention policies (set them with etl-meta apply).")

_REPORT_COLUMNS = (
    "job",
    "policy",
    "runs rolled up",
    "points rolled up",
    "runs deleted",
    "attempts deleted",
    "points deleted",
    "batches",
)


def _days(value: int | None) -> str:
    return "-" if value is None else f"{value}d"


def _policy(line: JobRetention) -> str:
    if line.status == "held":
        return f"legal hold: {line.hold_reason}"
    if line.status == "no policy":
        return "no policy (kept)"
    archive = ", archive" if line.archive else ""
    return f"raw {_days(line.raw_days)}, rollups +{_days(line.rollup_days)}{archive}"


def _report_rows(result: RetentionResult) -> list[list[object]]:
    return [
        [
            line.job,
            _policy(line),
            f"{line.runs_rolled_up:,}",
            f"{line.points_rolled_up:,}",
            f"{line.runs_deleted:,}",
            f"{line.attempts_deleted:,}",
            f"{line.points_deleted:,}",
            f"{line.batches:,}",
        ]
        for line in result.jobs
    ]


def summary(result: RetentionResult) -> str:
    """The one line after the table."""
    rolled = sum(line.runs_rolled_up for line in result.jobs)
    deleted = sum(line.runs_deleted for line in result.jobs)
    held = sum(line.status == "held" for line in result.jobs)
    counts = f"{rolled:,} run(s) rolled up, {deleted:,} run(s) deleted, {held:,} job(s) on hold"
    if result.dry_run:
        return f"would have: {counts} (dry run: nothing was changed)"
    if not result.changed:
        return f"nothing to do as of {when(result.now)}"
    line = counts
    if result.archive_path is not None:
        line += f"; archived to {result.archive_path}"
    return line


def run_policy(store: MetadataStore, *, dry_run: bool, batch_size: int) -> None:
    """``etl-meta gc --policy``: the pass (or its dry run), a per-job table, one summary line."""
    with (
        Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            TimeElapsedColumn(),
            console=err_console,
            transient=True,
            disable=dry_run or not err_console.is_terminal,
        ) as bar,
        handle_errors(),
    ):
        task = bar.add_task("applying retention policies")

        def describe(job: str, phase: str, runs: int) -> None:
            bar.update(task, description=f"{job}: {phase} ({runs} run(s) in the last batch)")

        result = store.maintenance.apply_retention(
            dry_run=dry_run, batch_size=batch_size, progress=describe
        )
    title = "retention (dry run)" if dry_run else "retention"
    print_table(title, _REPORT_COLUMNS, _report_rows(result))
    console.print(summary(result), highlight=False, markup=False, soft_wrap=True)
    kept = sum(line.unfinished_kept for line in result.jobs)
    if kept:
        err_console.print(
            f"note: kept {kept:,} queued or running run(s) older than their policy; they may be "
            "stuck (see etl-meta runs list --status running)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )


@app.command("show")
def show(database_url: DatabaseUrlOption = None) -> None:
    """Print the stored retention policies: the default, then each job's override."""
    with open_store(database_url) as store, handle_errors():
        policies = store.retention.list()
    rows = [
        [
            policy.job or "(default)",
            _days(policy.raw_days),
            _days(policy.rollup_days),
            {None: "-", True: "yes", False: "no"}[policy.archive],
            policy.hold_reason if policy.legal_hold else "",
            policy.revision,
            when(policy.updated_at),
        ]
        for policy in policies
    ]
    columns = ("job", "raw", "rollups", "archive", "legal hold", "revision", "updated")
    print_table("retention policies", columns, rows)
