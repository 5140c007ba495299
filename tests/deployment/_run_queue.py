"""Dagster's run queue and executors as Dagster's own run storage records them.

:func:`queue_yaml` is the ``dagster.yaml`` of a deployment whose ``QueuedRunCoordinator`` limits
concurrent runs (``max_concurrent_runs`` and a tag concurrency limit: one run at a time per
stored job, on the ``etl_meta/job`` tag every etl-meta run carries). :func:`queued_runs` reads,
for each run, when the daemon took it off the queue and when it ended (the interval during which
it held a slot), and which process ran each step attempt (the ``pid`` on Dagster's events):
under the multiprocess executor every step attempt has a process of its own, under the
in-process executor every step runs in the run worker.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

import dagster as dg
import yaml

from tests.deployment._dagster import DAGSTER_YAML

#: The tag every run of a stored job carries (dagster_defs.jobs.TAG_JOB).
JOB_TAG = "etl_meta/job"

_STEP_BEGINS = {dg.DagsterEventType.STEP_START, dg.DagsterEventType.STEP_RESTARTED}
#: The daemon reports RUN_STARTING as it takes a run off the queue to launch it (Dagster 1.13
#: reports no RUN_DEQUEUED).
_QUEUE_EVENTS = {
    dg.DagsterEventType.RUN_ENQUEUED,
    dg.DagsterEventType.RUN_STARTING,
    dg.DagsterEventType.RUN_START,
}


def queue_yaml(max_concurrent_runs: int, runs_per_job: int) -> str:
    """The deployment tests' ``dagster.yaml`` with these run queue limits."""
    config = yaml.safe_load(DAGSTER_YAML)
    config["run_coordinator"]["config"].update(
        max_concurrent_runs=max_concurrent_runs,
        tag_concurrency_limits=[
            {
                "key": JOB_TAG,
                "value": {"applyLimitPerUniqueValue": True},
                "limit": runs_per_job,
            }
        ],
    )
    return yaml.safe_dump(config, sort_keys=False)


@dataclass
class QueuedRun:
    """One run's passage through the queue, and the processes its steps ran in."""

    run_id: str
    job: str
    enqueued_at: float | None
    dequeued_at: float | None  # when the daemon took it off the queue (RUN_STARTING): its slot
    ended_at: float | None
    run_worker_pid: int | None  # the process of RUN_START
    #: ``{(step, attempt): pid}`` of each STEP_START / STEP_RESTARTED event.
    step_pids: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def waited(self) -> float | None:
        """Seconds the run spent in the queue."""
        if self.enqueued_at is None or self.dequeued_at is None:
            return None
        return self.dequeued_at - self.enqueued_at


def queued_runs(dagster_home: Path, run_ids: Iterable[str]) -> dict[str, QueuedRun]:
    """What Dagster's run storage under ``dagster_home`` says about each run's queueing."""
    instance = dg.DagsterInstance.from_config(str(dagster_home))
    try:
        return {run_id: _queued_run(instance, run_id) for run_id in run_ids}
    finally:
        instance.dispose()


def _queued_run(instance: dg.DagsterInstance, run_id: str) -> QueuedRun:
    record = instance.get_run_record_by_id(run_id)
    assert record is not None, f"Dagster has no run {run_id}"
    found = QueuedRun(
        run_id=run_id,
        job=record.dagster_run.job_name,
        enqueued_at=None,
        dequeued_at=None,
        ended_at=record.end_time,
        run_worker_pid=None,
    )
    entries = instance.get_records_for_run(
        run_id, of_type=_QUEUE_EVENTS | _STEP_BEGINS, ascending=True
    ).records
    attempts: dict[str, int] = {}
    for entry in (item.event_log_entry for item in entries):
        event = entry.dagster_event
        assert event is not None
        if event.event_type == dg.DagsterEventType.RUN_ENQUEUED:
            found.enqueued_at = entry.timestamp
        elif event.event_type == dg.DagsterEventType.RUN_STARTING:
            found.dequeued_at = entry.timestamp
        elif event.event_type == dg.DagsterEventType.RUN_START:
            found.run_worker_pid = event.pid
        elif event.step_key is not None:
            attempts[event.step_key] = attempts.get(event.step_key, 0) + 1
            found.step_pids[(event.step_key, attempts[event.step_key])] = event.pid
    return found


def most_at_once(intervals: Iterable[tuple[float, float]]) -> int:
    """The largest number of ``(start, end)`` intervals that overlap at one moment.

    An interval ending at the very moment another starts does not overlap it: the queue frees a
    slot when a run ends, and only then hands it to the next.
    """
    pairs = list(intervals)
    # At equal times ends (-1) sort before starts (+1).
    moments = sorted([(start, 1) for start, _ in pairs] + [(end, -1) for _, end in pairs])
    current = most = 0
    for _, change in moments:
        current += change
        most = max(most, current)
    return most
