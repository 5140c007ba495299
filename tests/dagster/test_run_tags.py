"""Dagster run tags reach the store with the run: through the status sensor and reconciliation,
etl-meta's own and Dagster's hidden tags left out, secrets masked, replays inert."""

import pytest

from etl_meta.masking import MASK
from tests.dagster.support import (
    chain_job,
    dagster_env,
    definitions,
    fire_success_sensor,
    reconcile_tick,
    run,
)

TAGS = {
    "team": "growth",
    "dagster/partition": "2026-12-01",
    "warehouse_password": "hunter2",
    "source": "postgresql://etl:hunter2@db/x",
}


@pytest.fixture
def instance(monkeypatch, store_url, tmp_path):
    with dagster_env(monkeypatch, store_url, tmp_path) as instance:
        yield instance


def test_the_status_sensor_records_the_runs_tags_masked(store, instance):
    chain_job(store)
    result = run(definitions(store).resolve_job_def("chain"), instance, tags=TAGS)
    assert result.success
    fire_success_sensor(instance, result)
    execution = store.executions.find("dagster", result.run_id)
    assert execution.tags == {
        "dagster/partition": "2026-12-01",
        "source": "postgresql://etl:***@db/x",
        "team": "growth",
        "warehouse_password": MASK,
    }
    assert not [key for key in execution.tags if key.startswith(("etl_meta/", "."))]
    assert "hunter2" not in repr(store.audit.list(limit=100))
    assert [r.id for r in store.executions.list(tags={"team": "growth"})] == [execution.id]


def test_reconciliation_writes_the_same_tags_and_leaves_a_persons_tag_alone(store, instance):
    chain_job(store)
    result = run(definitions(store).resolve_job_def("chain"), instance, tags={"team": "growth"})
    reconcile_tick(instance)
    assert store.executions.find("dagster", result.run_id).tags == {"team": "growth"}
    store.executions.tag(result.run_id, {"team": "finance", "reviewed": "yes"})
    events = len(store.audit.list(limit=1000))
    fire_success_sensor(instance, result)  # a late replay of the same run
    assert store.executions.find("dagster", result.run_id).tags == {
        "reviewed": "yes",
        "team": "finance",
    }
    assert len(store.audit.list(limit=1000)) == events
