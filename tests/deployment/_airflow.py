"""A real Airflow 3.3 deployment: scheduler, dag-processor, api-server and triggerer with the
LocalExecutor, on a PostgreSQL metadata database of its own (notes/airflow.md gives the recipe).

Every process gets the store's location (``ETL_META_DATABASE_URL``, with the store role's
password on PostgreSQL) and the test project as base directory. The DAGs are written by
``etl-meta airflow export``; runs are triggered and read through REST API v2 with a JWT from the
simple auth manager.

The scheduler heartbeats every second here (``[scheduler] scheduler_heartbeat_sec = 1``; the
default is 5): the heartbeat's age then measures how long the scheduler loop was stalled, and
"never older than 5 s" means no stall of more than about 4 s.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from tests.backends import TEST_SECRET_KEY, PostgresServer
from tests.deployment._harness import (
    ProcessGroup,
    descendants,
    free_port,
    log_tail,
    read_texts,
    wait_for,
)
from tests.deployment._scenario import RunOutcome
from tests.deployment._store import DeploymentStore

BIN = Path(sys.executable).parent
AIRFLOW = BIN / "airflow"
ETL_META = BIN / "etl-meta"
USER = "admin"
TERMINAL = {"success", "failed"}
#: The maintenance DAG ``etl-meta airflow export`` writes (issue 16), when it exists.
RECONCILE_DAG = "etl_meta_reconcile"
MAINTENANCE_FILE = "etl_meta_maintenance.py"
PROCESSES = ("api-server", "scheduler", "dag-processor", "triggerer")
#: Airflow's task states in the store's words (anything else is kept as Airflow says it).
TRY_STATUS = {"success": "success", "failed": "failed", "up_for_retry": "failed"}


class AirflowDeployment:
    """The four Airflow processes, each in its own process group; :meth:`stop` leaves nothing."""

    #: ``etl-meta airflow export`` options after ``--dags-folder``.
    export_options: tuple[str, ...] = ("--retry-delay", "1")

    def __init__(
        self,
        store: DeploymentStore,
        postgres: PostgresServer,
        root: Path,
        *,
        label: str = "airflow",
    ) -> None:
        self.store = store
        self.postgres = postgres
        self.root = root
        self.home = root / "airflow_home"
        self.dags = root / "dags"
        self.logs = root / "airflow_logs"
        for path in (self.home, self.dags, self.logs):
            path.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = "af-" + secrets.token_hex(8)
        # ``label`` keeps two deployments of one test session on databases of their own.
        self.metadata_url = postgres.create_database(f"{label}_{store.backend}")
        passwords = self.home / "simple_auth_manager_passwords.json"
        passwords.write_text(json.dumps({USER: self.password}), encoding="utf-8")
        self.env = self._environment(passwords)
        self.processes: list[ProcessGroup] = []
        self._token: str | None = None
        self._token_at = 0.0

    def _environment(self, passwords: Path) -> dict[str, str]:
        metadata = make_url(self.metadata_url)
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("ETL_META_", "AIRFLOW", "DAGSTER_"))
        }
        env.update(
            AIRFLOW_HOME=str(self.home),
            AIRFLOW__CORE__DAGS_FOLDER=str(self.dags),
            AIRFLOW__CORE__LOAD_EXAMPLES="False",
            AIRFLOW__CORE__EXECUTOR="LocalExecutor",
            AIRFLOW__CORE__PARALLELISM="8",
            AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION="False",
            AIRFLOW__CORE__EXECUTION_API_SERVER_URL=f"http://127.0.0.1:{self.port}/execution/",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS=f"{USER}:admin",
            AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE=str(passwords),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN=metadata.set(
                drivername="postgresql+psycopg"
            ).render_as_string(hide_password=False),
            AIRFLOW__DATABASE__SQL_ALCHEMY_CONN_ASYNC=metadata.set(
                drivername="postgresql+psycopg_async"
            ).render_as_string(hide_password=False),
            AIRFLOW__API_AUTH__JWT_SECRET=secrets.token_hex(16),
            AIRFLOW__API__SECRET_KEY=secrets.token_hex(16),
            AIRFLOW__API__PORT=str(self.port),
            AIRFLOW__API__HOST="127.0.0.1",
            AIRFLOW__LOGGING__BASE_LOG_FOLDER=str(self.logs),
            AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC="1",
            AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL="5",
            ETL_META_DATABASE_URL=self.store.url,
            ETL_META_HOME=str(self.store.home),
            ETL_META_BASE_DIR=str(self.store.project),
            ETL_META_SECRET_KEYS=TEST_SECRET_KEY,
            # Where the etl_meta_reconcile maintenance DAG reads Airflow's REST API.
            ETL_META_AIRFLOW_API_URL=f"http://127.0.0.1:{self.port}",
            ETL_META_AIRFLOW_USERNAME=USER,
            ETL_META_AIRFLOW_PASSWORD=self.password,
            PYTHONUNBUFFERED="1",
        )
        return env

    # -- lifecycle ---------------------------------------------------------------------------------

    def _run(self, name: str, *args: str, timeout: float = 180) -> None:
        log = self.root / f"{name}.log"
        with log.open("ab") as out:
            result = subprocess.run(
                list(args),
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                timeout=timeout,
                check=False,
            )
        assert result.returncode == 0, f"{' '.join(args[:3])} failed{log_tail(log)}"

    def start(self, dags: tuple[str, ...]) -> AirflowDeployment:
        """Migrate Airflow's database, export the DAGs, start the processes, wait for ``dags``."""
        try:
            self._run("db_migrate", str(AIRFLOW), "db", "migrate")
            self._run(
                "export", str(ETL_META), "airflow", "export", "--dags-folder", str(self.dags),
                *self.export_options,
            )  # fmt: skip
            for name, command in self.commands().items():
                group = ProcessGroup(
                    name, command, env=self.env, log_path=self.root / f"{name}.log"
                )
                self.processes.append(group.start())
            wait_for("the api-server", self._healthy, timeout=120, on_timeout=self.log_tails)
            if (self.dags / MAINTENANCE_FILE).exists():
                dags = (*dags, RECONCILE_DAG)
            for dag in dags:
                wait_for(
                    f"DAG {dag} to be parsed",
                    lambda dag=dag: True if self.dag_exists(dag) else None,
                    timeout=120,
                    interval=1,
                    on_timeout=self.log_tails,
                )
        except BaseException:
            self.stop()
            raise
        return self

    def commands(self) -> dict[str, list[str]]:
        """The long-running processes to start, ``{name: command line}``, in starting order."""
        commands = {name: [str(AIRFLOW), name] for name in PROCESSES}
        commands["api-server"] += ["--port", str(self.port), "--host", "127.0.0.1"]
        return commands

    def stop(self) -> None:
        for group in reversed(self.processes):
            group.stop()
        self.processes.clear()
        self.postgres.drop_database(self.metadata_url)

    def check_alive(self) -> None:
        for group in self.processes:
            group.check_alive()

    def log_tails(self) -> str:
        return "".join(group.tail(2500) for group in self.processes)

    def log_files(self) -> dict[Path, bytes]:
        """Process logs, task logs, and etl-meta's own files."""
        return read_texts(self.root, suffixes=(".log",)) | read_texts(self.logs, self.store.home)

    def log_text(self) -> str:
        return "\n".join(
            data.decode("utf-8", errors="replace") for data in self.log_files().values()
        )

    # -- REST API v2 -------------------------------------------------------------------------------

    def _healthy(self) -> bool | None:
        self.check_alive()
        try:
            health = self.request("GET", "/api/v2/monitor/health", auth=False)
        except (OSError, urllib.error.URLError, ValueError):
            return None
        return True if health.get("scheduler", {}).get("status") == "healthy" else None

    def token(self) -> str:
        if self._token is None or time.time() - self._token_at > 600:
            body = {"username": USER, "password": self.password}
            reply = self.request("POST", "/auth/token", body, auth=False)
            self._token, self._token_at = reply["access_token"], time.time()
        return self._token

    def request(
        self, method: str, path: str, body: Any = None, *, auth: bool = True, timeout: float = 30
    ) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"}
        if auth:
            headers["Authorization"] = f"Bearer {self.token()}"
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.port}{path}", data=data, headers=headers, method=method
        )
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return json.load(response)

    def dag_exists(self, dag: str) -> bool:
        try:
            self.request("GET", f"/api/v2/dags/{dag}")
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return False
            raise
        return True

    def trigger(self, dag: str, conf: dict[str, Any] | None = None) -> str:
        """Trigger a run of ``dag`` now, with ``conf``; its run id."""
        reply = self.request(
            "POST", f"/api/v2/dags/{dag}/dagRuns", {"logical_date": None, "conf": conf or {}}
        )
        return reply["dag_run_id"]

    def run_state(self, dag: str, run_id: str) -> dict[str, Any]:
        return self.request("GET", f"/api/v2/dags/{dag}/dagRuns/{_quote(run_id)}")

    def wait_until_ended(self, runs: dict[str, str], *, timeout: float) -> dict[str, str]:
        """``{run_id: dag}`` → ``{run_id: state}`` once every run is success or failed."""

        def ended() -> dict[str, str] | None:
            self.check_alive()
            states = {run: self.run_state(dag, run)["state"] for run, dag in runs.items()}
            return states if set(states.values()) <= TERMINAL else None

        return wait_for(
            f"Airflow runs {list(runs)} to end",
            ended,
            timeout=timeout,
            interval=1,
            on_timeout=self.log_tails,
        )

    def tries(self, dag: str, run_id: str) -> dict[str, list[dict[str, Any]]]:
        """``{task: [try, ...]}`` as Airflow recorded them (oldest first)."""
        base = f"/api/v2/dags/{dag}/dagRuns/{_quote(run_id)}/taskInstances"
        instances = self.request("GET", base)["task_instances"]
        found: dict[str, list[dict[str, Any]]] = {}
        for instance in instances:
            task = instance["task_id"]
            listed = self.request("GET", f"{base}/{task}/tries")["task_instances"]
            found[task] = sorted(listed, key=lambda t: t["try_number"]) or [instance]
        return found

    def outcome(self, dag: str, run_id: str, *, per_try: bool = False) -> RunOutcome:
        """The run as Airflow recorded it (REST API v2), to compare with the store.

        ``per_try``: expect in the store each try under Airflow's own try number with the state
        Airflow recorded for that try, rather than "the last try's state, the earlier failed".
        """
        run, tries = self.run_state(dag, run_id), self.tries(dag, run_id)
        per_attempt = {
            (task, attempt["try_number"]): TRY_STATUS.get(attempt["state"], attempt["state"])
            for task, listed in tries.items()
            for attempt in listed
        }
        return RunOutcome(
            job=dag,
            run_id=run_id,
            status=run["state"],
            ended_at=_when(run.get("end_date")),
            attempts={task: len(listed) for task, listed in tries.items()},
            step_status={
                task: TRY_STATUS.get(listed[-1]["state"], str(listed[-1]["state"]))
                for task, listed in tries.items()
            },
            failure=self.failure_text(dag, run_id, tries) if run["state"] == "failed" else None,
            attempt_status=per_attempt if per_try else None,
        )

    def failure_text(self, dag: str, run_id: str, tries: dict[str, list[dict[str, Any]]]) -> str:
        """The error lines of the failed tries' task logs (Airflow's record of the failure)."""
        lines = []
        for task, listed in tries.items():
            for number, attempt in enumerate(listed, start=1):
                if attempt.get("state") != "failed":
                    continue
                path = self.logs / f"dag_id={dag}" / f"run_id={run_id}" / f"task_id={task}"
                log = path / f"attempt={attempt.get('try_number', number)}.log"
                text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
                lines += _task_errors(text)
        return "\n".join(lines)

    def heartbeat_age(self) -> float | None:
        """Seconds since the scheduler's latest heartbeat (``/api/v2/monitor/health``)."""
        health = self.request("GET", "/api/v2/monitor/health", auth=False, timeout=5)
        latest = health.get("scheduler", {}).get("latest_scheduler_heartbeat")
        if not latest:
            return None
        return time.time() - datetime.fromisoformat(latest).timestamp()

    def wait_for_pid_file(self, run_id: str, *, timeout: float = 120) -> int:
        """The pid the killed job's task wrote (its task process)."""
        import re

        name = re.sub(r"[^A-Za-z0-9._-]", "_", run_id)
        path = self.store.project / "pids" / f"{name}.pid"

        def written() -> int | None:
            self.check_alive()
            text = path.read_text(encoding="utf-8").strip() if path.exists() else ""
            return int(text) if text else None

        return wait_for(
            f"{path} to be written", written, timeout=timeout, on_timeout=self.log_tails
        )

    def owns(self, pid: int) -> bool:
        """Whether ``pid`` descends from one of the deployment's processes."""
        return any(pid in descendants(group.pid) for group in self.processes)


