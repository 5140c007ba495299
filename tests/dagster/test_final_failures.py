"""Failures a retry cannot fix fail a Dagster step once, whatever the job's retry policy says."""

from __future__ import annotations

import pytest

from tests.dagster.support import chain_job, dagster_env, definitions, run
from tests.plugins import failing_job


@pytest.fixture
def instance(monkeypatch, store_url, tmp_path):
    with dagster_env(monkeypatch, store_url, tmp_path) as instance:
        yield instance


def _attempts(store, instance, raises: str) -> int:
    failing_job(store, raises)
    result = run(definitions(store).resolve_job_def("failing"), instance)
    assert not result.success
    (stats,) = instance.get_run_step_stats(result.run_id)
    return stats.attempts


@pytest.mark.parametrize("raises", ["missing_file", "undecryptable", "invalid", "sandbox"])
def test_a_failure_a_retry_cannot_fix_is_attempted_once(store, instance, raises):
    assert _attempts(store, instance, raises) == 1


def test_any_other_failure_uses_the_jobs_retries(store, instance):
    assert _attempts(store, instance, "transient") == 3


def test_a_secret_no_configured_key_decrypts_fails_the_step_once(store, instance, monkeypatch):
    chain_job(store)  # b's password is encrypted with the test key
    from etl_meta.secrets import generate_key

    monkeypatch.setenv("ETL_META_SECRET_KEYS", generate_key())  # the op's store: another key
    result = run(definitions(store).resolve_job_def("chain"), instance)
    assert not result.success
    stats = {s.step_key: s.attempts for s in instance.get_run_step_stats(result.run_id)}
    assert stats["b"] == 1  # the job allows 2 retries; a third key would not appear meanwhile
