"""Applying definitions to the store: created, updated, unchanged, archived; dry runs; refusals.

Every test runs on each backend (the ``store`` fixture is parametrized over them).
"""

from __future__ import annotations

import pytest

from etl_meta import MetadataStore
from etl_meta.definitions import DefinitionsError, apply_definitions, load_definitions
from etl_meta.models import ComponentStatus, StrategyType
from tests.definitions.helpers import (
    EXAMPLE,
    EXAMPLE_SECRET,
    actions,
    apply,
    audit_count,
    component,
    dump,
    example,
    job,
    remove_component,
)
from tests.factories import Factory

JOBS = ("daily_sales", "inventory_snapshot", "customer_quality_report")


def snapshot(store: MetadataStore) -> dict[str, object]:
    """Everything an apply could change, to compare before and after."""
    jobs = store.jobs.list(include_archived=True)
    return {
        "jobs": {
            j.name: (
                j.revision,
                j.is_archived,
                [
                    (c.name, c.status, c.config_version, c.depends_on, c.inputs, c.outputs)
                    for c in store.components.list(j.name, include_archived=True)
                ],
            )
            for j in jobs
        },
        "dataclasses": {d.name: d.version for d in store.dataclasses.list(include_archived=True)},
        "audit": audit_count(store),
    }


# -- creating -----------------------------------------------------------------------------------


def test_applying_the_example_creates_everything(store: MetadataStore) -> None:
    plan = apply_definitions(store, load_definitions(EXAMPLE))

    assert plan.counts() == {"created": 20, "updated": 0, "archived": 0, "unchanged": 0}
    assert [i.name for i in plan.items[:5]] == [
        "orders",
        "customers",
        "sales",
        "inventory",
        "daily_sales",
    ]
    assert sorted(j.name for j in store.jobs.list()) == sorted(JOBS)
    daily = store.jobs.get("daily_sales", with_components=True)
    assert (daily.revision, daily.num_of_retries, daily.strategy_type) == (1, 2, "parallel")
    assert (daily.max_concurrency, daily.file_logging) == (4, True)
    assert daily.tags == {"team": "finance", "schedule": "daily"}
    assert store.components.graph("daily_sales") == {
        "extract_orders": [],
        "extract_customers": [],
        "join_customers": ["extract_customers", "extract_orders"],
        "validate_sales": ["join_customers"],
        "save_parquet": ["validate_sales"],
        "load_warehouse": ["validate_sales"],
    }
    join = store.components.get("daily_sales", "join_customers")
    assert (join.inputs, join.outputs) == (["customers", "orders"], ["sales"])
    writer = store.components.configuration("daily_sales", "load_warehouse")
    assert writer["password"] == EXAMPLE_SECRET
    assert store.dataclasses.get("orders").validation_rules["unique"] == ["order_id"]


def test_applying_the_example_twice_changes_nothing(store: MetadataStore) -> None:
    apply_definitions(store, load_definitions(EXAMPLE))
    before = snapshot(store)

    plan = apply_definitions(store, load_definitions(EXAMPLE))

    assert set(actions(plan).values()) == {"unchanged"}
    assert plan.counts()["unchanged"] == 20
    assert not plan.changed
    assert snapshot(store) == before  # no audit events, revisions or config versions


def test_a_dataclass_known_only_to_the_store_can_be_referenced(
    store: MetadataStore, factory: Factory
) -> None:
    factory.dataclass(name="ledger")
    plan = apply(
        store,
        {
            "jobs": [
                {
                    "name": "j",
                    "components": [
                        {"name": "a", "component_type": "test.step", "outputs": ["ledger"]}
                    ],
                }
            ]
        },
    )
    assert actions(plan) == {"j": "created", "j.a": "created"}
    assert store.components.get("j", "a").outputs == ["ledger"]


# -- dry runs -----------------------------------------------------------------------------------


def test_dry_run_reports_the_same_plan_and_writes_nothing(store: MetadataStore) -> None:
    dry = apply_definitions(store, load_definitions(EXAMPLE), dry_run=True)

    assert dry.dry_run
    assert store.jobs.list(include_archived=True) == []
    assert store.dataclasses.list(include_archived=True) == []
    assert audit_count(store) == 0
    real = apply_definitions(store, load_definitions(EXAMPLE))
    assert dry.items == real.items


def test_dry_run_of_changes_reports_them_and_writes_nothing(store: MetadataStore) -> None:
    apply(store, example())
    before = snapshot(store)
    data = example()
    component(data, "daily_sales", "join_customers")["configuration"]["how"] = "inner"
    remove_component(data, "daily_sales", "save_parquet")

    plan = apply(store, data, dry_run=True)

    assert {k: v for k, v in actions(plan).items() if v != "unchanged"} == {
        "daily_sales.join_customers": "updated",
        "daily_sales.save_parquet": "archived",
    }
    assert snapshot(store) == before


