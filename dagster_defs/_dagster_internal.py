"""The only module that touches Dagster APIs not marked public.

``StateBackedDefinitionsLoader`` (definitions from a snapshot taken once per code-location load),
per-step statistics and event records of a run, and the deprecated ``ExpectationResult`` that
carries a failing step's metrics hand-off. If Dagster moves them, this is the one file to
change.
"""

import warnings
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


def failure_note(label: str, description: str, metadata: dict[str, Any]) -> Any:
    """An event an op can log, with free-form metadata, before it fails.

    A failed or retried step emits no output, and Dagster keeps a ``Failure``'s metadata on the
    final failure only, never on a retry. ``ExpectationResult`` (deprecated for assets, kept
    through 1.x) is the one op event with free-form metadata; read it back from a
    ``STEP_EXPECTATION_RESULT`` event with :func:`failure_note_metadata`.
    """
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return dg.ExpectationResult(
            success=True, label=label, description=description, metadata=metadata
        )


def failure_note_metadata(event_specific_data: Any) -> Any:
    """The metadata of a :func:`failure_note` from its event's data."""
    return event_specific_data.expectation_result.metadata
