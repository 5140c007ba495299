"""Valid objects with unique names, so tests say only what they care about."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from etl_meta import MetadataStore
from etl_meta.models import Execution, ExecutionPublic, JobPublic

_counter = itertools.count(1)
T0 = datetime(2026, 1, 1, tzinfo=UTC)


def unique(prefix: str) -> str:
    return f"{prefix}_{next(_counter)}"


def sample_points(offset: int, at: datetime) -> list[tuple[Any, ...]]:
    """Four points of an ``extract -> load`` run, recorded out of name order (so categories
    must be sorted) over two days, with extract's step 0 retried (attempt 2); ``offset`` tells
    runs' values apart."""
    return [
        ("load", "zeta", 1.5 + offset, 0, 1, at),
        ("extract", "rows", 10.0 * offset, 0, 1, at + timedelta(minutes=1)),
        ("extract", "rows", 11.0 * offset, 0, 2, at + timedelta(minutes=2)),
        ("load", "alpha", -2.0, 1, 1, at + timedelta(hours=25)),
    ]


class Factory:
    def __init__(self, store: MetadataStore) -> None:
        self.store = store

    def job(self, *, components: list[dict[str, Any]] | None = None, **fields: Any) -> JobPublic:
        """A job; ``components`` default to a two-step chain ``extract -> load``."""
        if components is None:
            components = [
                {
                    "name": "extract",
                    "component_type": "read_csv",
                    "configuration": {"path": "in.csv"},
                },
                {
                    "name": "load",
                    "component_type": "write_table",
                    "configuration": {"table": "out", "connection_url": "sqlite:///out.db"},
                    "depends_on": ["extract"],
                },
            ]
        data = {"name": unique("job"), "num_of_retries": 1, **fields, "components": components}
        return self.store.jobs.create(data)

    def dataclass(self, **fields: Any):
        data = {"name": unique("dc"), "schema_definition": {"columns": {"id": "int64"}}, **fields}
        return self.store.dataclasses.create(data)

    def execution(
        self, job: str, *, run_id: str | None = None, status: str = "running", **fields: Any
    ) -> ExecutionPublic:
        data = {
            "job": job,
            "orchestrator": "dagster",
            "external_run_id": run_id or unique("run"),
            "status": status,
            "started_at": T0,
            **fields,
        }
        return self.store.executions.upsert(data)

    def finished_run(self, job: str, *, seconds: float = 10, **fields: Any) -> ExecutionPublic:
        return self.execution(
            job, status="success", ended_at=T0 + timedelta(seconds=seconds), **fields
        )


def count_rows(store: MetadataStore, model: Any, column: Any, ids: Any) -> int:
    """Rows of ``model`` (a table class or selectable) whose ``column`` is in ``ids``."""
    with store.transaction(readonly=True) as session:
        query = sa.select(sa.func.count()).select_from(model).where(column.in_(ids))
        return session.scalar(query) or 0


def run_ids(store: MetadataStore) -> set[int]:
    """The ids of every stored run."""
    with store.transaction(readonly=True) as session:
        return set(session.scalars(sa.select(Execution.id)))
