"""``dagster dev`` whose parallel jobs run on two dagster-celery workers (Redis broker).

The code location is :mod:`tests.deployment.dagster_celery_location`: etl-meta's loader with
dagster-celery's executor for parallel jobs. Every process gets the broker in
``CELERY_BROKER_URL`` / ``CELERY_RESULT_BACKEND`` (Redis database 6, flushed before the workers
start); the workers (``dagster-celery worker start``, each in its own process group) get it from
the executor config file they are started with, as dagster-celery documents.

Which worker ran a step attempt is on Dagster's own record: dagster-celery reports an engine
event "Executing steps <step> in celery worker" with the worker's name before each attempt.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import dagster as dg
import yaml

from tests.dagster._server import LOCATION
from tests.deployment._celery import flush_broker
from tests.deployment._dagster import DagsterDeployment
from tests.deployment._harness import REPO_ROOT, ProcessGroup, wait_for
from tests.deployment._store import DeploymentStore

#: The Dagster deployment's broker and result backend: Redis database 6.
DAGSTER_BROKER = "redis://127.0.0.1:6379/6"
#: The workers' names (Celery node names ``<name>@<host>``).
WORKERS = ("celery-a", "celery-b")
WORKER_CONCURRENCY = 2
LOCATION_MODULE = "tests.deployment.dagster_celery_location"
DAGSTER_CELERY = Path(sys.executable).with_name("dagster-celery")
#: The metadata key of dagster-celery's "Executing steps ... in celery worker" engine event.
WORKER_KEY = "Celery worker"


class DagsterCeleryDeployment(DagsterDeployment):
    """``dagster dev`` on the Celery code location, and two dagster-celery workers."""

    def __init__(self, store: DeploymentStore, root: Path) -> None:
        workspace = root / "workspace.yaml"
        location = {
            "module_name": LOCATION_MODULE,
            "location_name": LOCATION,
            "working_directory": str(REPO_ROOT),
        }
        workspace.write_text(yaml.safe_dump({"load_from": [{"python_module": location}]}))
        broker = {"CELERY_BROKER_URL": DAGSTER_BROKER, "CELERY_RESULT_BACKEND": DAGSTER_BROKER}
        super().__init__(store, root, workspace=workspace, extra_env=broker)
        worker_config = root / "celery_worker.yaml"
        executor = {"broker": DAGSTER_BROKER, "backend": DAGSTER_BROKER}
        worker_config.write_text(yaml.safe_dump({"execution": {"config": executor}}))
        # dagster-celery starts `celery` from PATH: the venv's, whatever the caller's PATH.
        worker_env = self.env | {"PATH": f"{DAGSTER_CELERY.parent}{os.pathsep}{os.environ['PATH']}"}
        start = [str(DAGSTER_CELERY), "worker", "start", "-A", "dagster_celery.app"]
        start += ["-y", str(worker_config)]
        self.workers = [
            ProcessGroup(
                f"dagster-celery-{name}",
                [*start, "-n", name, "--", "--concurrency", str(WORKER_CONCURRENCY)],
                env=worker_env,
                log_path=root / f"dagster-celery-{name}.log",
            )
            for name in WORKERS
        ]

    def start(self) -> DagsterCeleryDeployment:
        flush_broker(DAGSTER_BROKER)
        try:
            # dagster dev first: it creates DAGSTER_HOME's storage, which two workers starting
            # on an empty home would both try to migrate at once.
            super().start()
            for worker in self.workers:
                worker.start()
            for worker, name in zip(self.workers, WORKERS, strict=True):
                wait_for(
                    f"dagster-celery worker {name} to be ready",
                    lambda worker=worker, name=name: _ready(worker, name),
                    timeout=120,
                    interval=1,
                    on_timeout=worker.tail,
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        super().stop()
        for worker in self.workers:
            worker.stop()
        flush_broker(DAGSTER_BROKER, quietly=True)  # no task or result left behind

    def log_tail(self) -> str:
        return super().log_tail() + "".join(worker.tail(2500) for worker in self.workers)

    def celery_workers(self, run_ids: list[str]) -> dict[str, dict[tuple[str, int], str]]:
        """``{run id: {(step, attempt): worker name}}``: the Celery worker that dagster-celery
        reported for each step attempt (the n-th report of a step is its n-th attempt)."""
        instance = dg.DagsterInstance.from_config(str(self.dagster_home))
        found: dict[str, dict[tuple[str, int], str]] = {}
        try:
            for run_id in run_ids:
                records = instance.get_records_for_run(
                    run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, ascending=True
                ).records
                attempts: dict[tuple[str, int], str] = {}
                for record in records:
                    event = record.event_log_entry.dagster_event
                    metadata = getattr(event.event_specific_data, "metadata", None) or {}
                    if event.step_key is None or WORKER_KEY not in metadata:
                        continue
                    attempt = 1 + sum(1 for step, _ in attempts if step == event.step_key)
                    attempts[(event.step_key, attempt)] = str(metadata[WORKER_KEY].value)
                found[run_id] = attempts
        finally:
            instance.dispose()
        return found


def _ready(worker: ProcessGroup, name: str) -> bool | None:
    """Whether Celery logged ``<name>@<host> ready.`` (it consumes the queue from then on)."""
    worker.check_alive()
    text = worker.log_path.read_text(encoding="utf-8", errors="replace")
    lines = text.splitlines()
    return True if any(f"{name}@" in line and line.endswith(" ready.") for line in lines) else None
