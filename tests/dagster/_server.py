"""Start and stop a real ``dagster dev`` (webserver + daemon) for the slow Dagster tests.

* :func:`free_port`: a port nothing listens on (bind to port 0, read it back).
* :func:`write_dagster_home`: a ``DAGSTER_HOME`` with telemetry off and a fast run queue.
* :func:`server_env`: the environment the webserver, daemon, code server and run workers share
  (they all read the store's URL from ``ETL_META_DATABASE_URL``).
* :class:`DagsterDev`: the process group, readiness polling with deadlines, GraphQL, and a stop
  that never leaves processes behind (``dagster dev`` ignores SIGTERM unless it has its own
  session: notes/dagster.md).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

from tests.backends import TEST_SECRET_KEY

REPO_ROOT = Path(__file__).resolve().parents[2]
WORKSPACE = REPO_ROOT / "workspace.yaml"
DAGSTER = Path(sys.executable).with_name("dagster")
LOCATION = "etl_meta"
REPOSITORY = "__repository__"
STATUS_SENSORS = (
    "etl_meta_on_run_queued",
    "etl_meta_on_run_started",
    "etl_meta_on_run_success",
    "etl_meta_on_run_failure",
    "etl_meta_on_run_canceled",
)

# The run queue is polled every 5 s by default; 1 s keeps the tests short.
DAGSTER_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_interval_seconds: 1
sensors:
  use_threads: true
  num_workers: 4
"""

T = TypeVar("T")


class ServerError(AssertionError):
    """The server did not come up, or died; the message carries the end of its log."""


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def write_dagster_home(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    (path / "dagster.yaml").write_text(DAGSTER_YAML, encoding="utf-8")
    return path


def server_env(*, store_url: str, home: Path, base_dir: Path, dagster_home: Path) -> dict[str, str]:
    """This process's environment without any ETL_META_*/DAGSTER_* setting, plus the test's."""
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("ETL_META_", "DAGSTER_"))
    }
    env.update(
        ETL_META_DATABASE_URL=store_url,
        ETL_META_HOME=str(home),
        ETL_META_BASE_DIR=str(base_dir),
        ETL_META_SECRET_KEYS=TEST_SECRET_KEY,
        DAGSTER_HOME=str(dagster_home),
        PYTHONUNBUFFERED="1",
    )
    return env


