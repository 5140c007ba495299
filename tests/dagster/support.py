"""Test component types and helpers for in-process Dagster tests (not collected as tests)."""

from __future__ import annotations

import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import dagster as dg

from dagster_defs.loader import definitions_from_catalog
from etl_meta import MetadataStore
from etl_meta.catalog import take_snapshot
from etl_meta.components import ComponentResult, ComponentType, register

warnings.filterwarnings("ignore", category=dg.BetaWarning)
warnings.filterwarnings("ignore", category=dg.PreviewWarning)

#: Attempts each flaky component fails before it succeeds (class-level: shared per process).
FAIL_FIRST: dict[str, int] = {}
SEEN_CONFIG: dict[str, dict] = {}


@register
class AddType(ComponentType):
    """Sums its inputs plus ``n``; records what configuration it saw."""

    name = "test.add"

    class Config(ComponentType.Config):
        n: int = 0
        password: str = ""
        fail_first: int = 0

    def run(self, context, config, inputs):
        SEEN_CONFIG[context.component] = config.model_dump()
        if context.attempt <= config.fail_first:
            raise ConnectionError(f"simulated outage in {context.component}")
        total = config.n + sum(inputs.values())
        context.record_metrics({"inputs": len(inputs)})
        return ComponentResult(value=total, metrics={"total": total}, metadata={"row_count": total})


def chain_job(store: MetadataStore, name: str = "chain", **fields) -> None:
    """``a`` and ``c`` feed ``b``; ``b`` fails once when ``fail_first`` is set on it."""
    store.jobs.create(
        {
            "name": name,
            "num_of_retries": fields.pop("num_of_retries", 2),
            **fields,
            "components": [
                {"name": "a", "component_type": "test.add", "configuration": {"n": 1}},
                {"name": "c", "component_type": "test.add", "configuration": {"n": 10}},
                {
                    "name": "b",
                    "component_type": "test.add",
                    "configuration": {"n": 100, "password": "pw-secret", "fail_first": 1},
                    "depends_on": ["a", "c"],
                },
            ],
        }
    )


def definitions(store: MetadataStore) -> dg.Definitions:
    return definitions_from_catalog(take_snapshot(store))


@contextmanager
def dagster_env(monkeypatch, store_url: str, tmp_path) -> Iterator[dg.DagsterInstance]:
    """The environment the resource reads, and a throwaway Dagster instance."""
    monkeypatch.setenv("ETL_META_DATABASE_URL", store_url)
    monkeypatch.setenv("ETL_META_HOME", str(tmp_path))
    with dg.instance_for_test() as instance:
        yield instance


def run(job: dg.JobDefinition, instance: dg.DagsterInstance, **kwargs) -> dg.ExecuteInProcessResult:
    return job.execute_in_process(instance=instance, raise_on_error=False, **kwargs)


def fire_success_sensor(instance: dg.DagsterInstance, result: dg.ExecuteInProcessResult) -> None:
    """Tick ``etl_meta_on_run_success`` for ``result``'s run, as the daemon would."""
    from dagster_defs.resources import EtlMetaResource
    from dagster_defs.sensors import status_sensors

    sensor = next(s for s in status_sensors() if s.name == "etl_meta_on_run_success")
    with dg.build_run_status_sensor_context(
        sensor_name=sensor.name,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        dagster_event=result.get_run_success_event(),
        resources={"etl_meta": EtlMetaResource()},
    ) as context:
        sensor(context)


def reconcile_tick(instance: dg.DagsterInstance, cursor: str | None = None) -> Any:
    """One tick of the ``etl_meta_reconcile`` sensor, as the daemon would run it."""
    from dagster_defs.resources import EtlMetaResource
    from dagster_defs.sensors import reconcile_sensor

    with dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"etl_meta": EtlMetaResource()}
    ) as context:
        return reconcile_sensor.evaluate_tick(context)