def test_dry_run_surfaces_the_stores_refusals(store: MetadataStore) -> None:
    data = example()
    component(data, "inventory_snapshot", "flag_reorders")["inputs"] = ["stock"]

    with pytest.raises(DefinitionsError, match="unknown dataclass 'stock'"):
        apply(store, data, dry_run=True)


def test_dry_run_cannot_join_an_open_transaction(store: MetadataStore) -> None:
    definitions = load_definitions(EXAMPLE)
    with store.transaction(), pytest.raises(ValueError, match="dry run"):
        apply_definitions(store, definitions, dry_run=True)


def test_apply_joins_an_open_transaction(store: MetadataStore) -> None:
    definitions = load_definitions(EXAMPLE)
    with pytest.raises(RuntimeError), store.transaction():
        apply_definitions(store, definitions)
        raise RuntimeError("the caller changes its mind")
    assert store.jobs.list() == []


# -- updating -----------------------------------------------------------------------------------


def test_changed_configuration_becomes_a_new_version(store: MetadataStore) -> None:
    apply(store, example())
    data = example()
    component(data, "daily_sales", "load_warehouse")["configuration"]["password"] = "rotated"
    revision = store.jobs.get("daily_sales").revision

    plan = apply(store, data)

    line = next(i for i in plan.items if i.name == "daily_sales.load_warehouse")
    assert (line.action, line.changed_fields) == ("updated", ("configuration",))
    writer = store.components.get("daily_sales", "load_warehouse")
    assert writer.config_version == 2
    assert [
        v.version for v in store.components.config_history("daily_sales", "load_warehouse")
    ] == [1, 2]
    assert store.components.configuration("daily_sales", "load_warehouse")["password"] == "rotated"
    assert (
        store.components.configuration("daily_sales", "load_warehouse", version=1)["password"]
        == EXAMPLE_SECRET
    )
    assert store.jobs.get("daily_sales").revision == revision + 1


def test_changed_job_fields_and_tags_are_named_in_the_plan(store: MetadataStore) -> None:
    apply(store, example())
    data = example()
    daily = job(data, "daily_sales")
    daily["num_of_retries"] = 5
    daily["tags"]["schedule"] = "hourly"
    del daily["description"]  # left out: back to the default (none)

    plan = apply(store, data)

    line = next(i for i in plan.items if i.kind == "job" and i.name == "daily_sales")
    assert (line.action, line.changed_fields) == (
        "updated",
        ("num_of_retries", "description", "tags"),
    )
    stored = store.jobs.get("daily_sales")
    assert (stored.num_of_retries, stored.description) == (5, None)
    assert stored.tags == {"team": "finance", "schedule": "hourly"}


def test_enum_values_compare_case_insensitively(store: MetadataStore) -> None:
    apply(store, example())
    data = example()
    job(data, "daily_sales")["strategy_type"] = "PARALLEL"
    component(data, "daily_sales", "extract_orders")["status"] = "Active"

    assert not apply(store, data).changed
    assert store.jobs.get("daily_sales").strategy_type is StrategyType.PARALLEL


def test_changed_dataclass_schema_bumps_its_version(store: MetadataStore) -> None:
    apply(store, example())
    data = example()
    orders = data["dataclasses"][0]
    orders["schema_definition"]["columns"]["coupon"] = "string"
    orders["description"] = "Orders, with coupons."

    plan = apply(store, data)

    line = next(i for i in plan.items if i.kind == "dataclass" and i.name == "orders")
    assert (line.action, line.changed_fields) == (
        "updated",
        ("schema_definition", "description"),
    )
    assert store.dataclasses.get("orders").version == 2


def test_new_components_join_an_existing_job_with_their_dependencies(store: MetadataStore) -> None:
    apply(store, example())
    data = example()
    steps = job(data, "daily_sales")["components"]
    steps.append(
        {
            "name": "notify",
            "component_type": "python",
            "configuration": {"callable": "notify.py:send", "kwargs": {}},
            "depends_on": ["archive_copy", "load_warehouse"],
        }
    )
    steps.append(
        {
            "name": "archive_copy",
            "component_type": "write_csv",
            "configuration": {"path": "output/sales.csv"},
            "depends_on": ["validate_sales"],
        }
    )
    # An existing step gains a dependency on a new one.
    component(data, "daily_sales", "save_parquet")["depends_on"] = [
        "validate_sales",
        "archive_copy",
    ]

    plan = apply(store, data)

    assert {k: v for k, v in actions(plan).items() if v != "unchanged"} == {
        "daily_sales.save_parquet": "updated",
        "daily_sales.notify": "created",
        "daily_sales.archive_copy": "created",
    }
    graph = store.components.graph("daily_sales")
    assert graph["notify"] == ["archive_copy", "load_warehouse"]
    assert graph["save_parquet"] == ["archive_copy", "validate_sales"]
    assert not apply(store, data).changed


