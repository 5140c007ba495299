"""The definitions lifecycle: pruning what a file no longer declares, renaming components in place.

Every test runs on each backend (the ``store`` fixture is parametrized over them).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from etl_meta import MetadataStore
from etl_meta.access import Role, required_role
from etl_meta.definitions import DefinitionsError, apply_definitions, load_definitions
from etl_meta.errors import (
    AlreadyExistsError,
    NotFoundError,
    PermissionDeniedError,
    ValidationError,
)
from tests.backends import isolated_settings
from tests.definitions.helpers import (
    actions,
    audit_count,
    component,
    dump,
    example,
    job,
)
from tests.factories import T0, Factory


def snapshot(store: MetadataStore) -> dict[str, object]:
    """Everything an apply could change, to compare before and after."""
    return {
        "jobs": {
            j.name: (
                j.revision,
                j.is_archived,
                [
                    (c.id, c.name, c.status, c.config_version, c.depends_on, c.inputs, c.outputs)
                    for c in store.components.list(j.name, include_archived=True)
                ],
            )
            for j in store.jobs.list(include_archived=True)
        },
        "dataclasses": {
            d.name: (d.version, d.is_archived)
            for d in store.dataclasses.list(include_archived=True)
        },
        "audit": audit_count(store),
    }


def apply(
    store: MetadataStore, data: dict[str, Any] | str, *, dry_run: bool = False, prune: bool = False
):
    text = data if isinstance(data, str) else dump(data)
    return apply_definitions(store, load_definitions(text), dry_run=dry_run, prune=prune)


def live_jobs(store: MetadataStore) -> list[str]:
    return sorted(j.name for j in store.jobs.list())


def live_dataclasses(store: MetadataStore) -> list[str]:
    return sorted(d.name for d in store.dataclasses.list())


def without_inventory() -> dict[str, Any]:
    """The example without the inventory_snapshot job and the inventory dataclass it writes."""
    data = example()
    data["jobs"] = [j for j in data["jobs"] if j["name"] != "inventory_snapshot"]
    data["dataclasses"] = [d for d in data["dataclasses"] if d["name"] != "inventory"]
    return data


# -- pruning ------------------------------------------------------------------------------------


def test_prune_archives_exactly_the_undeclared_jobs_and_dataclasses_and_lists_them_first(
    store: MetadataStore, factory: Factory
) -> None:
    apply(store, example())
    factory.job(name="legacy_job")
    factory.dataclass(name="legacy_shape")
    factory.job(name="retired_long_ago")
    store.jobs.archive("retired_long_ago")
    events = audit_count(store)

    plan = apply(store, without_inventory(), prune=True)

    assert [(i.kind, i.name, i.action) for i in plan.items[:4]] == [
        ("job", "inventory_snapshot", "archived"),
        ("job", "legacy_job", "archived"),
        ("dataclass", "inventory", "archived"),
        ("dataclass", "legacy_shape", "archived"),
    ]
    assert {i.action for i in plan.items[4:]} == {"unchanged"}
    assert plan.prune and plan.to_dict()["prune"] is True
    assert live_jobs(store) == ["customer_quality_report", "daily_sales"]
    assert live_dataclasses(store) == ["customers", "orders", "sales"]
    archived = store.audit.list(action="archive", limit=10)
    assert sorted((e.entity_type, e.entity_key) for e in archived) == [
        ("dataclass", "inventory"),
        ("dataclass", "legacy_shape"),
        ("job", "inventory_snapshot"),
        ("job", "legacy_job"),
        # retired_long_ago was archived by the test, before the apply.
        ("job", "retired_long_ago"),
    ]
    assert audit_count(store) == events + 4
    # A pruned job keeps its components (and runs): archiving only retires it.
    assert [c.status for c in store.components.list("legacy_job")] == ["active", "active"]


def test_without_prune_nothing_outside_the_file_is_touched(store: MetadataStore) -> None:
    apply(store, example())
    before = snapshot(store)

    plan = apply(store, without_inventory())

    assert "inventory_snapshot" not in actions(plan)
    assert not plan.prune
    assert snapshot(store) == before


def test_a_dry_run_with_prune_lists_the_prunes_and_writes_nothing(
    store: MetadataStore, factory: Factory
) -> None:
    apply(store, example())
    factory.job(name="legacy_job")
    before = snapshot(store)

    plan = apply(store, without_inventory(), prune=True, dry_run=True)

    assert [(i.kind, i.name, i.action) for i in plan.items[:3]] == [
        ("job", "inventory_snapshot", "archived"),
        ("job", "legacy_job", "archived"),
        ("dataclass", "inventory", "archived"),
    ]
    assert plan.dry_run and plan.changed
    assert snapshot(store) == before


def test_a_second_apply_with_prune_changes_nothing(store: MetadataStore, factory: Factory) -> None:
    apply(store, example())
    factory.job(name="legacy_job")
    apply(store, without_inventory(), prune=True)
    before = snapshot(store)

    plan = apply(store, without_inventory(), prune=True)

    assert not plan.changed
    assert {i.action for i in plan.items} == {"unchanged"}
    assert snapshot(store) == before  # no audit events either


def test_a_pruned_job_and_dataclass_declared_again_are_restored(store: MetadataStore) -> None:
    apply(store, example())
    apply(store, without_inventory(), prune=True)

    plan = apply(store, example(), prune=True)

    lines = {(i.kind, i.name): (i.action, i.changed_fields) for i in plan.items}
    assert lines[("job", "inventory_snapshot")] == ("updated", ("is_archived",))
    assert lines[("dataclass", "inventory")] == ("updated", ("is_archived",))
    assert "archived" not in {i.action for i in plan.items}
    assert "inventory_snapshot" in live_jobs(store)
    assert "inventory" in live_dataclasses(store)


def test_an_archived_dataclass_declared_in_the_file_is_restored_without_prune(
    store: MetadataStore,
) -> None:
    apply(store, example())
    store.dataclasses.archive("orders")

    plan = apply(store, example())

    line = next(i for i in plan.items if i.kind == "dataclass" and i.name == "orders")
    assert (line.action, line.changed_fields) == ("updated", ("is_archived",))
    assert not store.dataclasses.get("orders").is_archived
    assert not apply(store, example()).changed


def test_pruning_a_dataclass_the_file_still_uses_is_refused_at_the_use(
    store: MetadataStore, factory: Factory
) -> None:
    factory.dataclass(name="ledger")
    text = (
        "jobs:\n"
        "  - name: books\n"
        "    components:\n"
        "      - name: read\n"
        "        component_type: read_csv\n"
        "        configuration: {path: in.csv}\n"
        "        outputs: [ledger]\n"
    )
    before = snapshot(store)

    with pytest.raises(DefinitionsError) as caught:
        apply(store, text, prune=True)

    (problem,) = caught.value.problems
    assert problem.field == "jobs[0].components[0].outputs[0]"
    assert (problem.line, problem.column) == (7, 19)
    assert "'ledger' is not declared in this file, so --prune would archive it" in problem.message
    assert snapshot(store) == before
    # Without --prune the same file may use a dataclass only the store knows.
    assert actions(apply(store, text)) == {"books": "created", "books.read": "created"}


def test_pruning_a_dataclass_a_kept_jobs_stored_components_use_is_refused_at_the_job(
    store: MetadataStore, factory: Factory
) -> None:
    factory.dataclass(name="ledger")
    factory.job(
        name="books",
        components=[
            {
                "name": "read",
                "component_type": "read_csv",
                "configuration": {"path": "in.csv"},
                "outputs": ["ledger"],
            }
        ],
    )
    before = snapshot(store)
    # Declared without `components:`, so apply leaves its components (and their links) alone.
    text = "jobs:\n  - name: books\n    num_of_retries: 3\n"

    with pytest.raises(DefinitionsError) as caught:
        apply(store, text, prune=True)

    (problem,) = caught.value.problems
    assert (problem.field, problem.line) == ("jobs[0]", 2)
    assert "component books.read uses it" in problem.message
    assert snapshot(store) == before


def test_a_dataclass_used_only_by_a_pruned_job_is_pruned_with_it(
    store: MetadataStore, factory: Factory
) -> None:
    apply(store, example())

    plan = apply(store, without_inventory(), prune=True)

    assert actions(plan)["inventory"] == "archived"
    # The pruned job's components keep their links: its history still says what it wrote.
    assert store.components.get("inventory_snapshot", "extract_inventory").outputs == ["inventory"]


# -- renaming (the store) ----------------------------------------------------------------------


def test_the_store_renames_a_component_in_place_and_audits_it(
    store: MetadataStore, factory: Factory
) -> None:
    created = factory.job()
    extract = store.components.get(created.name, "extract")

    renamed = store.components.rename(created.name, "extract", "read_orders")

    assert (renamed.id, renamed.name) == (extract.id, "read_orders")
    assert store.components.get(created.name, "load").depends_on == ["read_orders"]
    assert store.jobs.get(created.name).revision == created.revision + 1
    (event,) = store.audit.list(action="rename")
    assert (event.entity_type, event.entity_key, event.entity_id) == (
        "component",
        f"{created.name}.read_orders",
        extract.id,
    )
    assert (event.before, event.after) == ({"name": "extract"}, {"name": "read_orders"})
    with pytest.raises(NotFoundError):
        store.components.get(created.name, "extract")


def test_the_store_refuses_a_rename_onto_a_taken_name_archived_or_not(
    store: MetadataStore, factory: Factory
) -> None:
    created = factory.job()
    store.components.create(
        created.name,
        {"name": "old_load", "component_type": "read_csv", "configuration": {"path": "x.csv"}},
    )
    store.components.archive(created.name, "old_load")
    before = snapshot(store)

    for taken in ("load", "old_load"):
        with pytest.raises(AlreadyExistsError) as caught:
            store.components.rename(created.name, "extract", taken)
        assert caught.value.key == f"{created.name}.{taken}"
    assert snapshot(store) == before


def test_the_store_refuses_unknown_names_and_invalid_new_names(
    store: MetadataStore, factory: Factory
) -> None:
    created = factory.job()
    before = snapshot(store)

    with pytest.raises(NotFoundError):
        store.components.rename(created.name, "nope", "other")
    with pytest.raises(NotFoundError):
        store.components.rename("no_such_job", "extract", "other")
    for bad in ("has space", "1starts_with_digit", "x" * 64, ""):
        with pytest.raises(ValidationError) as caught:
            store.components.rename(created.name, "extract", bad)
        assert caught.value.field == "name"
    assert snapshot(store) == before


def test_renaming_to_the_same_name_changes_nothing(store: MetadataStore, factory: Factory) -> None:
    created = factory.job()
    before = snapshot(store)

    assert store.components.rename(created.name, "extract", "extract").name == "extract"
    assert snapshot(store) == before


def test_renaming_needs_the_admin_role(
    store_url: str, store: MetadataStore, tmp_path: Path
) -> None:
    assert required_role(store.components.rename) is Role.ADMIN
    created = Factory(store).job()
    with (
        MetadataStore(
            store_url, settings=isolated_settings(tmp_path / "writer"), role="writer"
        ) as writer,
        pytest.raises(PermissionDeniedError),
    ):
        writer.components.rename(created.name, "extract", "other")
    assert store.components.get(created.name, "extract")


# -- renaming (apply) ---------------------------------------------------------------------------

PIPELINE = """\
dataclasses:
  - name: raw_orders
