"""``etl-meta apply`` refuses hostile definitions before writing anything, naming every field.

A definitions file cannot store a step that would read the key file, write outside the sandbox,
call ``subprocess``, or replace the store's own ``audit_event`` table: the plan lists each
problem with its position, and the store is left exactly as it was (also for a dry run).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from etl_meta import MetadataStore
from etl_meta.cli import app
from etl_meta.config import get_settings
from etl_meta.definitions import DefinitionsError
from tests.backends import isolated_settings
from tests.definitions.helpers import apply, audit_count, dump, example

KEY_TEXT = "not-a-real-key-but-a-sentinel-0123456789"


@pytest.fixture
def guarded(store_url: str, tmp_path: Path) -> Iterator[MetadataStore]:
    """A store whose settings know its own database and key file (as the CLI's do)."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "secret.key").write_text(KEY_TEXT)
    settings = isolated_settings(home, base_dir=tmp_path, database_url=store_url)
    with MetadataStore(store_url, settings=settings) as opened:
        yield opened


def hostile_definitions(store: MetadataStore, outside: Path) -> str:
    """One job whose every step tries to leave the sandbox."""
    key = store.settings.resolved_secret_key_file
    steps = [
        ("steal_key", "read_csv", {"path": str(key)}),
        ("exfiltrate", "write_csv", {"path": str(outside / "key.csv")}),
        ("escape", "read_csv", {"path": "../../etc/passwd"}),
        ("shell", "python", {"callable": "subprocess:getoutput", "kwargs": {"cmd": "id"}}),
        (
            "wipe_audit",
            "write_table",
            {
                "table": "audit_event",
                "connection_url": store.settings.resolved_database_url(),
                "if_exists": "replace",
            },
        ),
    ]
    data = {
        "version": 1,
        "jobs": [
            {
                "name": "hostile",
                "components": [
                    {"name": name, "component_type": kind, "configuration": configuration}
                    for name, kind, configuration in steps
                ],
            }
        ],
    }
    return dump(data)


EXPECTED_FIELDS = [
    "jobs[0].components[0].configuration.path",
    "jobs[0].components[1].configuration.path",
    "jobs[0].components[2].configuration.path",
    "jobs[0].components[3].configuration.callable",
    "jobs[0].components[4].configuration.connection_url",
]


@pytest.mark.parametrize("dry_run", [False, True])
def test_apply_refuses_every_hostile_step_and_writes_nothing(
    guarded: MetadataStore, tmp_path: Path, dry_run: bool
) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    before = (len(guarded.jobs.list(include_archived=True)), audit_count(guarded))

    with pytest.raises(DefinitionsError) as caught:
        apply(guarded, hostile_definitions(guarded, outside), dry_run=dry_run)

    assert [p.field for p in caught.value.problems] == EXPECTED_FIELDS
    assert all(p.line is not None for p in caught.value.problems)
    assert (len(guarded.jobs.list(include_archived=True)), audit_count(guarded)) == before
    assert KEY_TEXT not in str(caught.value)
    assert guarded.settings.resolved_database_url() not in str(caught.value)
    assert not outside.exists()


def test_the_example_pipeline_still_applies_under_the_default_sandbox(
    guarded: MetadataStore,
) -> None:
    examples = Path(__file__).resolve().parents[2] / "examples"
    settings = guarded.settings.model_copy(update={"base_dir": examples})
    with MetadataStore(guarded.engine.url, settings=settings) as store:
        plan = apply(store, example())
    assert plan.counts()["created"] == 20


def test_the_cli_prints_each_refused_field_and_exits_1(
    guarded: MetadataStore,
    store_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    home = guarded.settings.home
    monkeypatch.setenv("ETL_META_HOME", str(home))
    monkeypatch.setenv("ETL_META_BASE_DIR", str(tmp_path))
    get_settings.cache_clear()
    try:
        outside = tmp_path.parent / f"{tmp_path.name}-outside"
        source = tmp_path / "hostile.yaml"
        source.write_text(hostile_definitions(guarded, outside), encoding="utf-8")
        before = audit_count(guarded)

        result = CliRunner().invoke(
            app, ["apply", "-f", str(source), "--database-url", store_url], catch_exceptions=False
        )
    finally:
        get_settings.cache_clear()

    assert result.exit_code == 1
    for field in EXPECTED_FIELDS:
        assert field in result.output
    assert KEY_TEXT not in result.output
    assert audit_count(guarded) == before
    assert guarded.jobs.list(include_archived=True) == []
