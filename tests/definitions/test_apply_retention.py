"""The definitions file's ``retention:`` section: strict, positioned errors; idempotent apply."""

from __future__ import annotations

import pytest

from etl_meta import MetadataStore
from etl_meta.definitions import DefinitionsError, load_definitions
from tests.definitions.helpers import actions, apply, audit_count, dump, example

RETENTION = {
    "default": {"raw_days": 30, "rollup_days": 365, "archive": True},
    "jobs": {
        "daily_sales": {"raw_days": 7},
        "inventory_snapshot": {"legal_hold": True, "hold_reason": "tax audit 2026"},
    },
}


def with_retention(retention: object) -> dict[str, object]:
    return example() | {"retention": retention}


def policies(store: MetadataStore) -> dict[str | None, tuple[object, ...]]:
    return {
        p.job: (p.raw_days, p.rollup_days, p.archive, p.legal_hold, p.hold_reason, p.revision)
        for p in store.retention.list()
    }


def test_the_section_is_stored_and_reapplying_it_writes_nothing(store: MetadataStore) -> None:
    plan = apply(store, with_retention(RETENTION))
    assert {n: a for n, a in actions(plan).items() if n in ("default", "daily_sales")} == {
        "default": "created",
        "daily_sales": "created",
    }
    assert [i.name for i in plan.items if i.kind == "retention"] == [
        "default",
        "daily_sales",
        "inventory_snapshot",
    ]
    assert policies(store) == {
        None: (30, 365, True, False, None, 1),
        "daily_sales": (7, None, None, False, None, 1),
        "inventory_snapshot": (None, None, None, True, "tax audit 2026", 1),
    }
    events = audit_count(store)
    again = apply(store, with_retention(RETENTION))
    assert not again.changed and audit_count(store) == events
    assert {i.action for i in again.items if i.kind == "retention"} == {"unchanged"}


def test_a_changed_policy_is_updated_and_a_dropped_override_removed(store: MetadataStore) -> None:
    apply(store, with_retention(RETENTION))
    changed = {"default": RETENTION["default"], "jobs": {"daily_sales": {"raw_days": 9}}}
    plan = apply(store, with_retention(changed))
    retention = {i.name: i.action for i in plan.items if i.kind == "retention"}
    assert retention == {
        "default": "unchanged",
        "daily_sales": "updated",
        "inventory_snapshot": "removed",
    }
    assert plan.counts()["removed"] == 1
    assert policies(store)["daily_sales"][::5] == (9, 2)
    assert "inventory_snapshot" not in policies(store)


def test_a_file_without_the_section_leaves_policies_alone_an_empty_one_removes_them(
    store: MetadataStore,
) -> None:
    apply(store, with_retention(RETENTION))
    stored = policies(store)
    plan = apply(store, example())
    assert not plan.changed and policies(store) == stored
    plan = apply(store, with_retention(None))  # `retention:` with nothing under it
    assert {i.action for i in plan.items if i.kind == "retention"} == {"removed"}
    assert policies(store) == {}


def test_a_job_dropped_from_jobs_keeps_its_override(store: MetadataStore) -> None:
    apply(store, with_retention(RETENTION))
    data = with_retention(RETENTION)
    data["jobs"] = [j for j in data["jobs"] if j["name"] != "daily_sales"]
    apply(store, data)
    assert policies(store)["daily_sales"][0] == 7


@pytest.mark.parametrize(
    ("retention", "field", "message"),
    [
        ({"default": {"raw_days": 1, "rollup_days": 1, "keep": 1}}, "retention.default.keep",
         "unknown key 'keep'"),
        ({"default": {"raw_days": "30", "rollup_days": 1}}, "retention.default.raw_days",
         "must be an integer"),
        ({"default": {"raw_days": -3, "rollup_days": 1}}, "retention.default.raw_days",
         "greater than or equal to 1"),
        ({"jobs": {"daily_sales": {"rollup_days": -1}}}, "retention.jobs.daily_sales.rollup_days",
         "greater than or equal to 0"),
        ({"jobs": {"daily_sales": {"archive": "yes"}}}, "retention.jobs.daily_sales.archive",
         "must be true or false"),
        ({"jobs": {"daily_sales": {"legal_hold": True}}},
         "retention.jobs.daily_sales.hold_reason", "a legal hold needs a reason"),
        ({"default": {"raw_days": 1, "rollup_days": 1, "legal_hold": True}},
         "retention.default.legal_hold", "unknown key"),
        ({"jobs": {"no_such_job": {"raw_days": 1}}}, "retention.jobs.no_such_job",
         "unknown job 'no_such_job'"),
        ({"rules": []}, "retention.rules", "unknown key"),
    ],
)  # fmt: skip
def test_a_bad_section_is_a_positioned_error_naming_the_field_and_writes_nothing(
    store: MetadataStore, retention: dict[str, object], field: str, message: str
) -> None:
    before = audit_count(store)
    with pytest.raises(DefinitionsError) as caught:
        apply(store, with_retention(retention))
    problem = next(p for p in caught.value.problems if p.field == field)
    assert message in problem.message and problem.line is not None
    assert audit_count(store) == before and store.jobs.list() == []


def test_a_positioned_error_points_into_the_section() -> None:
    text = dump(with_retention({"default": {"raw_days": 0, "rollup_days": 1}}))
    with pytest.raises(DefinitionsError) as caught:
        load_definitions(text)
    (problem,) = caught.value.problems
    line = text.splitlines()[problem.line - 1]
    assert line.strip() == "raw_days: 0"


def test_a_dry_run_shows_the_retention_lines_and_stores_no_policy(store: MetadataStore) -> None:
    plan = apply(store, with_retention(RETENTION), dry_run=True)
    assert {i.name: i.action for i in plan.items if i.kind == "retention"} == {
        "default": "created",
        "daily_sales": "created",
        "inventory_snapshot": "created",
    }
    assert store.retention.list() == [] and audit_count(store) == 0


def test_the_cli_plan_prints_one_line_per_policy(
    store: MetadataStore, store_url: str, tmp_path
) -> None:
    from typer.testing import CliRunner

    from etl_meta.cli import app

    path = tmp_path / "pipeline.yaml"
    path.write_text(dump(with_retention(RETENTION)), encoding="utf-8")
    args = ["apply", "-f", str(path), "--database-url", store_url]
    CliRunner().invoke(app, args)
    changed = {"default": RETENTION["default"], "jobs": {"daily_sales": {"raw_days": 9}}}
    path.write_text(dump(with_retention(changed)), encoding="utf-8")
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    lines = [line.split() for line in result.stdout.splitlines() if line.startswith("retention")]
    assert lines == [
        ["retention", "default", "unchanged"],
        ["retention", "daily_sales", "updated"],
        ["retention", "inventory_snapshot", "removed"],
    ]
    assert "1 removed" in result.stdout.splitlines()[-1]
