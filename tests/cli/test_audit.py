"""`etl-meta audit list`: the trail for operators, filtered, paged, secrets never shown."""

import json

import pytest

SECRET = "audit-cli-secret-90ab"


@pytest.fixture
def trail(store, factory):
    job = factory.job(
        name="nightly",
        components=[
            {
                "name": "load",
                "component_type": "write_table",
                "configuration": {
                    "table": "t",
                    "connection_url": "sqlite:///out.db",
                    "password": SECRET,
                },
            }
        ],
    )
    store.jobs.update(job.name, {"num_of_retries": 4})
    with store.acting_as("dagster:run-1"):
        store.components.configuration(job.name, "load")
    return job.name


def test_the_table_lists_events_newest_first_and_never_a_secret(cli, trail):
    result = cli("audit", "list")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output
    lines = result.output.splitlines()
    decrypt = next(i for i, line in enumerate(lines) if "decrypt" in line)
    update = next(i for i, line in enumerate(lines) if " update " in line)
    assert decrypt < update  # newest first
    assert "dagster:run-1" in lines[decrypt] and "password" in result.output


def test_filters_paging_and_json(cli, trail, store):
    result = cli("audit", "list", "--action", "decrypt", "--format", "json")
    assert result.exit_code == 0, result.output
    (event,) = json.loads(result.output)
    assert event["actor"] == "dagster:run-1" and event["entity_key"] == "nightly.load"
    assert event["after"] == {"version": 1, "fields": ["password"]}

    everything = json.loads(cli("audit", "list", "--format", "json").output)
    assert SECRET not in json.dumps(everything)
    first_page = json.loads(cli("audit", "list", "--limit", "2", "--format", "json").output)
    rest = json.loads(
        cli("audit", "list", "--before-id", str(first_page[-1]["id"]), "--format", "json").output
    )
    assert [e["id"] for e in first_page + rest] == [e["id"] for e in everything]
    by_entity = json.loads(
        cli("audit", "list", "--entity", "job", "--key", trail, "--format", "json").output
    )
    assert {e["action"] for e in by_entity} == {"create", "update"}
    assert "no audit events found" in cli("audit", "list", "--actor", "nobody").output


def test_a_bad_since_is_a_usage_error(cli, trail):
    result = cli("audit", "list", "--since", "yesterday-ish")
    assert result.exit_code == 2 and "use a duration like 7d" in result.output
