"""The only module that touches Dagster APIs not marked public.

``StateBackedDefinitionsLoader`` (definitions from a snapshot taken once per code-location load),
per-step statistics and event records of a run. If Dagster moves them, this is the one file to
change.
"""

from collections.abc import Sequence
from typing import Any

import dagster as dg
from dagster._core.definitions.definitions_load_context import (  # noqa: F401  (re-exported)
    StateBackedDefinitionsLoader,
)


def step_stats(instance: dg.DagsterInstance, run_id: str) -> Sequence[Any]:
    """Per-step stats of a run: status, attempts, and per-attempt start/end markers."""
    return instance.get_run_step_stats(run_id)


def events(instance: dg.DagsterInstance, run_id: str, types: set[dg.DagsterEventType]) -> list[Any]:
    """The run's events of the given types, oldest first (``DagsterEvent`` objects)."""
    connection = instance.get_records_for_run(run_id, of_type=types, ascending=True)
    return [record.event_log_entry.dagster_event for record in connection.records]
