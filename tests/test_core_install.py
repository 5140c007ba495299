"""The core install's own path on each backend: migrate, apply the example pipeline, read it back.

`make test-core` runs the tests of the core on SQLite only (the full suite covers PostgreSQL) and
this file on PostgreSQL too, so the core install — psycopg, no extra — is proven against
PostgreSQL; it fails, never skips, when ETL_META_TEST_POSTGRES_URL names a server that is down.
"""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from etl_meta import MetadataStore
from etl_meta.cli import app

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "pipeline.yaml"
JOBS = {"customer_quality_report", "daily_sales", "inventory_snapshot"}


def _etl_meta(url: str, *args: str):
    result = CliRunner().invoke(app, [*args, "--database-url", url])
    assert result.exit_code == 0, result.output
    return result


def test_the_core_install_migrates_applies_and_reads_back(empty_url, settings):
    _etl_meta(empty_url, "db", "upgrade")
    _etl_meta(empty_url, "db", "check")
    applied = _etl_meta(empty_url, "apply", "-f", str(EXAMPLE))
    assert applied.stdout.rstrip().endswith(
        "20 created, 0 updated, 0 archived, 0 unchanged (applied)"
    )

    listed = json.loads(_etl_meta(empty_url, "jobs", "list", "--format", "json").stdout)
    assert {job["name"] for job in listed} == JOBS
    with MetadataStore(empty_url, settings=settings) as store:
        job = store.jobs.get("daily_sales")
        components = store.components.list("daily_sales")
    assert job.num_of_retries == 2
    assert "join_customers" in {component.name for component in components}
