"""The etl-meta Airflow plugin: registers :mod:`etl_meta.airflow.listener`.

Airflow discovers it through the ``airflow.plugins`` entry point (``etl_meta``) in every process
that loads plugins — scheduler, API server, dag-processor, task processes — once
``etl-meta[airflow]`` is installed in that environment. Nothing else is needed to enable it;
``airflow plugins`` lists it.
"""

from __future__ import annotations

from airflow.plugins_manager import AirflowPlugin

from etl_meta.airflow import listener


class EtlMetaPlugin(AirflowPlugin):
    """Records etl-meta DAG runs and task tries in the store (see ``docs/airflow.md``)."""

    name = "etl_meta"
    listeners = [listener]