def test_reversing_a_dependency_never_passes_through_a_cycle(store: MetadataStore) -> None:
    first = {
        "jobs": [
            {
                "name": "j",
                "components": [
                    {"name": "a", "component_type": "test.step"},
                    {"name": "b", "component_type": "test.step", "depends_on": ["a"]},
                    {"name": "c", "component_type": "test.step", "depends_on": ["b"]},
                ],
            }
        ]
    }
    apply(store, first)
    reversed_ = {
        "jobs": [
            {
                "name": "j",
                "components": [
                    {"name": "a", "component_type": "test.step", "depends_on": ["b"]},
                    {"name": "b", "component_type": "test.step", "depends_on": ["c"]},
                    {"name": "c", "component_type": "test.step"},
                ],
            }
        ]
    }

    plan = apply(store, reversed_)

    assert {i.name: i.changed_fields for i in plan.items if i.kind == "component"} == {
        "j.a": ("depends_on",),
        "j.b": ("depends_on",),
        "j.c": ("depends_on",),
    }
    assert store.components.graph("j") == {"c": [], "b": ["c"], "a": ["b"]}
    assert not apply(store, reversed_).changed


# -- archiving ----------------------------------------------------------------------------------


def test_removed_component_is_archived(store: MetadataStore) -> None:
    apply(store, example())
    data = example()
    remove_component(data, "daily_sales", "save_parquet")

    plan = apply(store, data)

    names = [i.name for i in plan.items]
    # Listed right after the job's declared steps.
    assert names.index("daily_sales.save_parquet") == names.index("daily_sales.load_warehouse") + 1
    assert actions(plan)["daily_sales.save_parquet"] == "archived"
    assert plan.counts() == {"created": 0, "updated": 0, "archived": 1, "unchanged": 19}
    assert store.components.get("daily_sales", "save_parquet").status is ComponentStatus.ARCHIVED
    assert "save_parquet" not in store.components.graph("daily_sales")
    assert not apply(store, data).changed


def test_removing_a_chain_archives_dependants_before_what_they_depend_on(
    store: MetadataStore,
) -> None:
    apply(store, example())
    data = example()
    # Keep only the extracts: the join, validation and both writers form a chain to remove.
    daily = job(data, "daily_sales")
    daily["components"] = daily["components"][:2]

    plan = apply(store, data)

    archived = [i.name.split(".")[1] for i in plan.items if i.action == "archived"]
    assert set(archived) == {"join_customers", "validate_sales", "save_parquet", "load_warehouse"}
    assert archived.index("validate_sales") > archived.index("save_parquet")
    assert archived.index("validate_sales") > archived.index("load_warehouse")
    assert archived[-1] == "join_customers"
    assert store.components.graph("daily_sales") == {"extract_orders": [], "extract_customers": []}


def test_removing_a_dependency_and_its_upstream_together(store: MetadataStore) -> None:
    apply(store, example())
    data = example()
    # validate_sales goes; the writers now run straight after the join.
    remove_component(data, "daily_sales", "validate_sales")
    for writer in ("save_parquet", "load_warehouse"):
        component(data, "daily_sales", writer)["depends_on"] = ["join_customers"]

    plan = apply(store, data)

    assert actions(plan)["daily_sales.validate_sales"] == "archived"
    assert actions(plan)["daily_sales.save_parquet"] == "updated"
    assert store.components.graph("daily_sales")["load_warehouse"] == ["join_customers"]


def test_component_declared_archived_is_archived(store: MetadataStore) -> None:
    apply(store, example())
    data = example()
    component(data, "inventory_snapshot", "save_snapshot")["status"] = "archived"

    plan = apply(store, data)

    assert actions(plan)["inventory_snapshot.save_snapshot"] == "archived"
    assert store.components.get("inventory_snapshot", "save_snapshot").status == "archived"
    assert not apply(store, data).changed


def test_archived_component_declared_again_is_revived(store: MetadataStore) -> None:
    apply(store, example())
    without = example()
    remove_component(without, "inventory_snapshot", "save_snapshot")
    apply(store, without)

    plan = apply(store, example())

    line = next(i for i in plan.items if i.name == "inventory_snapshot.save_snapshot")
    assert (line.action, line.changed_fields) == ("updated", ("status",))
    revived = store.components.get("inventory_snapshot", "save_snapshot")
    assert (revived.status, revived.depends_on) == ("active", ["flag_reorders"])


