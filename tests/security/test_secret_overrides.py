"""Run-time overrides cannot change a secret (issue #17, item 5).

An orchestrator's run config (Dagster's ``ops.<component>.config``, Airflow's DAG-run
``conf={"components": ...}``, a run request's ``run_config``) may override plain values. A secret
(declared by the type's contract, or sensitive by name, at any depth) may only be echoed back as
shown (``***``, or a URL secret's stored URL masked), which means "the stored value". Anything else
is refused naming the field, before the component runs and before anything is written.
"""

# Airflow reads its configuration on first import: tests/airflow/conftest.py points it at a
# throwaway home, database and dags folder. Import it (and its fixtures) before anything else.
from tests.airflow.conftest import airflow_db, airflow_env  # noqa: F401, I001

from pathlib import Path
from types import SimpleNamespace
from typing import Any

import dagster as dg
import pytest

from etl_meta import MetadataStore
from etl_meta.analytics import metrics_frame
from etl_meta.components import ComponentResult, ComponentType, register
from etl_meta.components.contracts import SecretText, SecretURL
from etl_meta.components.overrides import resolve_configuration
from etl_meta.errors import ValidationError
from etl_meta.masking import MASK, SECRET_OVERRIDE_MESSAGE
from tests.airflow.support import attempts, exported_dags, run_dag
from tests.dagster.support import dagster_env, definitions, run

TYPE = "test.secret_overrides"
URL = "postgresql://etl:s3cret-url-pw@warehouse/db"
SHOWN_URL = "postgresql://etl:***@warehouse/db"
PASSWORD = "s3cret-pw-91d"
#: ``"<orchestrator>:<job>.<component>" -> the configuration the component received``.
RAN: dict[str, dict[str, Any]] = {}

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*starlette.testclient", "ignore::dagster.BetaWarning"
)


@register
class SecretOverrides(ComponentType):
    """Records the configuration it ran with; its contract declares three secrets."""

    name = TYPE

    class Config(ComponentType.Config):
        n: int = 0
        connection_url: SecretURL
        password: SecretText | None = None
        conn: SecretText | None = None  # secret by contract only: the name is on no list
        options: dict[str, Any] = {}

    def run(self, context: Any, config: Any, inputs: Any) -> ComponentResult:
        RAN[f"{context.orchestrator}:{context.job}.{context.component}"] = {
            "n": config.n,
            "connection_url": config.connection_url.get_secret_value(),
            "password": config.password.get_secret_value() if config.password else None,
        }
        return ComponentResult(value=config.n, metrics={"n": float(config.n)})


STORED = {"n": 1, "connection_url": URL, "password": PASSWORD, "options": {"region": "eu"}}


def _refused(overrides: dict[str, Any], stored: dict[str, Any] | None = None) -> set[str]:
    with pytest.raises(ValidationError) as caught:
        resolve_configuration(stored or STORED, overrides, component_type=TYPE)
    assert all(p.message == SECRET_OVERRIDE_MESSAGE for p in caught.value.problems)
    for value in (PASSWORD, URL, "new-secret", "s3cret-url-pw"):
        assert value not in str(caught.value)
    return {p.field for p in caught.value.problems}


# -- resolve_configuration -------------------------------------------------------------------


def test_echoing_the_masked_configuration_means_the_stored_secrets() -> None:
    shown = {"n": 2, "connection_url": SHOWN_URL, "password": MASK, "options": {"region": "us"}}
    assert resolve_configuration(STORED, shown, component_type=TYPE) == {
        **STORED,
        "n": 2,
        "options": {"region": "us"},
    }
    # A mask with nothing stored is dropped; a URL without a password is shown (so echoed) whole.
    plain_url = "postgresql://etl@warehouse/db"
    assert resolve_configuration(
        {"connection_url": plain_url},
        {"connection_url": plain_url, "conn": MASK},
        component_type=TYPE,
    ) == {"connection_url": plain_url}