jobs:
  - name: orders_job
    components:
      - name: {extract}{renamed_from}
        component_type: read_csv
        configuration: {{path: {path}}}
        outputs: [raw_orders]
      - name: load
        component_type: write_table
        configuration: {{table: orders, connection_url: "sqlite:///out.db"}}
        depends_on: [{extract}]
        inputs: [raw_orders]
"""


def pipeline(extract: str = "extract", renamed_from: str | None = None, path: str = "a.csv") -> str:
    suffix = f"\n        renamed_from: {renamed_from}" if renamed_from else ""
    return PIPELINE.format(extract=extract, renamed_from=suffix, path=path)


def record_run(store: MetadataStore, component_name: str) -> int:
    """A finished run of orders_job with a step attempt and a metric point of the component."""
    run = store.executions.upsert(
        {
            "job": "orders_job",
            "orchestrator": "dagster",
            "external_run_id": "run-before-rename",
            "status": "success",
            "started_at": T0,
        },
        steps=[{"component": component_name, "attempt": 1, "status": "success"}],
    )
    store.metrics.record([(component_name, "rows", 42)], execution_id=run.id)
    return run.id


def test_a_rename_keeps_the_components_id_history_runs_and_metrics(store: MetadataStore) -> None:
    apply(store, pipeline())
    apply(store, pipeline(path="b.csv"))  # configuration version 2
    before = store.components.get("orders_job", "extract")
    run_id = record_run(store, "extract")
    revision = store.jobs.get("orders_job").revision

    plan = apply(store, pipeline("read_orders", renamed_from="extract", path="b.csv"))

    (line,) = [i for i in plan.items if i.name == "orders_job.read_orders"]
    assert (line.action, line.changed_fields, line.renamed_from) == ("renamed", (), "extract")
    assert line.to_dict()["renamed_from"] == "extract"
    assert actions(plan)["orders_job.load"] == "unchanged"  # its dependency followed the rename
    assert "orders_job.extract" not in actions(plan)  # not archived: it *is* read_orders
    assert plan.counts() == {
        "created": 0,
        "updated": 0,
        "renamed": 1,
        "archived": 0,
        "unchanged": 3,
    }
    assert plan.summary() == "0 created, 0 updated, 1 renamed, 0 archived, 3 unchanged"
    after = store.components.get("orders_job", "read_orders")
    assert (after.id, after.config_version, after.outputs) == (before.id, 2, ["raw_orders"])
    history = store.components.config_history("orders_job", "read_orders")
    assert [(h.version, h.configuration["path"]) for h in history] == [(1, "a.csv"), (2, "b.csv")]
    assert store.components.get("orders_job", "load").depends_on == ["read_orders"]
    (step,) = store.executions.get(run_id, with_steps=True).steps
    assert (step.component_id, step.component_name) == (before.id, "read_orders")
    (point,) = store.metrics.list(execution_id=run_id, component="read_orders")
    assert (point.component_name, point.value) == ("read_orders", 42.0)
    assert [c.name for c in store.components.list("orders_job", include_archived=True)] == [
        "read_orders",
        "load",
    ]
    assert store.jobs.get("orders_job").revision == revision + 1


def test_reapplying_a_file_after_its_rename_changes_nothing(store: MetadataStore) -> None:
    apply(store, pipeline())
    renamed = pipeline("read_orders", renamed_from="extract")
    apply(store, renamed)
    before = snapshot(store)

    plan = apply(store, renamed)

    assert {i.action for i in plan.items} == {"unchanged"}
    assert "renamed" not in plan.counts()
    assert snapshot(store) == before  # no audit events, no revision bump


def test_a_rename_with_other_changes_names_them(store: MetadataStore) -> None:
    apply(store, pipeline())

    plan = apply(store, pipeline("read_orders", renamed_from="extract", path="c.csv"))

    (line,) = [i for i in plan.items if i.name == "orders_job.read_orders"]
    assert (line.action, line.changed_fields) == ("renamed", ("configuration",))
    assert store.components.get("orders_job", "read_orders").config_version == 2


def test_a_dry_run_of_a_rename_reports_it_and_writes_nothing(store: MetadataStore) -> None:
    apply(store, pipeline())
    before = snapshot(store)

    plan = apply(store, pipeline("read_orders", renamed_from="extract"), dry_run=True)

    assert actions(plan)["orders_job.read_orders"] == "renamed"
    assert snapshot(store) == before


def test_renamed_from_an_unknown_name_creates_the_component(store: MetadataStore) -> None:
    # Also the case of a new job: there is nothing to rename, so the component is created.
    plan = apply(store, pipeline("read_orders", renamed_from="never_existed"))

    assert actions(plan)["orders_job.read_orders"] == "created"
    assert store.components.get("orders_job", "read_orders").config_version == 1


def test_a_rename_onto_an_existing_component_is_refused_and_writes_nothing(
    store: MetadataStore,
) -> None:
    apply(store, pipeline())
    store.components.create(
        "orders_job",
        {"name": "read_orders", "component_type": "read_csv", "configuration": {"path": "z.csv"}},
    )
    store.components.archive("orders_job", "read_orders")
    before = snapshot(store)
    text = pipeline("read_orders", renamed_from="extract")

    with pytest.raises(DefinitionsError) as caught:
        apply(store, text)

    (problem,) = caught.value.problems
    assert problem.field == "jobs[0].components[0].renamed_from"
    assert problem.line == 7
    assert "already has both" in problem.message
    assert snapshot(store) == before


def test_renamed_from_a_name_the_file_declares_is_a_positioned_error() -> None:
    data: dict[str, Any] = {
        "jobs": [
            {
                "name": "j",
                "components": [
                    {"name": "a", "component_type": "read_csv", "renamed_from": "b"},
                    {"name": "b", "component_type": "read_csv"},
                    {"name": "c", "component_type": "read_csv", "renamed_from": "c"},
                ],
            }
        ]
    }

    with pytest.raises(DefinitionsError) as caught:
        load_definitions(dump(data))

    problems = {p.field: p for p in caught.value.problems}
    assert set(problems) == {
        "jobs[0].components[0].renamed_from",
        "jobs[0].components[2].renamed_from",
    }
    assert (
        "'b' is still declared in job 'j'" in problems["jobs[0].components[0].renamed_from"].message
    )
    assert problems["jobs[0].components[0].renamed_from"].line == 6
    assert "its own name" in problems["jobs[0].components[2].renamed_from"].message


def test_two_components_renamed_from_the_same_name_is_a_positioned_error() -> None:
    data: dict[str, Any] = {
        "jobs": [
            {
                "name": "j",
                "components": [
                    {"name": "a", "component_type": "read_csv", "renamed_from": "old"},
                    {"name": "b", "component_type": "read_csv", "renamed_from": "old"},
                ],
            }
        ]
    }

    with pytest.raises(DefinitionsError) as caught:
        load_definitions(dump(data))

    (problem,) = caught.value.problems
    assert problem.field == "jobs[0].components[1].renamed_from"
    assert problem.message == "two components are renamed from 'old' (first jobs[0].components[0])"
    assert problem.line is not None


def test_renamed_from_is_not_a_field_of_the_stored_component(store: MetadataStore) -> None:
    data = example()
    component(data, "daily_sales", "extract_orders")["renamed_from"] = "nothing_stored"

    apply(store, data)

    assert "renamed_from" not in store.components.get("daily_sales", "extract_orders").model_dump()
    assert job(data, "daily_sales")["name"] == "daily_sales"


# -- the command line ---------------------------------------------------------------------------


def test_apply_prune_prints_the_prunes_first_and_dry_run_writes_nothing(
    store: MetadataStore, cli, tmp_path: Path
) -> None:
    apply(store, example())
    path = tmp_path / "pipeline.yaml"
    path.write_text(dump(without_inventory()), encoding="utf-8")
    before = snapshot(store)

    dry = cli("apply", "-f", str(path), "--prune", "--dry-run")

    assert dry.exit_code == 0, dry.output
    lines = [line.split() for line in dry.stdout.splitlines()]
    assert lines[0] == ["job", "inventory_snapshot", "archived"]
    assert lines[1] == ["dataclass", "inventory", "archived"]
    assert dry.stdout.rstrip().endswith("(dry run, nothing was written)")
    assert snapshot(store) == before

    plain = cli("apply", "-f", str(path))
    assert "inventory_snapshot" not in plain.stdout

    real = cli("apply", "-f", str(path), "--prune", "--format", "json")
    assert real.exit_code == 0, real.output
    assert '"prune": true' in real.stdout
    assert live_jobs(store) == ["customer_quality_report", "daily_sales"]


def test_apply_prints_a_rename_with_its_old_name(store: MetadataStore, cli, tmp_path: Path) -> None:
    apply(store, pipeline())
    path = tmp_path / "pipeline.yaml"
    path.write_text(pipeline("read_orders", renamed_from="extract", path="c.csv"), encoding="utf-8")

    result = cli("apply", "-f", str(path))

    assert result.exit_code == 0, result.output
    line = next(line for line in result.stdout.splitlines() if "read_orders" in line)
    assert line.split()[2:] == ["renamed", "from", "extract", "(configuration)"]
    assert "1 renamed" in result.stdout.splitlines()[-1]
