"""``etl-meta jobs archive`` and ``jobs restore``: idempotent, audited, one-line errors."""

from __future__ import annotations

import json

from typer.testing import CliRunner

from etl_meta import MetadataStore
from etl_meta.cli import app
from tests.factories import Factory


def test_archive_hides_the_job_and_restore_brings_it_back(
    store: MetadataStore, factory: Factory, cli
) -> None:
    job = factory.job(name="nightly")

    archived = cli("jobs", "archive", "nightly")

    assert archived.exit_code == 0, archived.output
    assert archived.stdout.strip() == f"job nightly: archived (revision {job.revision + 1})"
    assert store.jobs.get("nightly").is_archived
    assert "nightly" not in cli("jobs", "list").stdout
    assert "nightly" in cli("jobs", "list", "--archived").stdout

    restored = cli("jobs", "restore", "nightly")

    assert restored.exit_code == 0, restored.output
    assert restored.stdout.strip() == f"job nightly: restored (revision {job.revision + 2})"
    assert not store.jobs.get("nightly").is_archived
    # Its components came back as they were.
    assert [c.name for c in store.components.list("nightly")] == ["extract", "load"]


def test_archive_and_restore_are_idempotent_and_audited_once(
    store: MetadataStore, factory: Factory, cli
) -> None:
    factory.job(name="nightly")

    first = cli("jobs", "archive", "nightly")
    again = cli("jobs", "archive", "nightly")

    assert (first.exit_code, again.exit_code) == (0, 0)
    assert "already archived" in again.stdout
    revision = store.jobs.get("nightly").revision
    cli("jobs", "restore", "nightly")
    restored_again = cli("jobs", "restore", "nightly")
    assert restored_again.exit_code == 0 and "already restored" in restored_again.stdout
    events = store.audit.list(entity_type="job", entity_key="nightly")
    assert [e.action for e in events] == ["restore", "archive", "create"]
    assert store.jobs.get("nightly").revision == revision + 1
    assert events[1].actor == events[0].actor


def test_unknown_jobs_fail_with_one_readable_line(store: MetadataStore, cli) -> None:
    for command in ("archive", "restore"):
        result = cli("jobs", command, "nope")

        assert result.exit_code == 1
        assert result.output.strip().splitlines() == ["error: NotFoundError: job 'nope' not found"]
    assert store.audit.list() == []


def test_json_format_prints_the_job(store: MetadataStore, factory: Factory, cli) -> None:
    factory.job(name="nightly")

    result = cli("jobs", "archive", "nightly", "--format", "json")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert (document["name"], document["is_archived"]) == ("nightly", True)


def test_archive_and_restore_are_listed_in_the_help() -> None:
    result = CliRunner().invoke(app, ["jobs", "--help"])

    assert result.exit_code == 0
    assert "archive" in result.stdout and "restore" in result.stdout