@pytest.mark.parametrize(
    ("overrides", "fields"),
    [
        ({"password": "new-secret"}, {"configuration.password"}),
        ({"password": PASSWORD}, {"configuration.password"}),  # no oracle for guesses
        ({"password": None}, {"configuration.password"}),
        ({"conn": "new-secret"}, {"configuration.conn"}),  # declared by the contract only
        ({"pаssword": "new-secret"}, {"configuration.pаssword"}),  # Cyrillic а
        # A URL keeping *** as its password but naming another host would send it there.
        (
            {"connection_url": "postgresql://etl:***@attacker.example/db"},
            {"configuration.connection_url"},
        ),
        (
            {"connection_url": "postgresql://other:***@warehouse/db"},
            {"configuration.connection_url"},
        ),
        (
            {"connection_url": "postgresql://etl:new-secret@warehouse/db"},
            {"configuration.connection_url"},
        ),
        ({"connection_url": URL}, {"configuration.connection_url"}),
        ({"connection_url": "postgresql://warehouse/db"}, {"configuration.connection_url"}),
        # Sensitive by name at any depth, list items included.
        ({"options": {"auth": {"token": "new-secret"}}}, {"configuration.options.auth"}),
        (
            {"options": {"nested": {"api_token": "new-secret"}}},
            {"configuration.options.nested.api_token"},
        ),
        (
            {"options": {"targets": [{"api_key": "new-secret"}]}},
            {"configuration.options.targets.0.api_key"},
        ),
        (
            {"n": 3, "password": "new-secret", "conn": "x", "options": {"region": "us"}},
            {"configuration.password", "configuration.conn"},
        ),
    ],
)
def test_an_override_of_a_secret_is_refused_naming_the_field(
    overrides: dict[str, Any], fields: set[str]
) -> None:
    assert _refused(overrides) == fields


def test_a_secret_the_type_is_unknown_for_counts_every_declared_key() -> None:
    with pytest.raises(ValidationError) as caught:
        resolve_configuration({"conn": "x"}, {"conn": "new-secret"})
    assert caught.value.field == "configuration.conn"


# -- run requests ----------------------------------------------------------------------------


def _job(store: MetadataStore, name: str, *, num_of_retries: int = 0) -> None:
    store.jobs.create(
        {
            "name": name,
            "num_of_retries": num_of_retries,
            "components": [{"name": "load", "component_type": TYPE, "configuration": STORED}],
        }
    )


def test_a_run_request_overriding_a_secret_is_refused_and_writes_nothing(
    store: MetadataStore,
) -> None:
    _job(store, "nightly")
    audit_before = len(store.audit.list(limit=1000))
    for run_config, field in [
        ({"load": {"password": "new-secret"}}, "run_config.load.password"),
        (
            {"load": {"connection_url": "postgresql://etl:***@attacker.example/db"}},
            "run_config.load.connection_url",
        ),
        ({"load": {"options": {"token": "new-secret"}}}, "run_config.load.options.token"),
        ({"no_such_component": {"conn": "new-secret"}}, "run_config.no_such_component.conn"),
    ]:
        with pytest.raises(ValidationError) as caught:
            store.run_requests.create({"job": "nightly", "run_config": run_config})
        assert caught.value.field == field
        assert "new-secret" not in str(caught.value)
    assert store.run_requests.list() == []
    assert len(store.audit.list(limit=1000)) == audit_before
    # The masked echo (what the Launchpad shows) and plain overrides are a run request.
    echo = {"load": {"n": 5, "connection_url": SHOWN_URL, "password": MASK}}
    request = store.run_requests.create({"job": "nightly", "run_config": echo})
    assert store.run_requests.run_config(request.id) == echo


# -- Dagster -----------------------------------------------------------------------------------


@pytest.fixture
def instance(monkeypatch: pytest.MonkeyPatch, store_url: str, tmp_path: Path):
    with dagster_env(monkeypatch, store_url, tmp_path) as instance:
        yield instance


