"""Issue 20 (item 4) on Dagster with dagster-celery: ``dagster dev`` (webserver, daemon, code
server) on a code location that runs the stored parallel job on dagster-celery's executor, two
``dagster-celery worker`` processes on a Redis broker (results in Redis too), and a PostgreSQL
store. The sequential jobs keep the in-process executor, in their run workers.

Six runs are launched at once through GraphQL (``launchRun``): the parallel job (whose ``flaky``
step fails its first attempt by design) three times, the sequential job twice, the job designed
to fail once. Once they ended:

* every run ends as designed and every step took the attempts it was designed to;
* every step attempt of the parallel job ran on a Celery worker (dagster-celery's own report on
  the run's event log), and no step of the other jobs did; both workers ran step attempts;
* every run, step attempt and metric Dagster recorded is in the store exactly once, as Dagster
  recorded it.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.deployment._dagster_celery import WORKERS, DagsterCeleryDeployment
from tests.deployment._pipeline import FAILING_JOB
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

#: The stored job whose strategy is ``parallel``: the one the location runs on Celery.
PARALLEL_JOB = "outage_parallel"
RUNS = (
    PARALLEL_JOB,
    "outage_sequential",
    PARALLEL_JOB,
    FAILING_JOB,
    "outage_sequential",
    PARALLEL_JOB,
)
RUNS_END_WITHIN_SECONDS = 240.0
#: The run-status sensors record within seconds of each status change.
RECORDED_WITHIN_SECONDS = 60.0


@dataclass
class CeleryRuns:
    outcomes: list[RunOutcome]
    #: ``{run id: {(step, attempt): Celery worker}}`` as dagster-celery reported it.
    workers: dict[str, dict[tuple[str, int], str]]
    ran_for: float  # seconds from the first launch to the last run's end


@pytest.fixture(scope="module")
def dagster(distributed_store: DeploymentStore) -> Iterator[DagsterCeleryDeployment]:
    deployment = DagsterCeleryDeployment(distributed_store, distributed_store.root)
    deployment.start()
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def runs(dagster: DagsterCeleryDeployment, distributed_store: DeploymentStore) -> CeleryRuns:
    began = time.time()
    launched = {dagster.launch(job): job for job in RUNS}
    dagster.wait_until_ended(list(launched), timeout=RUNS_END_WITHIN_SECONDS)
    ran_for = time.time() - began
    outcomes = [run.outcome() for run in dagster.facts(launched).values()]
    workers = dagster.celery_workers(list(launched))
    deadline = time.time() + RECORDED_WITHIN_SECONDS
    wait_until_recorded(distributed_store, "dagster", outcomes, deadline=deadline)
    per_worker = Counter(w.partition("@")[0] for ran in workers.values() for w in ran.values())
    FIGURES.append(
        f"dagster/celery: {len(outcomes)} runs in {ran_for:.1f}s (first launch to last end); "
        f"step attempts per Celery worker {dict(per_worker)}; {recording_lag(outcomes)}"
    )
    return CeleryRuns(outcomes=outcomes, workers=workers, ran_for=ran_for)


def test_every_run_ends_as_designed(runs: CeleryRuns) -> None:
    wrong = not_ended_as_designed(runs.outcomes)
    assert not wrong, "\n".join(wrong)


def test_every_step_takes_the_attempts_it_was_designed_to(runs: CeleryRuns) -> None:
    wrong = attempts_not_as_designed(runs.outcomes)
    assert not wrong, "\n".join(wrong)


def test_every_step_attempt_of_the_parallel_job_ran_on_a_celery_worker(runs: CeleryRuns) -> None:
    for run in runs.outcomes:
        ran = runs.workers[run.run_id]
        if run.job != PARALLEL_JOB:
            assert not ran, (run.explain(), ran)  # in-process, in the run worker
            continue
        assert set(ran) == set(run.expected_attempts()), (run.explain(), ran)
        names = {worker.partition("@")[0] for worker in ran.values()}
        assert names <= set(WORKERS), (run.explain(), ran)


def test_every_run_attempt_and_metric_dagster_recorded_is_in_the_store_exactly_once(
    runs: CeleryRuns,
) -> None:
    problems = not_recorded_exactly_once(runs.outcomes)
    assert not problems, "\n".join(problems)


def test_both_celery_workers_ran_step_attempts(runs: CeleryRuns) -> None:
    names = Counter(w.partition("@")[0] for ran in runs.workers.values() for w in ran.values())
    assert set(names) == set(WORKERS), f"step attempts per Celery worker: {dict(names)}"
