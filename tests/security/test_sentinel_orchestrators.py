"""Issue #6 "never shown", under real orchestrators: a real Dagster run and a real Airflow DAG run.

A stored job whose configuration holds the sentinel at every kind of secret position runs for
real (no mocks): on a Dagster instance with on-disk storage, and under Airflow's ``dag.test()``
with its metadata database. Afterwards everything either orchestrator kept is searched: event
records, run config and tags, job snapshots and the launchpad's default config, compute and file
logs, Airflow's task logs, rendered fields and XComs, the exported DAG file and catalog, the
store's execution row, and every log record of the test at DEBUG. The secret must be found only
in the running component (which records its sha256 in ``PROOF``).
"""

# Airflow reads its configuration on first import: tests/airflow/conftest.py points it at a
# throwaway home, database and dags folder. Import it (and its fixtures) before anything else.
from tests.airflow.conftest import airflow_db, airflow_env  # noqa: F401, I001

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import dagster as dg
import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from dagster_defs.jobs import TAG_JOB
from dagster_defs.loader import definitions_from_catalog
from dagster_defs.recording import record_run
from dagster_defs.resources import EtlMetaResource
from etl_meta import MetadataStore
from etl_meta.catalog import take_snapshot
from etl_meta.cli import app
from etl_meta.runtime import run_log_path
from etl_meta.config import get_settings
from etl_meta.masking import MASK
from tests.airflow.conftest import ROOT as AIRFLOW_ROOT
from tests.airflow.support import dags_folder, exported_dags, run_dag
from tests.dagster._server import write_dagster_home
from tests.security.sentinel import (
    PROOF,
    Corpus,
    Sentinel,
    all_logs_at_debug,
    expected_proof,
    probe_configuration,
    sha256,
)


pytestmark = pytest.mark.filterwarnings(
    # Airflow's in-process API client (tests/airflow/conftest.py filters the same warning there).
    "ignore:.*starlette.testclient",
    # Dagster's own sensor definitions pass a beta parameter.
    "ignore::dagster.BetaWarning",
)


def _store_job(store: MetadataStore, name: str, sentinel: Sentinel) -> dict[str, Any]:
    """The probe, then a ``python`` step, both holding secrets; returns the probe's config."""
    probe = probe_configuration(sentinel, name)
    store.jobs.create(
        {
            "name": name,
            "file_logging": True,
            "components": [
                {"name": "probe", "component_type": "test.sentinel_probe", "configuration": probe},
                {
                    "name": "call",
                    "component_type": "python",
                    "configuration": {
                        "callable": "tests.security.sentinel:probe_function",
                        "kwargs": {
                            "password": sentinel.value(f"{name}-python"),
                            "region": sentinel.marker,
                        },
                    },
                    "depends_on": ["probe"],
                },
            ],
        }
    )
    return probe


def _assert_received(
    orchestrator: str, job: str, probe: dict[str, Any], sentinel: Sentinel
) -> None:
    """The positive control: the running components got the real secrets, nothing masked."""
    assert PROOF.get(f"{orchestrator}:{job}.probe") == expected_proof(probe)
    assert PROOF.get(f"{orchestrator}:{job}.call") == {
        "password": sha256(sentinel.value(f"{job}-python"))
    }


def _add_store_rows(corpus: Corpus, store: MetadataStore) -> None:
    """The store's own record of the run: what orchestrators reported, raw and as shown."""
    with store.engine.connect() as connection:
        tables = ("execution", "component_execution", "run_request", "audit_event")
        for table in (*tables, "metric_name", "metric_series", "metric_point"):
            rows = connection.execute(sa.text(f"SELECT * FROM {table}")).all()
            corpus.add(f"store table {table}", [tuple(row) for row in rows])
    for run in store.executions.list():
        corpus.add(f"store execution {run.external_run_id}", run.model_dump_json())
    events = store.audit.list(limit=1000)  # decrypt events and run actors included
    assert events
    for event in events:
        corpus.add(
            f"store audit {event.id} {event.action} by {event.actor}", event.model_dump_json()
        )


