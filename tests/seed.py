"""Put rows in every table through the store, the way real use would."""

from __future__ import annotations

from datetime import timedelta

from etl_meta import MetadataStore
from etl_meta.repository import rollups
from tests.factories import T0


def seed_every_table(store: MetadataStore) -> None:
    store.dataclasses.create(
        {
            "name": "orders",
            "schema_definition": {"columns": {"order_id": "int64", "amount": "float64"}},
            "validation_rules": {"not_null": ["order_id"]},
        }
    )
    store.jobs.create(
        {
            "name": "daily_sales",
            "num_of_retries": 2,
            "file_logging": True,
            "strategy_type": "parallel",
            "max_concurrency": 2,
            "tags": {"team": "finance", "env": "prod"},
            "components": [
                {
                    "name": "extract",
                    "component_type": "read_csv",
                    "configuration": {"path": "orders.csv"},
                    "outputs": ["orders"],
                },
                {
                    "name": "load",
                    "component_type": "write_table",
                    "configuration": {
                        "table": "orders",
                        "connection_url": "postgresql://etl@warehouse/dw",
                        "password": "pw",
                    },
                    "depends_on": ["extract"],
                    "inputs": ["orders"],
                },
            ],
        }
    )
    store.components.update("daily_sales", "extract", {"configuration": {"path": "v2.csv"}})
    store.executions.upsert(
        {
            "job": "daily_sales",
            "orchestrator": "dagster",
            "external_run_id": "run-1",
            "status": "success",
            "started_at": T0,
            "ended_at": T0 + timedelta(seconds=9),
            "config_versions": {"extract": 2, "load": 1},
            "tags": {"dagster/schedule_name": "daily", "conf.db_password": "pw"},
        },
        steps=[
            {"component": "extract", "attempt": 1, "status": "failed", "error": "io"},
            {"component": "extract", "attempt": 2, "status": "success"},
            {"component": "load", "attempt": 1, "status": "success"},
        ],
    )
    store.metrics.record(
        [("extract", "rows", 10.0, 0, 2, T0), ("load", "rows", 10.0, 0, 1, T0)],
        orchestrator="dagster",
        run_id="run-1",
    )
    store.executions.tag("run-1", {"reviewed": "yes"})
    store.run_requests.create({"job": "daily_sales", "request_key": "seed"})
    store.sync_cursors.set("airflow.reconcile", {"updated_at_gte": T0.isoformat()})
    store.retention.set_default({"raw_days": 30, "rollup_days": 365, "archive": False})
    store.retention.set_job("daily_sales", {"legal_hold": True, "hold_reason": "audit 2026"})
    # A daily rollup, as the retention pass writes them (the raw points stay here: a seed).
    with store.transaction() as session:
        run_id = store.executions.resolve("run-1").id
        rollups.roll_up_runs(session, [run_id])