def test_jobs_and_dataclasses_absent_from_the_file_are_left_alone(
    store: MetadataStore, factory: Factory
) -> None:
    other = factory.job(name="legacy_job")
    factory.dataclass(name="legacy_shape")
    data = example()
    data["jobs"] = [job(data, "inventory_snapshot")]

    apply(store, data)

    assert store.jobs.get("legacy_job").revision == other.revision
    assert [c.status for c in store.components.list("legacy_job")] == ["active", "active"]
    assert store.dataclasses.get("legacy_shape").version == 1


def test_an_archived_job_declared_in_the_file_is_restored(store: MetadataStore) -> None:
    apply(store, example())
    store.jobs.archive("inventory_snapshot")

    plan = apply(store, example())

    line = next(i for i in plan.items if i.kind == "job" and i.name == "inventory_snapshot")
    assert (line.action, line.changed_fields) == ("updated", ("is_archived",))
    assert not store.jobs.get("inventory_snapshot").is_archived


# -- refusals -----------------------------------------------------------------------------------


def test_unknown_dataclass_is_reported_with_position_and_writes_nothing(
    store: MetadataStore,
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "        inputs: [sales]\n\n      - name: write_report",
        "        inputs: [sales, stock]\n\n      - name: write_report",
    )
    assert "stock" in text

    with pytest.raises(DefinitionsError) as caught:
        apply(store, text)

    (problem,) = caught.value.problems
    assert str(problem).startswith("<definitions>:")
    assert problem.field == "jobs[2].components[1].inputs[1]"
    assert problem.message.startswith("unknown dataclass 'stock'")
    line = text.splitlines()[problem.line - 1]
    assert line[problem.column - 1 :].startswith("stock]")
    assert store.jobs.list(include_archived=True) == []
    assert store.dataclasses.list(include_archived=True) == []
    assert audit_count(store) == 0


def test_store_refusal_is_reported_with_position_and_rolls_back_everything(
    store_url: str, settings
) -> None:
    # A store configured with a smaller JSON limit than the file format's default refuses a
    # configuration the file itself accepts: the refusal comes from the store, mid-apply.
    small = settings.model_copy(update={"max_json_bytes": 1024})
    data = example()
    component(data, "customer_quality_report", "customer_stats")["configuration"]["query"] = (
        "SELECT 1 " * 200
    )
    text = dump(data)

    with MetadataStore(store_url, settings=small) as limited:
        with pytest.raises(DefinitionsError) as caught:
            apply(limited, text)
        (problem,) = caught.value.problems
        assert problem.field == "jobs[2].components[1].configuration"
        assert problem.line is not None
        assert "bytes serialized; the limit is 1024" in problem.message
        # The dataclasses and the two jobs applied before the refusal are gone too.
        assert limited.jobs.list(include_archived=True) == []
        assert limited.dataclasses.list(include_archived=True) == []
        assert audit_count(limited) == 0


def test_store_refusal_while_updating_an_existing_job_rolls_back(
    store: MetadataStore, store_url: str, settings
) -> None:
    apply(store, example())
    before = snapshot(store)
    data = example()
    job(data, "daily_sales")["num_of_retries"] = 3
    component(data, "inventory_snapshot", "flag_reorders")["configuration"]["filter"] = "x" * 2000

    small = settings.model_copy(update={"max_json_bytes": 1024})
    with (
        MetadataStore(store_url, settings=small) as limited,
        pytest.raises(DefinitionsError) as caught,
    ):
        apply(limited, data)

    assert caught.value.problems[0].field == "jobs[1].components[1].configuration"
    assert snapshot(store) == before


def test_a_job_declared_without_components_keeps_its_stored_components(store, tmp_path):
    from etl_meta.definitions import apply_definitions, load_definitions

    store.jobs.create(
        {"name": "keep", "components": [{"name": "a", "component_type": "test.step"}]}
    )
    plan = apply_definitions(
        store, load_definitions("jobs:\n  - name: keep\n    num_of_retries: 3\n")
    )
    assert [(i.kind, i.action) for i in plan.items] == [("job", "updated")]
    assert [c.name for c in store.components.list("keep")] == ["a"]
    emptied = apply_definitions(
        store,
        load_definitions("jobs:\n  - name: keep\n    num_of_retries: 3\n    components: []\n"),
    )
    assert ("component", "archived") in [(i.kind, i.action) for i in emptied.items]
    assert store.components.list("keep") == []
