"""Distributed executors for the ``distributed`` tests: a Redis broker, and Airflow on the
CeleryExecutor with two Celery workers.

The broker is this machine's Redis (127.0.0.1:6379). Each deployment takes a database number of
its own (:data:`AIRFLOW_BROKER`; dagster-celery's in ``_dagster_celery.py``) and flushes it
before starting, so tasks left over from an earlier, interrupted session are never delivered to
this one's workers, and after stopping. Two sessions at once on one Redis would share them.

Two workers on one machine would report the same host in Airflow's task instance ``hostname``
(Airflow's ``hostname_callable`` defaults to the machine's FQDN). Each worker therefore runs in a
UTS namespace of its own (``unshare --uts``, root only) with its own hostname, as if it ran on a
machine of its own: Airflow then records on every task try which worker ran it, with its default
configuration.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from pathlib import Path

import redis
from sqlalchemy.engine import make_url

from tests.backends import PostgresServer
from tests.deployment._airflow import AIRFLOW, AirflowDeployment
from tests.deployment._harness import wait_for
from tests.deployment._store import DeploymentStore

#: The Airflow deployment's Celery broker: Redis database 5 (databases of its own per deployment).
AIRFLOW_BROKER = "redis://127.0.0.1:6379/5"
#: The two Celery workers: their hostnames, as Airflow records them on each task try.
WORKERS = ("celery-a", "celery-b")
#: Task processes per worker (Celery's prefork pool): 2 x 2 slots on a 2-core machine.
WORKER_CONCURRENCY = 2


def flush_broker(url: str, *, quietly: bool = False) -> None:
    """Empty the broker's Redis database; fail with a clear message when Redis is not there
    (``quietly``: leave it as it is then, as a teardown does)."""
    if quietly:
        with contextlib.suppress(AssertionError, redis.exceptions.RedisError):
            flush_broker(url)
        return
    client = redis.Redis.from_url(url, socket_connect_timeout=5)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as exc:
        raise AssertionError(
            f"Redis is not reachable at {url} ({exc}); start it with: redis-server --daemonize "
            'yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no'
        ) from None
    try:
        client.flushdb()
    finally:
        client.close()


def in_own_uts_namespace(hostname: str, command: list[str]) -> list[str]:
    """``command`` in a new UTS namespace whose hostname is ``hostname``.

    ``unshare`` execs the shell, which sets the hostname and execs ``command``: the process keeps
    the pid and process group it was started with, so :class:`ProcessGroup` still stops it.
    """
    unshare = shutil.which("unshare")
    assert unshare is not None, "unshare (util-linux) is needed to give each worker a hostname"
    assert os.geteuid() == 0, "a UTS namespace of its own per Celery worker needs root"
    return [unshare, "--uts", "sh", "-c", 'hostname "$0" && exec "$@"', hostname, *command]


class CeleryAirflowDeployment(AirflowDeployment):
    """Airflow on the CeleryExecutor: api-server, scheduler, dag-processor and two workers.

    The broker is Redis (:data:`AIRFLOW_BROKER`); Celery's results go to the deployment's own
    PostgreSQL metadata database (``db+postgresql+psycopg://``: only psycopg 3 is installed).
    No triggerer: no task defers. The export leaves out the ``etl_meta_reconcile`` maintenance DAG
    (``--reconcile-every 0``): what the store holds is then what the listener recorded in the
    workers and the scheduler, with nothing reconciled afterwards.
    """

    export_options = ("--retry-delay", "1", "--reconcile-every", "0")

    def __init__(self, store: DeploymentStore, postgres: PostgresServer, root: Path) -> None:
        super().__init__(store, postgres, root, label="airflow_celery")
        result_backend = make_url(self.metadata_url).set(drivername="postgresql+psycopg")
        self.env.update(
            AIRFLOW__CORE__EXECUTOR="CeleryExecutor",
            AIRFLOW__CELERY__BROKER_URL=AIRFLOW_BROKER,
            AIRFLOW__CELERY__RESULT_BACKEND="db+"
            + result_backend.render_as_string(hide_password=False),
            AIRFLOW__CELERY__WORKER_CONCURRENCY=str(WORKER_CONCURRENCY),
        )

    def commands(self) -> dict[str, list[str]]:
        commands = super().commands()
        del commands["triggerer"]
        for hostname in WORKERS:
            # --skip-serve-logs: both workers would bind the same log-server port; task logs
            # are files in the shared log folder, which the api-server reads itself.
            worker = [str(AIRFLOW), "celery", "worker", "--celery-hostname", hostname]
            worker += ["--concurrency", str(WORKER_CONCURRENCY), "--skip-serve-logs"]
            commands[f"worker-{hostname}"] = in_own_uts_namespace(hostname, worker)
        return commands

    def start(self, dags: tuple[str, ...]) -> CeleryAirflowDeployment:
        flush_broker(AIRFLOW_BROKER)
        super().start(dags)
        try:
            for hostname in WORKERS:
                # Both workers consume before the first run is triggered: either could take
                # any task, and the test checks that both did.
                wait_for(
                    f"Celery worker {hostname} to be ready",
                    lambda hostname=hostname: self._worker_ready(hostname),
                    timeout=120,
                    interval=1,
                    on_timeout=self.log_tails,
                )
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        super().stop()
        flush_broker(AIRFLOW_BROKER, quietly=True)  # no task left for a later session

    def _worker_ready(self, hostname: str) -> bool | None:
        self.check_alive()
        log = self.root / f"worker-{hostname}.log"
        text = log.read_text(encoding="utf-8", errors="replace") if log.exists() else ""
        return True if f"celery@{hostname} ready" in text else None
