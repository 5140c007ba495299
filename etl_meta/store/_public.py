"""Turn ORM rows into the detached ``*Public`` models callers receive."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from pydantic_core import to_jsonable_python

from etl_meta.models import (
    ComponentExecution,
    ComponentPublic,
    Execution,
    ExecutionPublic,
    Job,
    JobPublic,
    StepAttemptPublic,
)


def jsonable(value: Any) -> Any:
    """Plain JSON data (ISO timestamps, enum values) for audit before/after documents."""
    return to_jsonable_python(value)


def job_public(
    job: Job, tags: dict[str, str], components: Sequence[ComponentPublic] | None = None
) -> JobPublic:
    data = job.model_dump()
    data.update(tags=tags, components=list(components) if components is not None else None)
    return JobPublic.model_validate(data)


def attempt_public(attempt: ComponentExecution, component_name: str) -> StepAttemptPublic:
    return StepAttemptPublic.model_validate(
        {**attempt.model_dump(), "component_name": component_name}
    )


def execution_public(
    execution: Execution,
    *,
    job_name: str,
    steps: Sequence[tuple[ComponentExecution, str]] | None = None,
    tags: dict[str, str] | None = None,
) -> ExecutionPublic:
    data = execution.model_dump()
    data["job_name"] = job_name
    data["tags"] = tags or {}
    if steps is not None:
        data["steps"] = [attempt_public(attempt, name) for attempt, name in steps]
    return ExecutionPublic.model_validate(data)


def run_key(execution: Execution) -> str:
    """A run's key in the audit trail: ``<orchestrator>:<run id>``."""
    return f"{execution.orchestrator}:{execution.external_run_id}"
