"""A running location keeps serving its snapshot until it is reloaded, then serves the store's
new revision (notes/dagster.md: nothing reloads when the store changes)."""

from __future__ import annotations

import time

import pytest
from dagster_graphql import ReloadRepositoryLocationStatus

from tests.dagster._server import LOCATION
from tests.dagster.conftest import DagsterDevServer

pytestmark = [
    pytest.mark.slow,
    # dagster_graphql's client still passes variables the way gql 4 deprecates.
    pytest.mark.filterwarnings("ignore:Using variable_values:DeprecationWarning"),
]

# Not launched by the e2e tests, which share this server.
JOB = "customer_quality_report"


def test_reload_serves_the_new_revision(dagster_dev: DagsterDevServer) -> None:
    server = dagster_dev.server
    with dagster_dev.store() as store:
        before = store.jobs.get(JOB)
        served = server.job_tags(JOB)
        assert served["etl_meta/revision"] == str(before.revision)
        assert served["etl_meta/job"] == JOB

        after = store.jobs.update(JOB, {"num_of_retries": before.num_of_retries + 2})
        assert after.revision > before.revision

    # The store changed; the location has not noticed (and must not, until it is reloaded).
    time.sleep(1)
    assert server.job_tags(JOB) == served

    result = server.client().reload_repository_location(LOCATION)
    assert result.status == ReloadRepositoryLocationStatus.SUCCESS, result.message

    reloaded = server.job_tags(JOB)
    assert reloaded["etl_meta/revision"] == str(after.revision)
    assert reloaded["etl_meta/catalog_revision"] != served["etl_meta/catalog_revision"]

    # Only the revision-bearing tags moved; the job's own tags are untouched.
    def others(tags: dict[str, str]) -> dict[str, str]:
        return {key: value for key, value in tags.items() if "revision" not in key}

    assert others(reloaded) == others(served)


def test_status_shows_a_stale_location_and_reload_brings_it_up_to_date(
    dagster_dev: DagsterDevServer,
) -> None:
    import json

    from typer.testing import CliRunner

    from etl_meta.cli import app

    runner = CliRunner()
    common = ["--url", dagster_dev.server.url, "--database-url", dagster_dev.store_url]

    def status(exit_code: int) -> dict:
        # 0 up to date, 1 stale (docs/cli.md): scripts can tell without parsing the output.
        result = runner.invoke(app, ["dagster", "status", *common, "--format", "json"])
        assert result.exit_code == exit_code, result.output
        return json.loads(result.output)

    with dagster_dev.store() as store:
        store.jobs.update(JOB, {"description": f"changed at {time.time()}"})
    stale = status(1)
    assert stale["up_to_date"] is False and stale["stale_jobs"] == [JOB]
    assert stale["jobs_not_loadable"] == []

    reloaded = runner.invoke(app, ["dagster", "reload", "--url", dagster_dev.server.url])
    assert reloaded.exit_code == 0, reloaded.output
    assert "reloaded 'etl_meta'" in reloaded.output
    fresh = status(0)
    assert fresh["up_to_date"] is True and fresh["stale_jobs"] == []
    assert fresh["loaded_catalog_revision"] == fresh["store_catalog_revision"]
