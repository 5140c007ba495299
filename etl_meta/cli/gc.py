"""``etl-meta gc --older-than 90d``: delete old finished runs, their attempts and metric points.

``etl-meta gc --policy`` applies the stored retention policies instead (:mod:`.retention`).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from etl_meta.cli._common import (
    DatabaseUrlOption,
    console,
    err_console,
    handle_errors,
    open_store,
    parse_since,
    when,
)
from etl_meta.cli.retention import run_policy
from etl_meta.extras import require_extra
from etl_meta.store.maintenance import MAX_BATCH_SIZE, GcResult


def _counts(result: GcResult) -> str:
    return (
        f"{result.runs:,} run(s), {result.attempts:,} attempt(s), "
        f"{result.metrics:,} metric point(s) in {result.batches:,} batch(es)"
    )


def _summary(result: GcResult) -> str:
    if result.runs == 0:
        return f"nothing older than {when(result.older_than)}"
    if result.dry_run:
        return f"would delete {_counts(result)} (dry run: nothing was deleted)"
    line = f"deleted {_counts(result)}"
    if result.partitions_dropped:
        line += f" ({len(result.partitions_dropped):,} whole partition(s) of points dropped)"
    if result.archive_path is not None:
        line += f"; archived to {result.archive_path}"
    return line


def gc(
    older_than: Annotated[
        datetime | None,
        typer.Option(
            "--older-than",
            parser=parse_since,
            metavar="AGE|TIME",
            help="Delete finished runs that ended before this: 90d, 12h, 2w, or an ISO time.",
            show_default=False,
        ),
    ] = None,
    policy: Annotated[
        bool,
        typer.Option(
            "--policy",
            help="Apply the stored retention policies (roll up, archive, delete) per job.",
        ),
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Count what would be deleted; change nothing.")
    ] = False,
    archive: Annotated[
        Path | None,
        typer.Option(
            "--archive",
            metavar="DIR",
            help="Write each batch to Parquet under DIR/gc-<time>/ before deleting it.",
            file_okay=False,
            writable=True,
        ),
    ] = None,
    batch_size: Annotated[
        int,
        typer.Option(
            "--batch-size", min=1, max=MAX_BATCH_SIZE, help="Runs per transaction (each commits)."
        ),
    ] = 500,
    database_url: DatabaseUrlOption = None,
) -> None:
    """Delete runs that finished before --older-than, with their step attempts and metrics;
    or, with --policy, apply the stored retention policies and print a per-job report.

    Works in short batches (one transaction each), so orchestrators can keep writing meanwhile.
    Queued and running runs are never deleted, however old. Each batch leaves one audit event.
    """
    if policy and older_than is not None:
        raise typer.BadParameter(
            "--policy applies the stored policies; --older-than is for a one-off gc: "
            "give one of them",
            param_hint="--policy / --older-than",
        )
    if policy and archive is not None:
        raise typer.BadParameter(
            "--policy archives where ETL_META_RETENTION_ARCHIVE_DIR says, when a policy asks",
            param_hint="--archive",
        )
    if policy:
        with open_store(database_url) as store:
            run_policy(store, dry_run=dry_run, batch_size=batch_size)
        return
    if older_than is None:
        raise typer.BadParameter(
            "give --older-than AGE|TIME, or --policy", param_hint="--older-than"
        )
    if archive is not None and not dry_run:
        # Whether or not anything is old enough today: a scheduled gc fails on its first run.
        require_extra("analytics", "pyarrow", needed_by="etl-meta gc --archive")
    with open_store(database_url) as store, handle_errors():
        preview = store.maintenance.gc(older_than=older_than, batch_size=batch_size, dry_run=True)
        if dry_run or preview.runs == 0:
            result = preview
        else:
            with Progress(
                TextColumn("deleting runs"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=err_console,
                transient=True,
                disable=not err_console.is_terminal,
            ) as bar:
                task = bar.add_task("gc", total=preview.runs)
                result = store.maintenance.gc(
                    older_than=older_than,
                    batch_size=batch_size,
                    archive_dir=archive,
                    progress=lambda runs: bar.advance(task, runs),
                )
    console.print(_summary(result), highlight=False, markup=False, soft_wrap=True)
    if result.unfinished_kept:
        err_console.print(
            f"note: kept {result.unfinished_kept:,} queued or running run(s) older than "
            f"{when(result.older_than)}; they may be stuck "
            "(see etl-meta runs list --status running)",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
