"""Airflow integration: stored jobs as DAGs, and a listener that records their runs in the store.

Install with ``pip install 'etl-meta[airflow]'``. Only modules of this package import Airflow,
and only those that need it: the export, the CLI, the hand-offs, the listener's background writer
and the reconciliation (which talks HTTP) work without it. See ``docs/airflow.md`` and
``docs/internals/airflow-recording.md``.

* :mod:`~etl_meta.airflow.export` — ``etl-meta airflow export``: the catalog snapshot and a tiny
  DAG file written into the dags folder (DAG parsing never queries the store);
* :mod:`~etl_meta.airflow.dags` — the DAG factory the generated file calls;
* :mod:`~etl_meta.airflow.operator` — one task per component, through ``run_component``;
* :mod:`~etl_meta.airflow.listener` (registered by :mod:`~etl_meta.airflow.plugin`) — DAG-run and
  task-instance hooks recording executions and attempts;
* :mod:`~etl_meta.airflow.background` — the bounded queue, writer thread and circuit breaker
  that keep the DAG-run hooks off the store;
* :mod:`~etl_meta.airflow.xcom` — metrics the store missed, handed off to XCom;
* :mod:`~etl_meta.airflow.task` — ``component_config`` / ``log_metrics`` for your own tasks;
* :mod:`~etl_meta.airflow.reconcile` (with :mod:`~etl_meta.airflow.rest`,
  :mod:`~etl_meta.airflow.reconcile_rows`, :mod:`~etl_meta.airflow.connection`) — ``etl-meta
  airflow reconcile``, from Airflow's REST API v2;
* :mod:`~etl_meta.airflow.maintenance` — the ``etl_meta_reconcile`` DAG that runs it.
"""
