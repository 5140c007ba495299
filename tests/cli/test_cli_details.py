"""Details of the command line (issue #18, item 10): empty JSON lists, run id prefixes, column
names, the migration history, a store that does not exist, and bounded ``like`` patterns."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from etl_meta.cli import app
from etl_meta.filters.parse import (
    MAX_LIKE_LENGTH,
    MAX_LIKE_WILDCARDS,
    FilterSyntaxError,
    Like,
    parse_filter,
)
from etl_meta.filters.sql import FieldSpec, compile_filter

# -- 1. JSON for programs: an empty list is `[]`, never empty output -----------------------------


@pytest.mark.extra("analytics")  # metrics query among them
def test_every_list_command_prints_an_empty_json_list_when_nothing_matches(cli, factory):
    factory.job(name="quiet")  # a job with no runs, no metrics
    for args in (
        ("jobs", "list", "--tag", "team=nobody"),
        ("runs", "list"),
        ("audit", "list", "--actor", "nobody@nowhere"),
        ("metrics", "query", "--name", "missing"),
        ("metrics", "query", "--name", "missing", "--agg", "mean"),
    ):
        result = cli(*args, "--format", "json")
        assert result.exit_code == 0, (args, result.output)
        assert json.loads(result.stdout) == [], args


@pytest.mark.extra("analytics")
def test_an_empty_json_export_to_a_file_writes_no_file_and_says_so(cli, tmp_path):
    target = tmp_path / "none.json"
    result = cli("metrics", "query", "--name", "missing", "-f", "json", "-o", str(target))
    assert result.exit_code == 0 and result.stdout == ""
    assert "no metric points match" in result.stderr and not target.exists()


# -- 2. a run id prefix, as the Dagster UI shows it ------------------------------------------------

RUN_A = "0f6d3a9b-1111-4c2e-9a61-5d1f0e2b7c10"
RUN_B = "0f6d3a9b-2222-4f0a-8b7d-0c9e1a2b3c4d"
RUN_C = "a1b2c3d4-3333-4a1b-9c2d-3e4f5a6b7c8d"


@pytest.fixture
def three_runs(factory):
    job = factory.job(name="nightly")
    return {run_id: factory.execution(job.name, run_id=run_id) for run_id in (RUN_A, RUN_B, RUN_C)}


def test_runs_show_accepts_the_eight_characters_the_dagster_ui_shows(cli, three_runs):
    result = cli("runs", "show", RUN_C[:8], "--format", "json")
    assert result.exit_code == 0, result.output
    run = json.loads(result.stdout)
    assert run["external_run_id"] == RUN_C and run["id"] == three_runs[RUN_C].id
    table = cli("runs", "show", RUN_C[:8])
    assert table.exit_code == 0 and RUN_C in table.stdout


def test_an_ambiguous_prefix_lists_each_match_on_one_line_and_fails(cli, three_runs):
    result = cli("runs", "show", "0f6d3a9b")
    assert result.exit_code == 1
    assert result.stdout == ""
    assert "matches 2 runs" in result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("  ")]
    assert len(lines) == 2
    # Newest first, each line naming the store id, the orchestrator, the full run id and the job.
    assert lines[0].split()[:4] == [str(three_runs[RUN_B].id), "dagster", RUN_B, "nightly"]
    assert lines[1].split()[:4] == [str(three_runs[RUN_A].id), "dagster", RUN_A, "nightly"]


def test_a_full_run_id_or_store_id_still_wins_over_prefixes(cli, three_runs):
    for ref in (RUN_A, str(three_runs[RUN_A].id)):
        result = cli("runs", "show", ref, "--format", "json")
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["external_run_id"] == RUN_A


@pytest.mark.parametrize("ref", ["0f6", "A1B2C3D4", "a1b2%", "a1b2_3d4", "zzzzzzzz"])
def test_short_mismatched_or_wildcard_prefixes_match_nothing(cli, three_runs, ref):
    # Shorter than 4 characters, another case (compared exactly on both backends), or LIKE
    # wildcards, which mean themselves here.
    result = cli("runs", "show", ref)
    assert result.exit_code == 1
    assert "NotFoundError" in result.stderr and "Traceback" not in result.output


# -- 5. `retries` says which retries --------------------------------------------------------------


def test_jobs_list_shows_max_retries_and_runs_list_retries_used(cli, factory, store):
    job = factory.job(name="flaky", num_of_retries=3)
    store.executions.upsert(
        {"job": job.name, "orchestrator": "dagster", "external_run_id": "r-1", "status": "success"},
        steps=[
            {"component": "extract", "attempt": 1, "status": "failed"},
            {"component": "extract", "attempt": 2, "status": "success"},
            {"component": "load", "attempt": 1, "status": "success"},
        ],
    )
    jobs = cli("jobs", "list")
    assert jobs.exit_code == 0 and "max retries" in jobs.stdout
    assert json.loads(cli("jobs", "list", "-f", "json").stdout)[0]["num_of_retries"] == 3
    assert "max retries: 3" in cli("jobs", "show", "flaky").stdout
    runs = cli("runs", "list")
    assert runs.exit_code == 0 and "retries used" in runs.stdout
    (run,) = json.loads(cli("runs", "list", "-f", "json").stdout)
    assert run["retries_used"] == 1 and run["external_run_id"] == "r-1"


# -- 6. `db history` -------------------------------------------------------------------------------


def test_db_history_shows_each_revisions_whole_summary_on_one_line():
    result = CliRunner().invoke(app, ["db", "history"])
    assert result.exit_code == 0, result.output
    first = next(line for line in result.stdout.splitlines() if line.startswith("0001 "))
    assert first == (
        "0001  Initial schema: definitions (job, component, dataclass, tags, dependencies, "
        "configuration history), runs (execution, component_execution, metric), run requests "
        "and the audit trail."
    )


# -- 7. a store that does not exist is not created -------------------------------------------------

READ_COMMANDS = [
    ("jobs", "list"),
    ("jobs", "show", "nightly"),
    ("runs", "list"),
    ("runs", "show", "0f6d3a9b"),
    ("audit", "list"),
    pytest.param(("metrics", "query"), marks=pytest.mark.extra("analytics")),
    pytest.param(
        ("dagster", "status", "--url", "http://127.0.0.1:9"), marks=pytest.mark.extra("dagster")
    ),
]


@pytest.mark.parametrize("args", READ_COMMANDS, ids=" ".join)
def test_reading_a_store_that_does_not_exist_says_so_and_creates_nothing(args, tmp_path: Path):
    missing = tmp_path / "nowhere" / "etl_meta.db"
    result = CliRunner().invoke(app, [*args, "--database-url", f"sqlite:///{missing}"])
    assert result.exit_code == 1, result.output
    assert f"no store at {missing}" in result.stderr
    assert "etl-meta db upgrade" in result.stderr
    assert not missing.exists() and not missing.parent.exists()


def test_an_existing_store_opens_as_before(cli, factory):
    factory.job(name="there")
    result = cli("jobs", "list")
    assert result.exit_code == 0 and "there" in result.stdout


# -- 8. `like` patterns are bounded ---------------------------------------------------------------


def test_a_like_pattern_with_too_many_wildcards_is_refused_naming_the_filter():
    allowed = "name like '" + "%x" * MAX_LIKE_WILDCARDS + "'"
    assert isinstance(parse_filter(allowed), Like)
    with pytest.raises(FilterSyntaxError) as caught:
        parse_filter("name like '" + "%x" * (MAX_LIKE_WILDCARDS + 1) + "'")
    assert caught.value.field == "filter" and caught.value.position == 0
    assert f"at most {MAX_LIKE_WILDCARDS}" in str(caught.value) and "'name'" in str(caught.value)


def test_escaped_percent_signs_are_not_wildcards():
    pattern = "\\%" * (MAX_LIKE_WILDCARDS + 5) + "%"
    node = parse_filter(f"name like '{pattern}'")
    assert isinstance(node, Like) and node.pattern == pattern


def test_a_like_pattern_longer_than_the_limit_is_refused():
    with pytest.raises(FilterSyntaxError, match=f"longer than {MAX_LIKE_LENGTH} characters"):
        parse_filter("job = 'a' and name like '" + "a" * (MAX_LIKE_LENGTH + 1) + "'")


def test_an_ast_built_in_code_gets_the_same_like_limits():
    import sqlalchemy as sa

    fields = {"name": FieldSpec(sa.column("name"))}
    with pytest.raises(FilterSyntaxError, match="wildcards"):
        compile_filter(Like("name", "%x" * (MAX_LIKE_WILDCARDS + 1)), fields)
    with pytest.raises(FilterSyntaxError, match="longer than"):
        compile_filter(Like("name", "%" * 990), fields)


@pytest.mark.extra("analytics")  # through metrics query
def test_the_990_wildcard_filter_is_refused_before_the_database_sees_it(cli, factory):
    factory.job(name="nightly")
    result = cli("metrics", "query", "--filter", "name like '" + "%" * 990 + "'")
    assert result.exit_code == 1
    assert "filter" in result.stderr and "Traceback" not in result.output
    fine = cli("metrics", "query", "--filter", "name like '%rows%'")
    assert fine.exit_code == 0, fine.output