def _task_errors(log: str) -> list[str]:
    """``Class: message`` of each exception a task log's "Task failed" entry carries."""
    found = []
    for line in log.splitlines():
        with contextlib.suppress(ValueError):
            entry = json.loads(line)
            if isinstance(entry, dict) and entry.get("event") == "Task failed with exception":
                found += [
                    f"{detail.get('exc_type')}: {detail.get('exc_value')}"
                    for detail in entry.get("error_detail") or []
                ]
    return found


def _when(text: str | None) -> float | None:
    return datetime.fromisoformat(text).timestamp() if text else None


def _quote(value: str) -> str:
    return urllib.request.quote(value, safe="")


class HeartbeatWatch:
    """Reads the scheduler's heartbeat age every second in a thread; keeps the largest."""

    def __init__(self, deployment: AirflowDeployment) -> None:
        self.deployment = deployment
        self.ages: list[float] = []
        self.errors: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, name="heartbeat-watch", daemon=True)

    def _watch(self) -> None:
        while not self._stop.is_set():
            try:
                age = self.deployment.heartbeat_age()
                if age is not None:
                    self.ages.append(age)
            except Exception as exc:  # the api-server not answering is a finding too
                self.errors.append(f"{type(exc).__name__}: {exc}")
            self._stop.wait(1.0)

    def __enter__(self) -> HeartbeatWatch:
        self._thread.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self._stop.set()
        with contextlib.suppress(RuntimeError):
            self._thread.join(timeout=10)

    @property
    def max_age(self) -> float | None:
        return max(self.ages) if self.ages else None
