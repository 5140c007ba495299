"""A real ``dagster dev`` (webserver + daemon + code server) on a deployment store.

Its ``dagster.yaml`` turns run monitoring on with short intervals: that is what users should
configure (docs/internals/deployment-tests.md) so a run whose worker died ends FAILURE in Dagster
(and then ``failed`` in the store) instead of staying STARTED forever. Under ``dagster dev`` the
code server also notices a dead run worker it spawned itself; run monitoring covers every other
launcher and a worker stuck while starting.

Runs are launched through GraphQL (``launchRun``), as the UI and the API do.
"""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import dagster as dg

from tests.dagster._server import LOCATION, REPOSITORY, WORKSPACE, DagsterDev, server_env
from tests.deployment._harness import read_texts, wait_for
from tests.deployment._scenario import RunOutcome
from tests.deployment._store import DeploymentStore

#: What the tests' dagster.yaml says; run monitoring is what issue 16 asks users to configure.
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
run_monitoring:
  enabled: true
  # A run whose worker has not started within this many seconds is marked failed.
  start_timeout_seconds: 60
  # How often the daemon checks running runs (default 120 s).
  poll_interval_seconds: 5
  # dagster dev's launcher cannot resume a run: a dead worker means a failed run.
  max_resume_run_attempts: 0
sensors:
  use_threads: true
  num_workers: 4
"""

TERMINAL = {"SUCCESS", "FAILURE", "CANCELED"}
#: Dagster's run and step statuses in the store's words.
RUN_STATUS = {"SUCCESS": "success", "FAILURE": "failed", "CANCELED": "canceled"}
STEP_STATUS = {"SUCCESS": "success", "FAILURE": "failed", "SKIPPED": "skipped"}
_LAUNCH = """
mutation($params: ExecutionParams!) { launchRun(executionParams: $params) {
  __typename
  ... on LaunchRunSuccess { run { runId } }
  ... on PythonError { message }
  ... on RunConfigValidationInvalid { errors { message } }
  ... on InvalidStepError { invalidStepKey }
  ... on InvalidOutputError { invalidOutputName }
  ... on PipelineNotFoundError { message }
  ... on RunConflict { message }
} }
"""
_STATUSES = """
query($ids: [String!]) { runsOrError(filter: {runIds: $ids}) {
  __typename ... on Runs { results { runId status } }
} }
"""


@dataclass
class DagsterStep:
    """One step as Dagster's own run storage knows it."""

    status: str
    attempts: int
    metrics: dict[str, float] = field(default_factory=dict)  # float metadata of its output


@dataclass
class DagsterRun:
    """One run as Dagster knows it once it ended."""

    job: str
    run_id: str
    status: str
    ended_at: float | None
    steps: dict[str, DagsterStep]
    failure: str | None  # the run's or last failed step's error text

    def outcome(self) -> RunOutcome:
        """The run as Dagster recorded it, in the store's words, to compare with the store."""
        return RunOutcome(
            job=self.job,
            run_id=self.run_id,
            status=RUN_STATUS.get(self.status, self.status.lower()),
            ended_at=self.ended_at,
            attempts={step: facts.attempts for step, facts in self.steps.items()},
            step_status={
                step: STEP_STATUS.get(facts.status, facts.status.lower())
                for step, facts in self.steps.items()
            },
            failure=self.failure,
        )