@pytest.fixture(autouse=True)
def _probe_module_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator allow-lists the probe's module, as they would their project's own code."""
    monkeypatch.setenv("ETL_META_SANDBOX_CALLABLE_MODULES", "tests.security.sentinel")


@pytest.fixture
def sentinel() -> Sentinel:
    return Sentinel()


@pytest.fixture
def logs() -> Iterator[list[str]]:
    with all_logs_at_debug() as lines:
        yield lines


# -- Dagster -------------------------------------------------------------------------------------


@pytest.fixture
def dagster_home(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A real on-disk Dagster instance (DAGSTER_HOME, telemetry off) and the resource's env."""
    home = write_dagster_home(tmp_path / "dagster_home")
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("ETL_META_DATABASE_URL", store_url)
    monkeypatch.setenv("ETL_META_HOME", str(tmp_path / "etl_meta_home"))
    monkeypatch.setenv("ETL_META_ECHO_SQL", "true")
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


def test_a_real_dagster_run_shows_the_secret_only_to_the_running_component(
    store: MetadataStore,
    sentinel: Sentinel,
    dagster_home: Path,
    logs: list[str],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    job_name = "sentinel_dagster"
    probe = _store_job(store, job_name, sentinel)
    request = store.run_requests.create(
        {
            "job": job_name,
            "orchestrator": "dagster",
            # Run-time overrides may only echo secrets masked (a real one is refused, see
            # test_secret_overrides.py): the echo reaches the op, which runs with the stored ones.
            "run_config": {
                "probe": {"password": MASK, "api_token": MASK, "region": sentinel.marker}
            },
        }
    )
    corpus = Corpus(sentinel)
    defs = definitions_from_catalog(take_snapshot(store))
    job = defs.resolve_job_def(job_name)
    # The launchpad: the job's default run config and its config schema, and the job snapshot.
    corpus.add("job default run config", json.dumps(job.run_config, default=str))
    corpus.add("job config schema snapshot", dg.serialize_value(job.get_config_schema_snapshot()))
    corpus.add("job snapshot", dg.serialize_value(job.get_job_snapshot()))
    corpus.add("job tags and metadata", repr((job.tags, job.metadata, job.description)))
    assert job.run_config["ops"]["probe"]["config"]["password"] == MASK
    assert job.run_config["ops"]["probe"]["config"]["region"] == sentinel.marker

    PROOF.pop(f"dagster:{job_name}.probe", None)
    PROOF.pop(f"dagster:{job_name}.call", None)
    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        # The store's run request becomes a Dagster run request: its secrets masked.
        sensor = defs.resolve_sensor_def("etl_meta_run_requests")
        with dg.build_sensor_context(
            instance=instance, resources={"etl_meta": EtlMetaResource()}
        ) as context:
            tick = sensor.evaluate_tick(context)
        (wanted,) = tick.run_requests
        corpus.add("sensor run request", dg.serialize_value(wanted))
        assert wanted.run_config["ops"]["probe"]["config"]["password"] == MASK
        # Launched as the daemon would: with the request's run config and tags.
        result = job.execute_in_process(
            instance=instance, run_config=wanted.run_config, tags=wanted.tags, raise_on_error=False
        )
        assert result.success, [e.message for e in result.all_events if e.is_failure]
        run_id = result.run_id
        _assert_received("dagster", job_name, probe, sentinel)
        record_run(store, instance, run_id)  # what the run-status sensors do
        assert store.run_requests.get(request.id).external_run_id == run_id

        records = instance.all_logs(run_id)
        assert len(records) > 10
        for number, record in enumerate(records):
            corpus.add(f"event {number} {record.dagster_event_type}", dg.serialize_value(record))
            corpus.add(f"event {number} str", str(record))
        run = instance.get_run_by_id(run_id)
        assert run is not None and run.tags[TAG_JOB] == job_name
        corpus.add("run config", json.dumps(run.run_config, default=str))
        corpus.add("run tags", json.dumps(run.tags))
        corpus.add("run", dg.serialize_value(run))
        corpus.add(
            "run job snapshot", dg.serialize_value(instance.get_job_snapshot(run.job_snapshot_id))
        )
        corpus.add(
            "run execution plan",
            dg.serialize_value(
                instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
            ),
        )
        corpus.add("step stats", dg.serialize_value(instance.get_run_step_stats(run_id)))
        corpus.add("outputs", repr({n: result.output_for_node(n) for n in ("probe", "call")}))
    # The CLI that runs without a server: record the instance's runs, and run the job again.
    # `dagster run` launches with the job's default (masked) run config: the op gets the whole
    # masked configuration back as overrides, and must still resolve every secret.
    runner = CliRunner()
    PROOF.pop(f"dagster:{job_name}.probe", None)
    PROOF.pop(f"dagster:{job_name}.call", None)
    for argv in (["dagster", "reconcile"], ["dagster", "run", job_name]):
        invoked = runner.invoke(app, argv)
        assert invoked.exit_code == 0, invoked.output
        corpus.add(f"cli: etl-meta {' '.join(argv)}", invoked.output)
    _assert_received("dagster", job_name, probe, sentinel)
    # Everything Dagster wrote: run and event storage, compute logs, schedules (SQLite, zlib'd).
    assert corpus.add_tree("dagster home", dagster_home) >= 3
    assert any("compute_logs" in where for where in corpus.wheres()), "no compute logs searched"
    log_file = run_log_path(tmp_path / "etl_meta_home", job_name, run_id)
    assert log_file.is_file() and "probe probe ran in region" in log_file.read_text()
    corpus.add_file("file_logging log", log_file)
    execution = store.executions.find("dagster", run_id)
    assert execution is not None and execution.run_config is not None
    assert execution.run_config["ops"]["probe"]["config"]["password"] == MASK
    _add_store_rows(corpus, store)
    captured = capfd.readouterr()
    corpus.add("process stdout", captured.out)
    corpus.add("process stderr", captured.err)
    for number, line in enumerate(logs):
        corpus.add(f"log record {number}", line)
    assert any("STEP_SUCCESS" in line or "step_success" in line.lower() for line in logs)
    corpus.assert_clean(min_items=100, min_chars=100_000)


def test_a_run_request_reaches_dagster_with_every_declared_secret_masked(
    store: MetadataStore, sentinel: Sentinel, dagster_home: Path
) -> None:
    """Keys only the component's type declares secret are masked on the way into Dagster too."""
    job_name = "sentinel_declared"
    _store_job(store, job_name, sentinel)
    store.run_requests.create(
        {
            "job": job_name,
            # The probe may only echo its own secret masked (a real one is refused); the
            # ``python`` step does not declare connection_url (its contract takes it only among
            # its function's kwargs), but write_table does.
            "run_config": {
                "probe": {"conn": MASK, "region": sentinel.marker},
                "call": {"kwargs": {"connection_url": sentinel.value("request-url")}},
            },
        }
    )
    defs = definitions_from_catalog(take_snapshot(store))
    corpus = Corpus(sentinel)
    sensor = defs.resolve_sensor_def("etl_meta_run_requests")
    with (
        dg.DagsterInstance.from_config(str(dagster_home)) as instance,
        dg.build_sensor_context(
            instance=instance, resources={"etl_meta": EtlMetaResource()}
        ) as context,
    ):
        tick = sensor.evaluate_tick(context)
    (wanted,) = tick.run_requests
    assert wanted.run_config["ops"]["probe"]["config"] == {"conn": MASK, "region": sentinel.marker}
    assert wanted.run_config["ops"]["call"]["config"] == {"kwargs": {"connection_url": MASK}}
    corpus.add("sensor run request", dg.serialize_value(wanted))
    corpus.add("sensor tick", repr(tick))
    corpus.assert_clean(min_chars=200)


# -- Airflow -------------------------------------------------------------------------------------


def _airflow_rows_of_run(dag_id: str, run_id: str) -> dict[str, int]:
    """How many rows Airflow's metadata database holds for this DAG run, per table."""
    engine = sa.create_engine(f"sqlite:///{AIRFLOW_ROOT / 'airflow.db'}")
    counts = {}
    try:
        with engine.connect() as connection:
            for table in ("rendered_task_instance_fields", "xcom", "task_instance", "dag_run"):
                counts[table] = connection.execute(
                    sa.text(f"SELECT count(*) FROM {table} WHERE dag_id = :dag AND run_id = :run"),
                    {"dag": dag_id, "run": run_id},
                ).scalar_one()
    finally:
        engine.dispose()
    return counts


def test_a_real_airflow_run_shows_the_secret_only_to_the_running_component(
    store: MetadataStore,
    sentinel: Sentinel,
    airflow_env: Path,  # noqa: F811  (the fixture imported above)
    logs: list[str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    job_name = "sentinel_airflow"
    probe = _store_job(store, job_name, sentinel)
    corpus = Corpus(sentinel)
    dag = exported_dags(store)[job_name]
    PROOF.pop(f"airflow:{job_name}.probe", None)
    PROOF.pop(f"airflow:{job_name}.call", None)
    # A masked override in the run conf means "the stored value" (secrets never travel there).
    dag_run = run_dag(dag, run_conf={"components": {"probe": {"password": MASK}}})
    assert dag_run.state == "success"
    _assert_received("airflow", job_name, probe, sentinel)

    corpus.add("dag doc_md", dag.doc_md)
    for task in dag.tasks:
        corpus.add(f"task {task.task_id} doc_md", task.doc_md)
        corpus.add(
            f"task {task.task_id} templated fields",
            {name: getattr(task, name, None) for name in task.template_fields},
        )
    counts = _airflow_rows_of_run(job_name, dag_run.run_id)
    # The tables searched hold this run: both tasks and their XComs (the hand-off paths), and
    # rendered fields for every task that has template fields (none today: the configuration is
    # not templated, so Airflow renders nothing of it).
    assert counts["task_instance"] == 2 and counts["xcom"] >= 2, counts
    if any(task.template_fields for task in dag.tasks):
        assert counts["rendered_task_instance_fields"] >= 1, counts
    # Task logs, the dags folder (DAG file and catalog snapshot), everything under AIRFLOW_HOME.
    # Airflow's metadata database (every row of every table: rendered fields, XComs, DAG runs and
    # their conf, serialized DAGs, DAG code), the dags folder, AIRFLOW_HOME. Under dag.test() task
    # logs go through logging (captured below), not into log files.
    assert corpus.add_tree("airflow root", AIRFLOW_ROOT) >= 3
    assert sentinel.marker in corpus.text("airflow root/dags")
    assert (dags_folder() / "etl_meta_catalog.json").is_file()
    # etl-meta's side: the run's file log and the hand-off files under ETL_META_HOME.
    assert corpus.add_tree("etl-meta home", airflow_env) >= 2
    assert "probe probe ran in region" in corpus.text("etl-meta home/logs")
    execution = store.executions.find("airflow", dag_run.run_id)
    assert execution is not None and execution.status == "success"
    _add_store_rows(corpus, store)
    captured = capfd.readouterr()
    corpus.add("process stdout", captured.out)
    corpus.add("process stderr", captured.err)
    for number, line in enumerate(logs):
        corpus.add(f"log record {number}", line)
    # The task's own log stream was captured: the component's line and Airflow's task records.
    assert any("probe probe ran in region" in line for line in logs)
    assert any("airflow.task" in line or "task_instance" in line for line in logs)
    corpus.assert_clean(min_items=100, min_chars=100_000)
