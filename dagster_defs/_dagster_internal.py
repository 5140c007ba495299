"""The only module that touches Dagster APIs not marked public.

``StateBackedDefinitionsLoader`` (definitions from a snapshot taken once per code-location load),
the event records of a run and the per-step statistics Dagster builds from them, and the
deprecated ``ExpectationResult`` that carries a failing step's metrics hand-off. If Dagster
moves them, this is the one file to change.
"""

import warnings
from collections.abc import Collection, Sequence
from typing import Any

import dagster as dg
from dagster._core.definitions.definitions_load_context import (  # noqa: F401  (re-exported)
    StateBackedDefinitionsLoader,
)
from dagster._core.execution.stats import build_run_step_stats_from_events

#: The events per-step stats are built from (Dagster's ``STEP_STATS_EVENT_TYPES`` less the
#: marker, materialization and expectation events, which feed only stats fields we never read).
STEP_STATS_EVENT_TYPES = frozenset(
    {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_RESTARTED,
        dg.DagsterEventType.STEP_UP_FOR_RETRY,
        dg.DagsterEventType.STEP_FAILURE,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_SKIPPED,
    }
)


def step_stats_from(run_id: str, entries: Sequence[Any]) -> Sequence[Any]:
    """Per-step stats of a run (status, attempts, per-attempt start/end) from its event log
    entries of :data:`STEP_STATS_EVENT_TYPES` (others are ignored), oldest first: what
    ``instance.get_run_step_stats`` returns, built the same way, without reading the run's
    events a second time.
    """
    return build_run_step_stats_from_events(run_id, entries)


def event_entries(
    instance: dg.DagsterInstance, run_id: str, types: Collection[dg.DagsterEventType]
) -> list[Any]:
    """The run's event log entries of the given types, oldest first (``EventLogEntry``)."""
    connection = instance.get_records_for_run(run_id, of_type=set(types), ascending=True)
    return [record.event_log_entry for record in connection.records]


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