class DagsterDeployment:
    """``dagster dev`` on ``store``, in its own process group; :meth:`stop` leaves nothing."""

    def __init__(
        self,
        store: DeploymentStore,
        root: Path,
        *,
        dagster_yaml: str = DAGSTER_YAML,
        workspace: Path = WORKSPACE,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        """``workspace``: its location must be named ``etl_meta``; ``extra_env``: added to the
        environment every process of the deployment gets."""
        self.store = store
        self.root = root
        self.dagster_home = root / "dagster_home"
        self.dagster_home.mkdir(parents=True, exist_ok=True)
        (self.dagster_home / "dagster.yaml").write_text(dagster_yaml, encoding="utf-8")
        self.env = server_env(
            store_url=store.url,
            home=store.home,
            base_dir=store.project,
            dagster_home=self.dagster_home,
        ) | dict(extra_env or {})
        self.server = DagsterDev(self.env, root / "dagster_dev.log", workspace=workspace)

    def start(self) -> DagsterDeployment:
        self.server.start(timeout=120)
        try:
            self.server.wait_for_sensors(timeout=90)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        self.server.stop()

    @property
    def process_group(self) -> int:
        assert self.server.proc is not None
        return self.server.proc.pid

    def log_tail(self) -> str:
        return self.server.log_tail()

    # -- runs --------------------------------------------------------------------------------------

    def launch(self, job: str) -> str:
        """Launch ``job`` through GraphQL; its run id."""
        params = {
            "selector": {
                "repositoryLocationName": LOCATION,
                "repositoryName": REPOSITORY,
                "jobName": job,
            },
            "runConfigData": {},
        }
        result = self.server.graphql(_LAUNCH, {"params": params})["launchRun"]
        if result["__typename"] != "LaunchRunSuccess":
            raise AssertionError(f"launching {job} failed: {result}")
        return result["run"]["runId"]

    def statuses(self, run_ids: list[str]) -> dict[str, str]:
        """Dagster's status of each run (GraphQL)."""
        data = self.server.graphql(_STATUSES, {"ids": list(run_ids)})["runsOrError"]
        return {run["runId"]: run["status"] for run in data["results"]}

    def wait_until_ended(self, run_ids: list[str], *, timeout: float) -> dict[str, str]:
        def ended() -> dict[str, str] | None:
            self.server._check_alive()
            statuses = self.statuses(run_ids)
            done = len(statuses) == len(run_ids) and set(statuses.values()) <= TERMINAL
            return statuses if done else None

        return wait_for(
            f"Dagster runs {run_ids} to end", ended, timeout=timeout, on_timeout=self.log_tail
        )

    def facts(self, jobs: dict[str, str]) -> dict[str, DagsterRun]:
        """What Dagster's run storage says about each run (``{run_id: job}``)."""
        instance = dg.DagsterInstance.from_config(str(self.dagster_home))
        try:
            return {run_id: _facts(instance, run_id, job) for run_id, job in jobs.items()}
        finally:
            instance.dispose()

    def event_messages(self, run_ids: list[str]) -> str:
        """Every event log message of these runs (errors included), one per line."""
        instance = dg.DagsterInstance.from_config(str(self.dagster_home))
        lines: list[str] = []
        try:
            for run_id in run_ids:
                for entry in instance.all_logs(run_id):
                    lines.append(entry.user_message or "")
                    event = entry.dagster_event
                    error = getattr(getattr(event, "event_specific_data", None), "error", None)
                    while error is not None:
                        lines.append(f"{error.cls_name}: {error.message}")
                        error = error.cause
        finally:
            instance.dispose()
        return "\n".join(lines)

    def log_files(self) -> dict[Path, bytes]:
        """The deployment's own log, Dagster's storage (event logs, compute logs), etl-meta's."""
        return read_texts(self.server.log_path, self.dagster_home, self.store.home)

    def wait_for_pid_file(self, run_id: str, *, timeout: float = 90) -> int:
        """The pid the killed job's step wrote (its process: the run worker)."""
        path = self.store.project / "pids" / f"{run_id}.pid"

        def written() -> int | None:
            self.server._check_alive()
            text = path.read_text(encoding="utf-8").strip() if path.exists() else ""
            return int(text) if text else None

        return wait_for(f"{path} to be written", written, timeout=timeout, on_timeout=self.log_tail)


def _error_text(error: Any) -> str:
    parts = []
    while error is not None:
        parts.append(f"{error.cls_name}: {error.message}")
        error = error.cause
    return " <- ".join(parts)


def _facts(instance: dg.DagsterInstance, run_id: str, job: str) -> DagsterRun:
    record = instance.get_run_record_by_id(run_id)
    assert record is not None, f"Dagster has no run {run_id}"
    steps = {
        stat.step_key: DagsterStep(
            status=stat.status.value if stat.status else "IN_PROGRESS",
            attempts=max(len(stat.attempts_list), 1),
        )
        for stat in instance.get_run_step_stats(run_id)
    }
    outputs = instance.get_records_for_run(run_id, of_type={dg.DagsterEventType.STEP_OUTPUT})
    for output in outputs.records:
        event = output.event_log_entry.dagster_event
        assert event is not None and event.step_key is not None
        steps[event.step_key].metrics.update(
            {
                name: value.value
                for name, value in event.event_specific_data.metadata.items()
                if isinstance(value, dg.FloatMetadataValue)
            }
        )
    failures = instance.get_records_for_run(
        run_id,
        of_type={dg.DagsterEventType.RUN_FAILURE, dg.DagsterEventType.STEP_FAILURE},
    )
    failure = None
    for failed in failures.records:
        data = failed.event_log_entry.dagster_event.event_specific_data
        error = getattr(data, "error", None)
        failure = _error_text(error) if error is not None else failed.event_log_entry.user_message
    ended = record.end_time
    return DagsterRun(
        job=job,
        run_id=run_id,
        status=record.dagster_run.status.value,
        ended_at=ended,
        steps=steps,
        failure=failure,
    )


def pause_until(moment: float) -> None:
    """Sleep until ``time.time()`` reaches ``moment``."""
    remaining = moment - time.time()
    if remaining > 0:
        time.sleep(remaining)