def test_a_dagster_launch_config_overriding_a_secret_fails_before_the_component_runs(
    store: MetadataStore, instance: dg.DagsterInstance
) -> None:
    _job(store, "dagster_job", num_of_retries=2)
    job = definitions(store).resolve_job_def("dagster_job")
    for config in (
        {"password": "new-secret"},
        {"connection_url": "postgresql://etl:***@attacker.example/db"},
    ):
        RAN.clear()
        result = run(job, instance, run_config={"ops": {"load": {"config": config}}})
        assert not result.success
        assert RAN == {}  # the component never ran
        (failure,) = [
            e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
        ]
        assert "a secret cannot be overridden at run time" in str(failure.step_failure_data.error)
        assert "new-secret" not in str(failure.step_failure_data.error)
        # Not retried: the same config would fail the same way.
        stats = {s.step_key: s.attempts for s in instance.get_run_step_stats(result.run_id)}
        assert stats == {"load": 1}
        # Nothing written: the op never reached the store (no run, no metric recorded).
        assert store.executions.find("dagster", result.run_id) is None


def test_the_dagster_launchpad_default_config_runs_with_the_stored_secrets(
    store: MetadataStore, instance: dg.DagsterInstance
) -> None:
    _job(store, "dagster_job")
    job = definitions(store).resolve_job_def("dagster_job")
    launchpad = job.run_config["ops"]["load"]["config"]
    assert launchpad["connection_url"] == SHOWN_URL and launchpad["password"] == MASK
    RAN.clear()
    result = run(job, instance, run_config={"ops": {"load": {"config": {**launchpad, "n": 7}}}})
    assert result.success
    assert RAN["dagster:dagster_job.load"] == {"n": 7, "connection_url": URL, "password": PASSWORD}


# -- Airflow -------------------------------------------------------------------------------------


def test_an_airflow_run_conf_overriding_a_secret_fails_the_task_without_retries(
    store: MetadataStore,
    airflow_env: Path,  # noqa: F811  (the fixture imported above)
) -> None:
    _job(store, "airflow_job", num_of_retries=2)
    dag = exported_dags(store)["airflow_job"]
    RAN.clear()
    dag_run = run_dag(dag, run_conf={"components": {"load": {"password": "new-secret"}}})
    assert dag_run.state == "failed"
    assert RAN == {}
    recorded = attempts(store, dag_run.run_id)
    assert set(recorded) == {("load", 1)}  # not retried
    status, error = recorded[("load", 1)]
    assert status == "failed" and "configuration.password" in (error or "")
    assert "new-secret" not in (error or "")
    assert metrics_frame(store, run=dag_run.run_id).empty
    # Echoing the masked URL (as the exported snapshot shows it) runs with the stored values.
    echo = {"components": {"load": {"connection_url": SHOWN_URL, "n": 3}}}
    assert run_dag(dag, run_conf=echo).state == "success"
    assert RAN["airflow:airflow_job.load"] == {"n": 3, "connection_url": URL, "password": PASSWORD}


def test_the_airflow_task_helpers_refuse_an_override_of_a_secret(
    store: MetadataStore,
    airflow_env: Path,  # noqa: F811
) -> None:
    # Through etl_meta.airflow: nothing outside it imports airflow (tests/airflow/test_isolation).
    from etl_meta.airflow import task as task_helpers

    _job(store, "own_dag")
    ti = SimpleNamespace(dag_id="own_dag", task_id="load", run_id="manual__1", try_number=1)

    def context(conf: dict[str, Any]) -> dict[str, Any]:
        return {"ti": ti, "dag_run": SimpleNamespace(conf={"components": {"load": conf}})}

    with pytest.raises(task_helpers.AirflowFailException, match=r"configuration\.conn"):
        task_helpers.component_config(context({"conn": "new-secret"}))
    assert task_helpers.component_config(context({"password": MASK, "n": 4})) == {**STORED, "n": 4}
