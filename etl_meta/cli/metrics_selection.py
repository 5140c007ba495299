"""The filter options ``etl-meta metrics query`` and ``plot`` share, and what they select in the
analytics API's terms (:class:`Selection`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Annotated, Any

import typer

from etl_meta.cli._common import parse_key_values, parse_since, when
from etl_meta.cli.metrics_figure import GROUPS

#: ``--every`` in words, for titles.
EVERY_WORDS = {"1h": "hour", "1d": "day", "1w": "week"}


class AttemptsChoice(StrEnum):
    final = "final"
    all = "all"


class EveryChoice(StrEnum):
    hour = "1h"
    day = "1d"
    week = "1w"
    none = "none"


# --- options every command shares ------------------------------------------------------------

JobOption = Annotated[
    list[str] | None, typer.Option("--job", help="Only points of this job (repeatable).")
]
ComponentOption = Annotated[
    list[str] | None,
    typer.Option("--component", help="Only points of this component (repeatable)."),
]
NameOption = Annotated[
    list[str] | None, typer.Option("--name", help="Only this metric name (repeatable).")
]
RunOption = Annotated[
    str | None,
    typer.Option("--run", help="Only points of this run: the store's id or the orchestrator's."),
]
SinceOption = Annotated[
    str | None,
    typer.Option(help="Points recorded at or after: 7d, 12h, 30m ago, or an ISO time (UTC)."),
]
UntilOption = Annotated[
    str | None, typer.Option(help="Points recorded before: an ISO time (UTC), or 7d, 12h ago.")
]
TagOption = Annotated[
    list[str] | None,
    typer.Option("--tag", help="Only jobs tagged KEY=VALUE (repeatable; all must match)."),
]
FilterOption = Annotated[
    str | None,
    typer.Option(
        "--filter",
        help="A filter expression, e.g. \"value > 0 and tag.env = 'prod'\" (docs/filters.md).",
    ),
]
AttemptsOption = Annotated[
    AttemptsChoice,
    typer.Option(
        "--attempts", help="final: only each step's last attempt (retries not counted twice)."
    ),
]
AggOption = Annotated[
    str | None,
    typer.Option(
        "--agg",
        help="Aggregate per time bucket: comma-separated from count, mean, min, max, last, "
        "p50, p90, p95, p99.",
    ),
]
EveryOption = Annotated[
    EveryChoice | None,
    typer.Option(
        "--every",
        help="Bucket for --agg: 1h, 1d (default), 1w (UTC, ISO weeks), or none for the window.",
    ),
]
ByOption = Annotated[
    str | None,
    typer.Option(
        "--by", help="Group --agg by: comma-separated from job, component, name (default all)."
    ),
]


@dataclass(frozen=True)
class Selection:
    """What the filter options ask for, in the analytics API's terms."""

    filters: dict[str, Any]
    aggregates: tuple[str, ...] = ()
    every: str | None = "1d"
    by: tuple[str, ...] = GROUPS
    described: list[str] = field(default_factory=list)

    @property
    def aggregated(self) -> bool:
        return bool(self.aggregates)


def _split(text: str | None) -> tuple[str, ...]:
    return tuple(part.strip() for part in (text or "").split(",") if part.strip())


def selection_of(
    *,
    job: list[str] | None,
    component: list[str] | None,
    name: list[str] | None,
    run: str | None,
    since: str | None,
    until: str | None,
    tag: list[str] | None,
    filter_: str | None,
    attempts: AttemptsChoice,
    agg: str | None,
    every: EveryChoice | None,
    by: str | None,
) -> Selection:
    aggregates = _split(agg)
    if agg is not None and not aggregates:
        raise typer.BadParameter("name at least one aggregate, e.g. mean", param_hint="--agg")
    if not aggregates and (every is not None or by is not None):
        raise typer.BadParameter(
            "--every and --by aggregate points: give --agg too (e.g. --agg mean)",
            param_hint="--every/--by",
        )
    groups = _split(by) if by is not None else GROUPS
    bucket = None if every is EveryChoice.none else (every or EveryChoice.day).value
    tags = parse_key_values(tag, "--tag")
    filters: dict[str, Any] = {
        "job": job or None,
        "component": component or None,
        "name": name or None,
        "run": run,
        "since": parse_since(since) if since else None,
        "until": parse_since(until) if until else None,
        "tags": tags or None,
        "attempts": attempts.value,
        "filter": filter_ or None,
    }
    described = []
    if name:
        described.append(", ".join(name))
    if job:
        described.append("job " + ", ".join(job))
    if component:
        described.append("component " + ", ".join(component))
    if run:
        described.append(f"run {run}")
    if tags:
        described.append(", ".join(f"{k}={v}" for k, v in tags.items()))
    if aggregates:
        per = f" per {EVERY_WORDS[bucket]}" if bucket else ""
        described.append(", ".join(aggregates) + per)
    if filters["since"]:
        described.append("since " + when(filters["since"]))
    if filters["until"]:
        described.append("until " + when(filters["until"]))
    if filter_ and len(filter_) <= 40:
        described.append(filter_)
    return Selection(filters, aggregates, bucket, groups, described)
