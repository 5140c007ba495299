"""Find a run from what a person pastes: the store's id, a run id, or the start of a run id.

The Dagster UI shows the first 8 characters of a run id (``0f6d3a9b``); ``etl-meta runs show``
accepts any unique prefix of at least :data:`MIN_PREFIX` characters. An exact match (the store's
``resolve``) always wins, so a full id never becomes ambiguous because another one starts with it.
Prefixes of the store's numeric id are not matched: ``4`` means run 4, not runs 4, 40 and 41.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import col

from etl_meta.cli._common import err_console, when
from etl_meta.errors import EtlMetaError, NotFoundError
from etl_meta.models import Execution, ExecutionPublic, Job
from etl_meta.store import MetadataStore

#: Shortest prefix looked up: shorter ones would match most runs and name none of them usefully.
MIN_PREFIX = 4
#: Candidates listed when a prefix is ambiguous (one more is fetched, to say "and more").
MAX_LISTED = 10


@dataclass(frozen=True)
class RunCandidate:
    """One run a prefix matches: enough to tell it apart in a one-line listing."""

    id: int
    job_name: str
    orchestrator: str
    external_run_id: str
    status: str
    started_at: datetime | None


class AmbiguousRunError(EtlMetaError):
    """A run id prefix matches several runs; ``candidates`` lists them (newest first)."""

    def __init__(self, prefix: str, candidates: list[RunCandidate], *, more: bool) -> None:
        self.prefix = prefix
        self.candidates = candidates
        self.more = more
        count = f"more than {len(candidates)}" if more else str(len(candidates))
        super().__init__(f"run id prefix {prefix!r} matches {count} runs; give more characters")


def find_by_prefix(store: MetadataStore, prefix: str, *, limit: int) -> list[RunCandidate]:
    """Runs whose orchestrator run id starts with ``prefix`` (case-sensitive), newest first.

    ``substr`` rather than ``LIKE``: the same case-sensitive comparison on SQLite and
    PostgreSQL, and ``%`` or ``_`` in a pasted id mean themselves.
    """
    query = (
        sa.select(
            col(Execution.id),
            col(Job.name),
            col(Execution.orchestrator),
            col(Execution.external_run_id),
            col(Execution.status),
            col(Execution.started_at),
        )
        .join(Job, col(Job.id) == Execution.job_id)
        .where(sa.func.substr(col(Execution.external_run_id), 1, len(prefix)) == prefix)
        .order_by(col(Execution.id).desc())
        .limit(limit)
    )
    with store.transaction(readonly=True) as session:
        return [
            RunCandidate(row[0], row[1], str(row[2]), row[3], str(row[4]), row[5])
            for row in session.execute(query)
        ]


def resolve_run(store: MetadataStore, ref: str, *, with_steps: bool = False) -> ExecutionPublic:
    """The run ``ref`` names: exactly (store id or run id), else by a unique run id prefix.

    Raises :class:`~etl_meta.errors.NotFoundError` when nothing matches and
    :class:`AmbiguousRunError` when several runs start with ``ref``.
    """
    try:
        return store.executions.resolve(ref, with_steps=with_steps)
    except NotFoundError:
        if len(ref) < MIN_PREFIX or len(ref) > 255:  # 255: the column's length
            raise
    candidates = find_by_prefix(store, ref, limit=MAX_LISTED + 1)
    if not candidates:
        raise NotFoundError("execution", ref)
    if len(candidates) > 1:
        raise AmbiguousRunError(ref, candidates[:MAX_LISTED], more=len(candidates) > MAX_LISTED)
    return store.executions.get(candidates[0].id, with_steps=with_steps)


def print_candidates(exc: AmbiguousRunError) -> None:
    """The runs an ambiguous prefix matches, one per line on stderr (then exit 1)."""
    err_console.print("[red]error:[/red] ", end="", highlight=False)
    err_console.print(str(exc), highlight=False, markup=False)
    for c in exc.candidates:
        err_console.print(
            f"  {c.id}  {c.orchestrator}  {c.external_run_id}  {c.job_name}  {c.status}  "
            f"{when(c.started_at)}".rstrip(),
            highlight=False,
            markup=False,
        )
    if exc.more:
        err_console.print("  …", highlight=False, markup=False)
