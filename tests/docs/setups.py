"""What the documentation's examples take as given, named by ``<!-- setup: NAME -->`` markers.

Each setup gets an empty, migrated store and the file's namespace; it seeds the store and leaves
an open ``store`` (and any other name the prose assumes) in the namespace.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from etl_meta import MetadataStore

Setup = Callable[[MetadataStore, dict[str, Any]], None]


def empty_store(store: MetadataStore, namespace: dict[str, Any]) -> None:
    """An empty store, and ``started``/``ended``: when an orchestrator's run began and ended."""
    ended = datetime.now(UTC).replace(microsecond=0)
    namespace.update(store=store, started=ended - timedelta(minutes=5), ended=ended)


#: (external run id, status) of the daily_sales runs, oldest first.
DAILY_SALES_RUNS = [
    ("run-40", "success"),
    ("run-41", "success"),
    ("8a3c-run-id", "success"),
    ("run-42", "failed"),
    ("6f1c…", "failed"),
]


def daily_sales_history(store: MetadataStore, namespace: dict[str, Any]) -> None:
    """Job ``daily_sales`` (tags team=finance, env=prod; ``extract_orders -> load``) with five
    runs over the last five days, each with its step attempts and metric points; the input's
    path changed between run-41 and run-42. ``handle`` stands for the reader's own code."""
    store.jobs.create(
        {
            "name": "daily_sales",
            "num_of_retries": 2,
            "tags": {"team": "finance", "env": "prod"},
            "components": [
                {
                    "name": "extract_orders",
                    "component_type": "read_csv",
                    "configuration": {"path": "orders.csv"},
                },
                {
                    "name": "load",
                    "component_type": "write_table",
                    "depends_on": ["extract_orders"],
                    "configuration": {"table": "orders", "connection_url": "sqlite:///w.db"},
                },
            ],
        }
    )
    now = datetime.now(UTC)
    for i, (run_id, status) in enumerate(DAILY_SALES_RUNS):
        if run_id == "run-42":
            store.components.update(
                "daily_sales", "extract_orders", {"configuration": {"path": "orders_v2.csv"}}
            )
        started = now - timedelta(days=len(DAILY_SALES_RUNS) - i, minutes=10)
        ended = started + timedelta(minutes=3 + i)
        versions = {c.name: c.config_version for c in store.components.list("daily_sales")}
        run = store.executions.upsert(
            {
                "job": "daily_sales",
                "orchestrator": "dagster",
                "external_run_id": run_id,
                "status": status,
                "started_at": started,
                "ended_at": ended,
                "config_versions": versions,
            },
            steps=[
                {"component": "extract_orders", "attempt": 1, "status": "success"},
                {"component": "load", "attempt": 1, "status": status},
            ],
        )
        store.metrics.record(
            [
                {
                    "component": "extract_orders",
                    "name": "rows",
                    "value": 1200 + 10 * i,
                    "recorded_at": started + timedelta(minutes=1),
                },
                {
                    "component": "load",
                    "name": "rows_written",
                    "value": 1200 + 10 * i if status == "success" else 0,
                    "recorded_at": started + timedelta(minutes=2),
                },
            ],
            execution_id=run.id,
        )
    namespace.update(store=store, handle=lambda frame: None)


SETUPS: dict[str, Setup] = {
    "empty_store": empty_store,
    "daily_sales_history": daily_sales_history,
}
