"""Issue 16 on a real Airflow 3.3 deployment (scheduler, dag-processor, api-server, triggerer,
LocalExecutor, PostgreSQL metadata database): the store can never hurt a pipeline.

The DAGs come from ``etl-meta airflow export``. For each way the store goes away (PostgreSQL:
refusing connections, hanging on locked tables; SQLite: locked by another process) for 30 s,
runs are triggered through REST API v2 as the outage begins and halfway through it, while a
thread reads the scheduler's heartbeat every second. Then:

* no run fails because of the store (each succeeds, except the DAG designed to fail), and no
  task try fails because of it (each task takes the tries it was designed to);
* the scheduler's heartbeat is never older than 5 s during the outage;
* once the store is back, every run, try and metric is recorded exactly once within 120 s (after
  recovery, or after the run ended if later). The maintenance DAG ``etl_meta_reconcile``, when
  the export wrote one, is triggered after recovery and every 30 s while the test waits: its own
  schedule ("every few minutes") would not fit the test's time;
* the store errors logged while it was away name the cause, and neither the store's password nor
  a component's secret appears in any log.

And a task process killed (kill -9) mid-try ends failed in Airflow and in the store.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.backends import PostgresServer
from tests.deployment._airflow import RECONCILE_DAG, AirflowDeployment, HeartbeatWatch
from tests.deployment._dagster import pause_until
from tests.deployment._harness import command_line
from tests.deployment._outages import (
    OUTAGE_SECONDS,
    OUTAGES,
    password_leaks,
    store_outage,
)
from tests.deployment._pipeline import (
    AT_OUTAGE_START,
    JOBS,
    KILLED_JOB,
    KILLED_STEP,
    MID_OUTAGE,
    SECRET,
)
from tests.deployment._scenario import (
    FIGURES,
    RECORDED_WITHIN_SECONDS,
    RUNS_END_WITHIN_SECONDS,
    OutageScenario,
    cause_problems,
    designed_failure_problems,
    recording_problems,
    report,
    summarize,
    wait_until_recorded,
)
from tests.deployment._store import DeploymentStore

pytestmark = pytest.mark.deployment

#: Issue 16: the scheduler's heartbeat is never older than this during an outage.
MAX_HEARTBEAT_AGE_SECONDS = 5.0
#: How often the test starts the maintenance DAG while it waits for the store to catch up.
RECONCILE_EVERY_SECONDS = 30.0


@pytest.fixture(scope="module")
def airflow(
    airflow_store: DeploymentStore, postgres_server: PostgresServer | None
) -> Iterator[AirflowDeployment]:
    """One Airflow deployment per store backend, shared by every scenario of this module."""
    if postgres_server is None:
        pytest.skip("Airflow's metadata database needs PostgreSQL: set ETL_META_TEST_POSTGRES_URL")
    deployment = AirflowDeployment(airflow_store, postgres_server, airflow_store.root)
    deployment.start((*JOBS, KILLED_JOB))
    try:
        yield deployment
    finally:
        deployment.stop()


class _Reconciler:
    """Starts the maintenance DAG now and then, when the export wrote one."""

    def __init__(self, airflow: AirflowDeployment) -> None:
        self.airflow = airflow
        self.exists = airflow.dag_exists(RECONCILE_DAG)
        self.last = 0.0
        self.started: list[str] = []

    def __call__(self) -> None:
        if self.exists and time.time() - self.last >= RECONCILE_EVERY_SECONDS:
            self.started.append(self.airflow.trigger(RECONCILE_DAG))
            self.last = time.time()


def _run_outage(
    airflow: AirflowDeployment, store: DeploymentStore, backend: str, kind: str
) -> OutageScenario:
    launched: dict[str, str] = {}
    notes: list[str] = []
    with HeartbeatWatch(airflow) as watch:
        with store_outage(store, kind) as window:
            for dag in AT_OUTAGE_START:
                launched[airflow.trigger(dag, {"outage": kind})] = dag
            pause_until(window.began_at + OUTAGE_SECONDS / 2)
            for dag in MID_OUTAGE:
                launched[airflow.trigger(dag, {"outage": kind})] = dag
            pause_until(window.began_at + OUTAGE_SECONDS)
        time.sleep(2.0)  # the heartbeat read right after recovery still reflects the outage
    try:
        airflow.wait_until_ended(launched, timeout=RUNS_END_WITHIN_SECONDS)
    except AssertionError as exc:  # reported by the tests, run by run
        notes.append(str(exc)[:2000])
    runs = [airflow.outcome(dag, run_id) for run_id, dag in launched.items()]
    for run in runs:
        if run.ended_at is None:  # where it waits: its tasks' states
            notes.append(
                f"{run.explain()} still going; tries: {airflow.tries(run.job, run.run_id)}"
            )
    ended = max((run.ended_at or 0.0 for run in runs), default=0.0)
    reconciler = _Reconciler(airflow)
    if not reconciler.exists:
        notes.append(f"no {RECONCILE_DAG} DAG in the dags folder: nothing reconciles")
    deadline = max(window.ended_at, ended) + RECORDED_WITHIN_SECONDS
    wait_until_recorded(store, "airflow", runs, deadline=deadline, nudge=reconciler)
    if watch.errors:
        notes.append(f"heartbeat reads failed: {watch.errors[:3]}")
    scenario = OutageScenario(
        orchestrator="airflow",
        backend=backend,
        kind=kind,
        window=window,
        runs=runs,
        log_text=airflow.log_text(),
        log_files=airflow.log_files(),
        max_heartbeat_age=watch.max_age,
        notes=notes,
    )
    summarize(scenario)
    return scenario


@pytest.fixture(scope="module")
def outages(
    backend: str, airflow: AirflowDeployment, airflow_store: DeploymentStore
) -> list[OutageScenario]:
    """Every outage of this backend, one after the other, on the same deployment."""
    return [_run_outage(airflow, airflow_store, backend, kind) for kind in OUTAGES[backend]]


def test_no_run_triggered_during_a_store_outage_fails_because_of_the_store(
    outages: list[OutageScenario],
) -> None:
    failures = [report(s, bad) for s in outages if (bad := s.failed_because_of_the_store())]
    assert not failures, "\n".join(failures)


def test_no_task_try_fails_because_of_the_store(outages: list[OutageScenario]) -> None:
    failures = [report(s, bad) for s in outages if (bad := s.attempts_not_as_designed())]
    assert not failures, "\n".join(failures)


def test_the_scheduler_heartbeat_is_never_older_than_5_seconds_during_the_outage(
    outages: list[OutageScenario],
) -> None:
    for scenario in outages:
        age = scenario.max_heartbeat_age
        assert age is not None, report(scenario, ["the heartbeat was never read"])
        assert age <= MAX_HEARTBEAT_AGE_SECONDS, report(
            scenario, [f"the scheduler's heartbeat was {age:.1f}s old"]
        )


def test_every_run_try_and_metric_is_recorded_exactly_once_soon_after_recovery(
    outages: list[OutageScenario],
) -> None:
    failures = recording_problems(outages)
    assert not failures, "\n".join(failures)


def test_every_run_carries_its_conf_and_run_type_as_run_tags_after_recovery(
    outages: list[OutageScenario], airflow_store: DeploymentStore
) -> None:
    """Run tags are recorded like the rest of the run: by the listener, or by reconciliation
    (from the REST API) for what the listener lost to the outage."""
    for scenario in outages:
        tags = airflow_store.run_tags("airflow", [run.run_id for run in scenario.runs])
        wrong = {
            run_id: found
            for run_id, found in tags.items()
            if found != {"conf.outage": scenario.kind, "airflow/run_type": "manual"}
        }
        assert not wrong, report(scenario, [f"run tags: {wrong}"])


def test_the_run_designed_to_fail_fails_with_its_own_error_in_airflow_and_in_the_store(
    outages: list[OutageScenario],
) -> None:
    failures = designed_failure_problems(outages)
    assert not failures, "\n".join(failures)


def test_store_errors_logged_during_the_outage_name_the_cause(
    outages: list[OutageScenario],
) -> None:
    failures = cause_problems(outages)
    assert not failures, "\n".join(failures)


def test_no_password_or_secret_appears_in_any_log(
    outages: list[OutageScenario], airflow_store: DeploymentStore
) -> None:
    for scenario in outages:
        for secret in (airflow_store.password, SECRET):
            leaked = password_leaks(scenario.log_files, secret)
            assert not leaked, f"{scenario.name}: a secret appears in {leaked}"


# -- kill -9 of a task process -------------------------------------------------------------------


@dataclass
class KilledTry:
    run_id: str
    pid: int
    command: str
    airflow_state: str
    try_states: list[Any]
    store_status: str | None
    store_attempts: dict[tuple[str, int], list[str]]


@pytest.fixture(scope="module")
def killed_try(airflow: AirflowDeployment, airflow_store: DeploymentStore) -> Iterator[KilledTry]:
    """A run of the sleeping DAG whose task process the test kills with SIGKILL mid-try."""
    run_id = airflow.trigger(KILLED_JOB)
    pid = airflow.wait_for_pid_file(run_id)
    try:
        # The task process: a descendant of the scheduler (LocalExecutor), in its own session.
        command = command_line(pid)
        assert airflow.owns(pid), (pid, command)
    finally:
        os.kill(pid, signal.SIGKILL)
    state = airflow.wait_until_ended({run_id: KILLED_JOB}, timeout=120)[run_id]
    tries = airflow.tries(KILLED_JOB, run_id).get(KILLED_STEP, [])
    ended_at = time.time()
    record = None
    reconciler = _Reconciler(airflow)
    while time.time() < ended_at + RECORDED_WITHIN_SECONDS:
        record = airflow_store.records("airflow", [run_id]).get(run_id)
        if record is not None and record.status == "failed":
            break
        reconciler()
        time.sleep(1.0)
    FIGURES.append(
        f"airflow/{airflow_store.backend}/kill -9: Airflow {state}, store "
        f"{record.status if record else None} ({time.time() - ended_at:.1f}s after the run ended)"
    )
    yield KilledTry(
        run_id=run_id,
        pid=pid,
        command=command,
        airflow_state=state,
        try_states=[t["state"] for t in tries],
        store_status=record.status if record else None,
        store_attempts=record.attempts if record else {},
    )
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)


def test_a_task_process_killed_mid_try_ends_failed_in_airflow(killed_try: KilledTry) -> None:
    assert killed_try.airflow_state == "failed", killed_try
    assert killed_try.try_states == ["failed"], killed_try


def test_a_task_process_killed_mid_try_ends_failed_in_the_store(killed_try: KilledTry) -> None:
    assert killed_try.store_status == "failed", killed_try
    assert killed_try.store_attempts.get((KILLED_STEP, 1)) == ["failed"], killed_try
