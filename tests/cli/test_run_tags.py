"""``etl-meta runs tag`` and run tags in ``runs list``, ``runs show`` and ``runs compare``."""

from __future__ import annotations

import json

import pytest

from tests.factories import Factory


@pytest.fixture
def runs(store, factory: Factory) -> tuple[str, str]:
    job = factory.job().name
    for run_id, tags in (
        ("4f0c9a11-aaaa", {"dagster/schedule_name": "nightly", "team": "growth"}),
        ("4f0c9b22-bbbb", {"dagster/schedule_name": "nightly", "team": "[bold]finance"}),
    ):
        store.executions.upsert(
            {
                "job": job,
                "orchestrator": "dagster",
                "external_run_id": run_id,
                "status": "success",
                "tags": tags,
            }
        )
    return "4f0c9a11-aaaa", "4f0c9b22-bbbb"


def test_tag_sets_tags_by_run_id_prefix_and_shows_them(cli, store, runs):
    result = cli("runs", "tag", "4f0c9a11", "reviewed=yes", "ticket=DATA-1")
    assert result.exit_code == 0, result.output
    for text in ("reviewed", "DATA-1", "dagster/schedule_name", "growth"):
        assert text in result.output
    assert store.executions.resolve(runs[0]).tags["reviewed"] == "yes"
    shown = json.loads(cli("runs", "show", runs[0], "-f", "json").output)
    assert shown["tags"] == {
        "dagster/schedule_name": "nightly",
        "reviewed": "yes",
        "team": "growth",
        "ticket": "DATA-1",
    }
    assert "ticket" in cli("runs", "show", runs[0]).output
    removed = cli("runs", "tag", runs[0], "--remove", "ticket", "-f", "json")
    assert removed.exit_code == 0, removed.output
    assert "ticket" not in json.loads(removed.output)["tags"]


def test_stored_text_in_a_tag_is_printed_not_read_as_markup(cli, runs):
    result = cli("runs", "show", runs[1])
    assert result.exit_code == 0, result.output
    assert "[bold]finance" in result.output


def test_list_keeps_the_runs_carrying_every_given_tag(cli, store, runs):
    store.executions.tag(runs[1], {"reviewed": "yes"})
    listed = cli("runs", "list", "--tag", "dagster/schedule_name=nightly", "--tag", "reviewed=yes")
    assert listed.exit_code == 0, listed.output
    assert runs[1] in listed.output and runs[0] not in listed.output
    none = cli("runs", "list", "--tag", "team=nobody", "-f", "json")
    assert json.loads(none.output) == []


@pytest.mark.extra("analytics")  # runs compare
def test_compare_lists_the_tags_that_differ(cli, runs):
    result = cli("runs", "compare", "4f0c9a11", "4f0c9b22", "-f", "json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["tag_changes"] == [
        {"key": "team", "a": "growth", "b": "[bold]finance"}
    ]
    table = cli("runs", "compare", runs[0], runs[0])
    assert "run tags: the same" in table.output


@pytest.mark.parametrize(
    ("args", "code", "says"),
    [
        (["4f0c9a11", "noequals"], 2, "argument 1 is not KEY=VALUE"),
        (["4f0c9a11"], 2, "give KEY=VALUE tags to set or --remove KEY"),
        (["4f0c9a11", "db_password=hunter2"], 1, "tags.db_password: looks like a secret"),
        (["4f0c9a11", "bad key=x"], 1, "tags.bad key"),
        (["4f0c9a11", "--remove", "team"], 1, "written by dagster"),
        (["4f0c", "x=1"], 1, "matches 2 runs"),
        (["nope-nope", "x=1"], 1, "NotFoundError"),
    ],
)
def test_bad_tag_commands_fail_with_one_line_and_change_nothing(cli, store, runs, args, code, says):
    before = store.executions.resolve(runs[0]).tags
    result = cli("runs", "tag", *args)
    assert result.exit_code == code, result.output
    assert says in result.output
    assert "Traceback" not in result.output and "hunter2" not in result.output
    assert store.executions.resolve(runs[0]).tags == before
