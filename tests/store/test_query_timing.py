"""Statement timings: per-process counters, a slow-query log without parameters (both backends)."""

from __future__ import annotations

import json
import logging

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner

from etl_meta import MetadataStore
from etl_meta.errors import EtlMetaError
from etl_meta.query_timing import query_stats, reset_query_stats
from tests.backends import isolated_settings

MARKER = "parameter-value-7f3a"


def test_every_statement_is_counted_by_kind(store: MetadataStore) -> None:
    reset_query_stats()
    store.jobs.create({"name": "timed"})
    store.jobs.list()
    stats = query_stats()
    assert stats["SELECT"]["count"] >= 1 and stats["INSERT"]["count"] >= 1
    assert stats["all"]["count"] == sum(
        row["count"] for kind, row in stats.items() if kind != "all"
    )
    assert stats["all"]["total_ms"] >= stats["all"]["max_ms"] > 0
    assert stats["all"]["slow"] == 0  # no threshold set: nothing is slow


def test_slow_statements_are_logged_with_caller_but_never_their_parameters(
    store_url: str, tmp_path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = isolated_settings(tmp_path, slow_query_ms=0)
    reset_query_stats()
    with (
        caplog.at_level(logging.WARNING, logger="etl_meta.slow_query"),
        MetadataStore(store_url, settings=settings) as store,
    ):
        store.jobs.create({"name": "timed", "description": MARKER})
    lines = [r.getMessage() for r in caplog.records if r.name == "etl_meta.slow_query"]
    inserts = [line for line in lines if "INSERT INTO job " in line]
    assert inserts, lines
    assert "from etl_meta/store/jobs.py:" in inserts[0] and " in create: " in inserts[0]
    assert all(MARKER not in line for line in lines)
    assert query_stats()["all"]["slow"] == len(lines)


def test_a_statement_that_fails_is_counted_too(store: MetadataStore) -> None:
    reset_query_stats()
    with pytest.raises(EtlMetaError), store.transaction() as session:
        session.execute(sa.text("SELECT * FROM no_such_table"))
    assert query_stats()["SELECT"]["count"] == 1


def test_the_cli_prints_its_timings_on_stderr_and_keeps_stdout_parseable(store_url: str) -> None:
    from etl_meta.cli import app

    result = CliRunner().invoke(
        app, ["--timings", "jobs", "list", "--format", "json", "--database-url", store_url]
    )
    assert result.exit_code == 0, result.output
    assert isinstance(json.loads(result.stdout or "[]"), list)
    assert "store statements:" in result.stderr and "SELECT" in result.stderr
