"""Issue 20 (item 4) on Airflow's CeleryExecutor: api-server, scheduler, dag-processor and two
Celery workers (separate processes, each with a hostname of its own) on a Redis broker, Celery
results in the deployment's PostgreSQL metadata database, and a PostgreSQL store.

Six runs of the exported DAGs are triggered back to back through REST API v2 (the parallel DAG,
whose ``flaky`` task fails its first try by design, three times; the sequential DAG twice; the
DAG designed to fail once). Once they ended:

* every run ends as designed and every task took the tries it was designed to;
* every DAG run and every task try Airflow recorded (REST API v2: DAG runs, task instances and
  their tries) is in the store exactly once, under Airflow's try number and with the state
  Airflow recorded for that try; every metric exactly once. The export leaves out the reconcile
  DAG: this is the listener's own record, made in the workers' task processes and the scheduler;
* both workers ran task tries (the ``hostname`` Airflow recorded on each try).
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from tests.backends import PostgresServer
from tests.deployment._celery import WORKERS, CeleryAirflowDeployment
from tests.deployment._pipeline import DESIGNED_FAILURE, FAILING_JOB, JOBS
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

#: Triggered back to back: more runs than the workers have slots, so tasks queue in the broker.
RUNS = (
    "outage_parallel",
    "outage_sequential",
    FAILING_JOB,
    "outage_parallel",
    "outage_sequential",
    "outage_parallel",
)
#: The six runs are 17 task tries; on two cores they end within half a minute or so.
RUNS_END_WITHIN_SECONDS = 240.0
#: Task tries are recorded by their own process before it exits and DAG runs by the scheduler's
#: queue within seconds, so anything still missing this long after the runs ended is lost.
RECORDED_WITHIN_SECONDS = 60.0


@dataclass
class CeleryRuns:
    """The triggered runs as Airflow recorded them, next to what the store holds."""

    outcomes: list[RunOutcome]
    #: ``{(run id, task, try number): hostname}`` as Airflow recorded it on each try.
    hostnames: dict[tuple[str, str, int], str | None]
    ran_for: float  # seconds from the first trigger to the last run's end


@pytest.fixture(scope="module")
def airflow(
    distributed_store: DeploymentStore, postgres_server: PostgresServer
) -> Iterator[CeleryAirflowDeployment]:
    deployment = CeleryAirflowDeployment(distributed_store, postgres_server, distributed_store.root)
    deployment.start(tuple(JOBS))
    try:
        yield deployment
    finally:
        deployment.stop()


@pytest.fixture(scope="module")
def runs(airflow: CeleryAirflowDeployment, distributed_store: DeploymentStore) -> CeleryRuns:
    began = time.time()
    launched = {airflow.trigger(dag): dag for dag in RUNS}
    airflow.wait_until_ended(launched, timeout=RUNS_END_WITHIN_SECONDS)
    ran_for = time.time() - began
    outcomes = [airflow.outcome(dag, run_id, per_try=True) for run_id, dag in launched.items()]
    hostnames = {
        (run_id, task, attempt["try_number"]): attempt.get("hostname")
        for run_id, dag in launched.items()
        for task, listed in airflow.tries(dag, run_id).items()
        for attempt in listed
    }
    deadline = time.time() + RECORDED_WITHIN_SECONDS
    wait_until_recorded(distributed_store, "airflow", outcomes, deadline=deadline)
    per_worker = Counter(hostnames.values())
    FIGURES.append(
        f"airflow/celery: {len(outcomes)} runs, {len(hostnames)} task tries in {ran_for:.1f}s "
        f"(first trigger to last end); tries per worker {dict(per_worker)}; "
        f"{recording_lag(outcomes)}"
    )
    return CeleryRuns(outcomes=outcomes, hostnames=hostnames, ran_for=ran_for)


def test_every_run_ends_as_designed(runs: CeleryRuns) -> None:
    wrong = not_ended_as_designed(runs.outcomes)
    assert not wrong, "\n".join(wrong)


def test_every_task_takes_the_tries_it_was_designed_to(runs: CeleryRuns) -> None:
    """A task delivered twice by the broker, or lost by a worker, would show up here."""
    wrong = attempts_not_as_designed(runs.outcomes)
    assert not wrong, "\n".join(wrong)


def test_every_run_try_and_metric_airflow_recorded_is_in_the_store_exactly_once(
    runs: CeleryRuns,
) -> None:
    problems = not_recorded_exactly_once(runs.outcomes)
    assert not problems, "\n".join(problems)


def test_the_designed_failure_is_the_stored_error(runs: CeleryRuns) -> None:
    for run in runs.outcomes:
        if run.job == FAILING_JOB:
            assert run.record is not None, run.explain()
            assert DESIGNED_FAILURE in (run.record.error or ""), run.record.error


def test_both_celery_workers_ran_task_tries(runs: CeleryRuns) -> None:
    per_worker = Counter(runs.hostnames.values())
    assert set(per_worker) == set(WORKERS), (
        f"tries per hostname Airflow recorded: {dict(per_worker)}; expected {WORKERS} only"
    )
