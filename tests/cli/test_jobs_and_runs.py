"""`etl-meta jobs` and `etl-meta runs`: tables for people, JSON for programs."""

import json
from datetime import timedelta

import pytest

from tests.factories import T0

SECRET = "cli-secret-7d1e"


@pytest.fixture
def seeded(store, factory):
    job = factory.job(
        name="nightly",
        tags={"team": "data"},
        components=[
            {"name": "extract", "component_type": "read_csv", "configuration": {"path": "a.csv"}},
            {
                "name": "load",
                "component_type": "write_table",
                "depends_on": ["extract"],
                "configuration": {
                    "table": "t",
                    "connection_url": "sqlite:///out.db",
                    "password": SECRET,
                },
            },
        ],
    )
    store.executions.upsert(
        {
            "job": job.name,
            "orchestrator": "dagster",
            "external_run_id": "0f6d-run",
            "status": "failed",
            "started_at": T0,
            "ended_at": T0 + timedelta(seconds=30),
            "error": "load failed",
        },
        steps=[
            {"component": "extract", "attempt": 1, "status": "success"},
            {"component": "load", "attempt": 1, "status": "failed", "error": "conn refused"},
            {"component": "load", "attempt": 2, "status": "failed", "error": "conn refused"},
        ],
    )
    return job


def test_jobs_list_shows_each_job_with_its_last_run(cli, seeded):
    result = cli("jobs", "list")
    assert result.exit_code == 0, result.output
    assert "nightly" in result.output and "team=data" in result.output and "failed" in result.output


def test_jobs_show_prints_components_and_run_order_without_secrets(cli, seeded):
    result = cli("jobs", "show", "nightly")
    assert result.exit_code == 0, result.output
    assert "run order" in result.output and "load  ← extract" in result.output
    assert SECRET not in result.output


def test_jobs_json_is_parseable_and_masked(cli, seeded):
    for args in (("jobs", "list", "--format", "json"), ("jobs", "show", "nightly", "-f", "json")):
        result = cli(*args)
        assert result.exit_code == 0, result.output
        assert SECRET not in result.output
        data = json.loads(result.output)
        job = data[0] if isinstance(data, list) else data
        assert {c["name"] for c in job["components"]} == {"extract", "load"}
        load = next(c for c in job["components"] if c["name"] == "load")
        assert load["configuration"]["password"] == "***"
        assert job["created_at"].endswith("Z")


def test_runs_show_finds_a_run_by_the_orchestrator_id_with_every_attempt(cli, seeded):
    result = cli("runs", "show", "0f6d-run", "--format", "json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.output)
    assert run["status"] == "failed" and run["duration_seconds"] == 30.0
    assert [(s["component_name"], s["attempt"], s["status"]) for s in run["steps"]] == [
        ("extract", 1, "success"),
        ("load", 1, "failed"),
        ("load", 2, "failed"),
    ]
    by_id = cli("runs", "show", str(run["id"]))
    assert by_id.exit_code == 0 and "conn refused" in by_id.output


def test_runs_list_filters_and_counts_retries(cli, seeded):
    result = cli("runs", "list", "--job", "nightly", "--status", "failed")
    assert result.exit_code == 0, result.output
    assert "0f6d-run" in result.output
    assert json.loads(cli("runs", "list", "--status", "success", "-f", "json").output) == []
    assert "no runs found" in cli("runs", "list", "--status", "success").output


def test_unknown_names_fail_with_one_readable_line(cli, seeded):
    for args in (("jobs", "show", "nope"), ("runs", "show", "nope")):
        result = cli(*args)
        assert result.exit_code == 1
        assert "NotFoundError" in result.output and "Traceback" not in result.output


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("a: [1, 2\n", "expected ',' or ']'"),
        # A ReaderError, which has no problem phrase: it used to fail with an AttributeError.
        ("a:\n  n: \x07\n", "non-printable character"),
    ],
)
def test_runs_request_says_what_is_wrong_with_an_overrides_file(
    cli, seeded, tmp_path, text, problem
):
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(text)
    result = cli("runs", "request", "nightly", "--config", str(overrides))
    assert result.exit_code == 2, result.output
    output = " ".join(result.output.split())  # the error box wraps long lines
    assert "not valid YAML/JSON" in output and problem in output
