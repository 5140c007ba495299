"""A component's table output is held to the dataclasses it declares it writes."""

import pandas as pd
import pytest

from etl_meta.catalog import take_snapshot
from etl_meta.components import ComponentFailed, ComponentResult, ComponentType, register
from etl_meta.runtime import RunIdentity, run_component


@register
class Emit(ComponentType):
    """Returns a small orders table; ``bad`` adds a row that breaks the rules."""

    name = "test.emit_orders"

    class Config(ComponentType.Config):
        bad: bool = False

    def run(self, context, config, inputs):
        rows = [{"order_id": 1, "amount": 10.0}, {"order_id": 2, "amount": 5.5}]
        if config.bad:
            rows.append({"order_id": 2, "amount": -1.0})
        return ComponentResult(value=pd.DataFrame(rows), metrics={"rows": len(rows)})


@pytest.fixture
def snapshot(store):
    store.dataclasses.create(
        {
            "name": "orders",
            "schema_definition": {
                "columns": {"order_id": "int64", "amount": "float64"},
                "primary_key": ["order_id"],
            },
            "validation_rules": {"ranges": {"amount": {"min": 0}}},
        }
    )
    store.jobs.create(
        {
            "name": "emit",
            "components": [
                {"name": "good", "component_type": "test.emit_orders", "outputs": ["orders"]},
                {
                    "name": "bad",
                    "component_type": "test.emit_orders",
                    "outputs": ["orders"],
                    "configuration": {"bad": True},
                },
            ],
        }
    )
    return take_snapshot(store)


def _run(store, snapshot, name):
    job = snapshot.job("emit")
    component = next(c for c in job.components if c.name == name)
    return run_component(
        store,
        job=job,
        component=component,
        inputs={},
        run=RunIdentity("manual", f"run-{name}"),
        dataclasses=snapshot.dataclasses,
    )


def test_a_conforming_output_records_its_contract_metrics(store, snapshot):
    result = _run(store, snapshot, "good")
    assert result.metrics["contract.orders.checks_failed"] == 0
    execution = store.executions.find("manual", "run-good")
    names = {p.name for p in store.metrics.list(execution_id=execution.id)}
    assert {"rows", "contract.orders.rows", "contract.orders.checks_passed"} <= names


def test_a_violating_output_fails_for_good_and_says_which_checks(store, snapshot):
    with pytest.raises(ComponentFailed) as caught:
        _run(store, snapshot, "bad")
    assert caught.value.retryable is False
    assert {(c["rule"], c["column"]) for c in caught.value.checks if not c["passed"]} == {
        ("primary_key", "order_id"),
        ("ranges", "amount"),
    }
    execution = store.executions.find("manual", "run-bad")
    recorded = {p.name: p.value for p in store.metrics.list(execution_id=execution.id)}
    assert recorded["contract.orders.checks_failed"] == 2
    assert recorded["contract.orders.failed.ranges.amount"] == 1