def wait_for(
    what: str,
    probe: Callable[[], T | None],
    *,
    timeout: float,
    interval: float = 0.5,
    on_timeout: Callable[[], str] = lambda: "",
) -> T:
    """Call ``probe`` until it returns something other than ``None``; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result is not None:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what}{on_timeout()}")
        time.sleep(interval)


class DagsterDev:
    """One ``dagster dev -w workspace.yaml`` in its own process group."""

    def __init__(
        self, env: Mapping[str, str], log_path: Path, *, workspace: Path = WORKSPACE
    ) -> None:
        self.env = dict(env)
        self.log_path = log_path
        self.workspace = workspace  # whose location is named LOCATION
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_in: float | None = None

    @property
    def dagster_home(self) -> Path:
        return Path(self.env["DAGSTER_HOME"])

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # -- lifecycle --------------------------------------------------------------------------------

    def start(self, *, timeout: float = 90.0) -> DagsterDev:
        """Start the server and wait until the ``etl_meta`` location is loaded."""
        began = time.monotonic()
        command = [str(DAGSTER), "dev", "-w", str(self.workspace)]
        command += ["-p", str(self.port), "-h", "127.0.0.1"]
        with self.log_path.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            wait_for(
                "the etl_meta code location to load",
                self._location_loaded,
                timeout=timeout,
                on_timeout=self.log_tail,
            )
        except BaseException:
            self.stop()
            raise
        self.started_in = time.monotonic() - began
        return self

    def stop(self, *, grace: float = 10.0) -> None:
        """SIGTERM the whole process group, SIGKILL whatever is left after ``grace`` seconds."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=grace)
        # The group may outlive its leader (code server, daemon, run workers): kill the rest.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=grace)

    def __enter__(self) -> DagsterDev:
        return self.start()

    def __exit__(self, *_exc: object) -> None:
        self.stop()

    def _check_alive(self) -> None:
        if self.proc is None:
            raise ServerError("dagster dev is not running")
        if self.proc.poll() is not None:
            raise ServerError(
                f"dagster dev exited with code {self.proc.returncode}{self.log_tail()}"
            )

    def _location_loaded(self) -> bool | None:
        self._check_alive()
        try:
            data = self.graphql(
                """{ workspaceOrError { __typename ... on Workspace { locationEntries {
                    name loadStatus
                    locationOrLoadError { __typename ... on PythonError { message } }
                } } } }"""
            )
        except (OSError, urllib.error.URLError, ValueError):
            return None  # not serving yet
        entries = {e["name"]: e for e in data["workspaceOrError"].get("locationEntries", [])}
        entry = entries.get(LOCATION)
        if entry is None or entry["loadStatus"] != "LOADED" or entry["locationOrLoadError"] is None:
            return None
        loaded = entry["locationOrLoadError"]
        if loaded["__typename"] == "PythonError":
            raise ServerError(f"the etl_meta location failed to load: {loaded['message']}")
        return True

    def log_tail(self, chars: int = 6000) -> str:
        try:
            text = self.log_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""
        return f"\n--- end of {self.log_path} ---\n{text[-chars:]}"

    # -- GraphQL ----------------------------------------------------------------------------------

    def graphql(self, query: str, variables: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """POST a GraphQL query; raise on transport or GraphQL errors, return ``data``."""
        body = json.dumps({"query": query, "variables": dict(variables or {})}).encode()
        request = urllib.request.Request(
            f"{self.url}/graphql", data=body, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            payload = json.load(response)
        if payload.get("errors"):
            raise ValueError(f"GraphQL errors: {payload['errors']}")
        return payload["data"]

    def client(self):  # -> DagsterGraphQLClient (imported lazily: slow import)
        from dagster_graphql import DagsterGraphQLClient

        return DagsterGraphQLClient("127.0.0.1", port_number=self.port)

    def job_tags(self, job: str) -> dict[str, str]:
        """The tags the location currently serves for ``job``."""
        data = self.graphql(
            """query($selector: PipelineSelector!) { pipelineOrError(params: $selector) {
                __typename ... on Pipeline { tags { key value } }
                ... on PythonError { message } ... on PipelineNotFoundError { message }
            } }""",
            {
                "selector": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": REPOSITORY,
                    "pipelineName": job,
                }
            },
        )
        result = data["pipelineOrError"]
        if result["__typename"] != "Pipeline":
            raise AssertionError(f"job {job!r} not served: {result}")
        return {tag["key"]: tag["value"] for tag in result["tags"]}

    def repository_names(self) -> list[str]:
        data = self.graphql(
            """{ repositoriesOrError { __typename ... on RepositoryConnection {
                nodes { name location { name } } } } }"""
        )
        return [
            node["name"]
            for node in data["repositoriesOrError"]["nodes"]
            if node["location"]["name"] == LOCATION
        ]

    def sensor_ticks(self, sensor: str) -> int:
        """How many ticks ``sensor`` has had (at most 1 is asked for)."""
        data = self.graphql(
            """query($selector: SensorSelector!) { sensorOrError(sensorSelector: $selector) {
                __typename ... on Sensor { sensorState { status ticks(limit: 1) { status } } }
            } }""",
            {
                "selector": {
                    "repositoryLocationName": LOCATION,
                    "repositoryName": REPOSITORY,
                    "sensorName": sensor,
                }
            },
        )
        result = data["sensorOrError"]
        if result["__typename"] != "Sensor":
            raise AssertionError(f"sensor {sensor!r} not served: {result}")
        return len(result["sensorState"]["ticks"])

    def wait_for_sensors(self, sensors: tuple[str, ...] = STATUS_SENSORS, *, timeout: float = 60):
        """Wait for each sensor's first tick: a run-status sensor's first tick only sets its
        cursor, so a run that ends before it would never be delivered (notes/dagster.md)."""

        def ticked() -> bool | None:
            self._check_alive()
            return True if all(self.sensor_ticks(s) for s in sensors) else None

        what = "the run-status sensors' first ticks"
        wait_for(what, ticked, timeout=timeout, on_timeout=self.log_tail)
