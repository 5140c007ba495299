"""Airflow integration: stored jobs as DAGs, and a listener that records their runs in the store.

Install with ``pip install 'etl-meta[airflow]'``. Only modules of this package import Airflow,
and only those that need it: :mod:`~etl_meta.airflow.export`, :mod:`~etl_meta.airflow.handoff`
and :mod:`~etl_meta.airflow.cli` work without it. See ``docs/airflow.md``.

* :mod:`~etl_meta.airflow.export` — ``etl-meta airflow export``: the catalog snapshot and a tiny
  DAG file written into the dags folder (DAG parsing never queries the store);
* :mod:`~etl_meta.airflow.dags` — the DAG factory the generated file calls;
* :mod:`~etl_meta.airflow.operator` — one task per component, through ``run_component``;
* :mod:`~etl_meta.airflow.listener` (registered by :mod:`~etl_meta.airflow.plugin`) — DAG-run and
  task-instance hooks recording executions and attempts;
* :mod:`~etl_meta.airflow.task` — ``component_config`` / ``log_metrics`` for your own tasks.
"""
