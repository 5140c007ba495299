"""`etl-meta gc --policy` and `etl-meta retention show`: per-job reports, one-line errors."""

from __future__ import annotations

import pytest

from tests.store.test_retention_pass import add_run


@pytest.fixture
def seeded(store, factory):
    """A default of 30 raw days + 60 rollup days; one old, one middle-aged run; a held job."""
    plain, held = factory.job().name, factory.job().name
    store.retention.set_default({"raw_days": 30, "rollup_days": 60})
    store.retention.set_job(held, {"legal_hold": True, "hold_reason": "case 7"})
    runs = {
        "old": add_run(store, plain, age_days=200).id,
        "middle": add_run(store, plain, age_days=50).id,
        "held_run": add_run(store, held, age_days=200).id,
    }
    return {"plain": plain, "held": held, **runs}


def remaining(store) -> set[int]:
    return {run.id for run in store.executions.list(limit=1000)}


def test_the_policy_pass_prints_a_row_per_job_and_a_summary(cli, store, seeded):
    result = cli("gc", "--policy")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    plain = next(line for line in lines if seeded["plain"] in line)
    assert "raw 30d, rollups +60d" in plain
    cells = [cell.strip() for cell in plain.split("│") if cell.strip()]
    # rolled up: 1 run, 4 points; deleted: 1 run, 2 attempts, 4 points; 2 batches
    assert cells[2:] == ["1", "4", "1", "2", "4", "2"]
    assert any("legal hold: case 7" in line for line in lines)
    assert lines[-1] == "1 run(s) rolled up, 1 run(s) deleted, 1 job(s) on hold"
    assert remaining(store) == {seeded["middle"], seeded["held_run"]}
    again = cli("gc", "--policy")
    assert again.exit_code == 0 and again.stdout.splitlines()[-1].startswith("nothing to do as of")


def test_the_dry_run_report_changes_nothing(cli, store, seeded):
    before = remaining(store)
    result = cli("gc", "--policy", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "retention (dry run)" in result.stdout
    assert result.stdout.splitlines()[-1] == (
        "would have: 1 run(s) rolled up, 1 run(s) deleted, 1 job(s) on hold "
        "(dry run: nothing was changed)"
    )
    assert remaining(store) == before and store.audit.list(action="retention") == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("--policy", "--older-than", "90d"), "give one of them"),
        (("--policy", "--archive", "somewhere"), "ETL_META_RETENTION_ARCHIVE_DIR"),
        ((), "give --older-than AGE|TIME, or --policy"),
    ],
)
def test_conflicting_or_missing_options_are_usage_errors(cli, store, seeded, args, message):
    result = cli("gc", *args)
    assert result.exit_code == 2
    assert message in " ".join(result.stderr.split()).replace("│", "")
    assert "Traceback" not in result.output
    assert len(remaining(store)) == 3


def test_a_store_refusal_is_one_line_and_exit_1(cli, store, seeded):
    store.retention.set_default({"raw_days": 30, "rollup_days": 60, "archive": True})
    result = cli("gc", "--policy")
    assert result.exit_code == 1
    assert result.stderr.startswith("error: ") and len(result.stderr.strip().splitlines()) == 1
    assert "ETL_META_RETENTION_ARCHIVE_DIR" in result.stderr
    assert len(remaining(store)) == 3


def test_retention_show_lists_the_default_then_overrides(cli, store, seeded):
    result = cli("retention", "show")
    assert result.exit_code == 0, result.output
    rows = [line for line in result.stdout.splitlines() if "(default)" in line or "case 7" in line]
    assert len(rows) == 2 and "(default)" in rows[0] and seeded["held"] in rows[1]
    assert "30d" in rows[0] and "60d" in rows[0]


def test_retention_show_says_when_there_is_no_policy(cli):
    result = cli("retention", "show")
    assert result.exit_code == 0
    assert result.stdout == "no retention policies found\n"
