"""Enumerations stored as strings (``VARCHAR`` + named ``CHECK``), never native enums."""

from __future__ import annotations

from enum import StrEnum


class StrategyType(StrEnum):
    """How a job's steps execute.

    ``sequential`` runs one step at a time in one process (Dagster's in-process executor, an
    Airflow DAG with ``max_active_tasks=1``); ``parallel`` runs independent steps concurrently in
    separate processes, up to the job's ``max_concurrency`` (Dagster's multiprocess executor).
    """

    SEQUENTIAL = "sequential"
    PARALLEL = "parallel"


class ComponentStatus(StrEnum):
    """Whether a component takes part in its job's runs."""

    ACTIVE = "active"
    DISABLED = "disabled"
    ARCHIVED = "archived"


class Orchestrator(StrEnum):
    """Who ran an execution. ``manual`` is anything recorded through the API or CLI directly."""

    DAGSTER = "dagster"
    AIRFLOW = "airflow"
    MANUAL = "manual"


class ExecutionStatus(StrEnum):
    """Status of one run of a job. Only moves forward: queued → running → a terminal status."""

    QUEUED = "queued"
    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def rank(self) -> int:
        """Progress order: a write with a lower rank than the stored status is ignored."""
        return _RUN_RANK[self]

    @property
    def is_terminal(self) -> bool:
        return self.rank == 2


_RUN_RANK = {
    ExecutionStatus.QUEUED: 0,
    ExecutionStatus.RUNNING: 1,
    ExecutionStatus.SUCCESS: 2,
    ExecutionStatus.FAILED: 2,
    ExecutionStatus.CANCELED: 2,
}


class StepStatus(StrEnum):
    """Status of one attempt of one step. Only moves forward: running → a terminal status."""

    RUNNING = "running"
    SUCCESS = "success"
    FAILED = "failed"
    SKIPPED = "skipped"
    CANCELED = "canceled"

    @property
    def rank(self) -> int:
        return 1 if self is StepStatus.RUNNING else 2

    @property
    def is_terminal(self) -> bool:
        return self.rank == 2


class RunRequestStatus(StrEnum):
    """A run asked for through the store: pending → launched → a terminal status."""

    PENDING = "pending"
    LAUNCHED = "launched"
    SUCCESS = "success"
    FAILED = "failed"
    CANCELED = "canceled"

    @property
    def rank(self) -> int:
        return {"pending": 0, "launched": 1}.get(self.value, 2)

    @property
    def is_terminal(self) -> bool:
        return self.rank == 2


class DataclassRole(StrEnum):
    """Whether a component reads (``input``) or writes (``output``) a dataclass."""

    INPUT = "input"
    OUTPUT = "output"
