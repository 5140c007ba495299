"""Failures a retry cannot fix fail an Airflow task once (``AirflowFailException``), whatever
its ``retries`` say; the task helpers do the same."""

from __future__ import annotations

import pytest
from airflow.sdk.exceptions import AirflowFailException

from etl_meta.airflow import task as task_helpers
from etl_meta.errors import ValidationError
from etl_meta.secrets import SecretDecryptError, generate_key
from tests.airflow.support import attempts, chain_job, exported_dags, fake_task_instance, run_dag
from tests.plugins import failing_job


def _tries(store, raises: str) -> dict[tuple[str, int], tuple[str, str | None]]:
    failing_job(store, raises)
    dag_run = run_dag(exported_dags(store)["failing"])
    assert dag_run.state == "failed"
    return attempts(store, dag_run.run_id)


@pytest.mark.parametrize(
    ("raises", "error"),
    [
        ("missing_file", "FileNotFoundError"),
        ("undecryptable", "SecretDecryptError"),
        ("invalid", "ValidationError"),
        ("sandbox", "SandboxError"),
    ],
)
def test_a_failure_a_retry_cannot_fix_is_tried_once(store, airflow_env, raises, error):
    recorded = _tries(store, raises)
    assert set(recorded) == {("step", 1)}
    status, message = recorded[("step", 1)]
    assert status == "failed" and message is not None and message.startswith(error)


def test_any_other_failure_uses_the_tasks_retries(store, airflow_env):
    assert set(_tries(store, "transient")) == {("step", 1), ("step", 2), ("step", 3)}


def test_component_config_fails_for_good_on_a_secret_no_key_decrypts(
    store, airflow_env, monkeypatch
):
    chain_job(store)  # b's password is encrypted with the test key
    monkeypatch.setenv("ETL_META_SECRET_KEYS", generate_key())  # the task's store: another key
    with pytest.raises(AirflowFailException) as caught:
        task_helpers.component_config({"ti": fake_task_instance(), "task": None})
    assert isinstance(caught.value.__cause__, SecretDecryptError)


def test_log_metrics_fails_for_good_on_points_the_store_refuses(store, airflow_env):
    chain_job(store)
    ti = fake_task_instance("manual__bad_points")
    with pytest.raises(AirflowFailException) as caught:
        task_helpers.log_metrics({"ti": ti, "task": None}, {"": 1.0})
    assert isinstance(caught.value.__cause__, ValidationError)
