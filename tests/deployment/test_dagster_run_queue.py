"""Issue 20 (item 4) on Dagster: ``dagster dev`` (webserver, daemon, code server) whose
``QueuedRunCoordinator`` runs at most 2 runs at once and at most 1 run of each stored job at once
(a tag concurrency limit on ``etl_meta/job``), with the stored jobs' own executors: the
multiprocess executor for the parallel job (``strategy_type: parallel``, a process per step
attempt), the in-process executor for the others; a PostgreSQL store.

Six runs are launched at once through GraphQL (``launchRun``): the parallel job (whose ``flaky``
step fails its first attempt by design) twice, the sequential job three times, the job designed
to fail once. Once they ended:

* every run ends as designed and every step took the attempts it was designed to;
* Dagster's own run records show the limits held: from the moment the daemon took a run off the
  queue until it ended, never more than 2 runs, nor 2 runs of one job, overlap; and the queue
  did hold runs back (2 runs did run at once, and runs waited in the queue);
* every step attempt of the parallel job ran in a process of its own (the pid on its Dagster
  events), every step of the other jobs in the run worker;
* every run, step attempt and metric Dagster recorded is in the store exactly once, as Dagster
  recorded it.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import pytest

from tests.deployment._dagster import DagsterDeployment
from tests.deployment._pipeline import FAILING_JOB
from tests.deployment._run_queue import QueuedRun, most_at_once, queue_yaml, queued_runs
from tests.deployment._scenario import (
    FIGURES,
    RunOutcome,
    attempts_not_as_designed,
    not_ended_as_designed,
    not_recorded_exactly_once,
    recording_lag,
    wait_until_recorded,
)
from tests.deployment._store import DeploymentStore

pytestmark = pytest.mark.distributed

MAX_CONCURRENT_RUNS = 2
RUNS_PER_JOB = 1
#: The stored job whose strategy is ``parallel`` (the multiprocess executor).
PARALLEL_JOB = "outage_parallel"
#: Launched at once: three times the limit, and each job but one several times. The parallel
#: job (four step processes) is the longest: its runs, one at a time, set the test's pace.
RUNS = (
    PARALLEL_JOB,
    "outage_sequential",
    FAILING_JOB,
    "outage_sequential",
    PARALLEL_JOB,
    "outage_sequential",
)
#: Two at a time, each some seconds of process start-up: about a minute on two cores.
RUNS_END_WITHIN_SECONDS = 240.0
#: The run-status sensors record within seconds of each status change.
RECORDED_WITHIN_SECONDS = 60.0


@dataclass
class QueuedRuns:
    outcomes: list[RunOutcome]
    queue: dict[str, QueuedRun]
    ran_for: float  # seconds from the first launch to the last run's end
    created_as: dict[str, str]  # each run's status when the store first recorded it


@pytest.fixture(scope="module")
def dagster(distributed_store: DeploymentStore) -> Iterator[DagsterDeployment]:
    deployment = DagsterDeployment(
        distributed_store,
        distributed_store.root,
        dagster_yaml=queue_yaml(MAX_CONCURRENT_RUNS, RUNS_PER_JOB),
    )
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def runs(dagster: DagsterDeployment, distributed_store: DeploymentStore) -> QueuedRuns:
    began = time.time()
    launched = {dagster.launch(job): job for job in RUNS}
    dagster.wait_until_ended(list(launched), timeout=RUNS_END_WITHIN_SECONDS)
    ran_for = time.time() - began
    outcomes = [run.outcome() for run in dagster.facts(launched).values()]
    queue = queued_runs(dagster.dagster_home, launched)
    deadline = time.time() + RECORDED_WITHIN_SECONDS
    wait_until_recorded(distributed_store, "dagster", outcomes, deadline=deadline)
    waits = [q.waited for q in queue.values() if q.waited is not None]
    FIGURES.append(
        f"dagster/run queue: {len(outcomes)} runs in {ran_for:.1f}s (first launch to last end), "
        f"at most {_most_at_once(queue.values())} at once, longest wait in the queue "
        f"{max(waits, default=0.0):.1f}s; {recording_lag(outcomes)}"
    )
    created_as = distributed_store.created_as("dagster", list(launched))
    return QueuedRuns(outcomes=outcomes, queue=queue, ran_for=ran_for, created_as=created_as)


def _most_at_once(runs: Iterable[QueuedRun]) -> int:
    """Most runs holding a slot at once (from leaving the queue to their end)."""
    return most_at_once(
        (run.dequeued_at, run.ended_at)
        for run in runs
        if run.dequeued_at is not None and run.ended_at is not None
    )


def test_every_run_ends_as_designed(runs: QueuedRuns) -> None:
    wrong = not_ended_as_designed(runs.outcomes)
    assert not wrong, "\n".join(wrong)


def test_every_step_takes_the_attempts_it_was_designed_to(runs: QueuedRuns) -> None:
    wrong = attempts_not_as_designed(runs.outcomes)
    assert not wrong, "\n".join(wrong)


def test_every_run_went_through_the_queue(runs: QueuedRuns) -> None:
    skipped = [q for q in runs.queue.values() if q.enqueued_at is None or q.dequeued_at is None]
    assert not skipped, skipped


def test_never_more_runs_at_once_than_the_limits_allow(runs: QueuedRuns) -> None:
    assert _most_at_once(runs.queue.values()) <= MAX_CONCURRENT_RUNS, runs.queue
    for job in set(RUNS):
        of_job = [q for q in runs.queue.values() if q.job == job]
        assert _most_at_once(of_job) <= RUNS_PER_JOB, (job, of_job)


def test_the_queue_held_runs_back(runs: QueuedRuns) -> None:
    """The limits were reached: otherwise the test above would prove nothing."""
    assert _most_at_once(runs.queue.values()) == MAX_CONCURRENT_RUNS, runs.queue
    # The last runs could not leave the queue before earlier ones ended.
    waited = [q for q in runs.queue.values() if (q.waited or 0.0) > 1.0]
    assert len(waited) >= len(RUNS) - MAX_CONCURRENT_RUNS, runs.queue


def test_the_parallel_job_runs_each_step_attempt_in_a_process_of_its_own(
    runs: QueuedRuns,
) -> None:
    for queued in runs.queue.values():
        pids = queued.step_pids
        if queued.job == PARALLEL_JOB:
            # 4 attempts (flaky takes 2), 4 processes, none of them the run worker.
            assert len(pids) == 4 and len(set(pids.values())) == 4, queued
            assert queued.run_worker_pid not in pids.values(), queued
        else:
            assert set(pids.values()) == {queued.run_worker_pid}, queued


def test_every_run_attempt_and_metric_dagster_recorded_is_in_the_store_exactly_once(
    runs: QueuedRuns,
) -> None:
    problems = not_recorded_exactly_once(runs.outcomes)
    assert not problems, "\n".join(problems)


def test_runs_waiting_in_the_queue_are_in_the_store_as_queued_before_they_start(
    runs: QueuedRuns,
) -> None:
    """``etl_meta_on_run_queued``: a run waiting for a slot shows in ``etl-meta runs list``.

    Not every waiting run is recorded as queued: Dagster's run-status sensors take at most 5
    runs per tick, so in a burst some start before their turn, and are first recorded running.
    Four of these six runs wait many seconds for a slot.
    """
    waits = {q.run_id: q.waited for q in runs.queue.values()}
    seen = {run_id: (runs.created_as.get(run_id), waits[run_id]) for run_id in waits}
    queued = [run_id for run_id, (status, _) in seen.items() if status == "queued"]
    assert queued, f"no run was recorded while queued: {seen}"
    assert all((waits[run_id] or 0.0) > 0 for run_id in queued), seen
