"""Components: configuration versions, dependencies inside one job, dataclass links."""

import pytest

from etl_meta import ConflictError, ValidationError
from etl_meta.errors import AlreadyExistsError
from etl_meta.masking import MASK


def test_configuration_changes_are_kept_as_numbered_versions(store, factory):
    job = factory.job()
    store.components.update(job.name, "extract", {"configuration": {"path": "v2.csv"}})
    store.components.update(job.name, "extract", {"configuration": {"path": "v3.csv"}})
    current = store.components.get(job.name, "extract")
    assert current.config_version == 3
    assert current.configuration == {"path": "v3.csv"}
    history = store.components.config_history(job.name, "extract")
    assert [(h.version, h.configuration["path"]) for h in history] == [
        (1, "in.csv"),
        (2, "v2.csv"),
        (3, "v3.csv"),
    ]
    assert store.components.configuration(job.name, "extract", version=2) == {"path": "v2.csv"}
    assert store.jobs.get(job.name).revision == 3


def test_setting_the_same_configuration_again_is_not_a_new_version(store, factory):
    job = factory.job()
    store.components.update(job.name, "extract", {"configuration": {"path": "in.csv"}})
    assert store.components.get(job.name, "extract").config_version == 1
    assert store.jobs.get(job.name).revision == 1


def test_secret_configuration_is_masked_for_readers_but_available_to_runners(store, factory):
    job = factory.job(
        components=[
            {
                "name": "w",
                "component_type": "write_table",
                "configuration": {
                    "table": "t",
                    "connection_url": "sqlite:///out.db",
                    "password": "pw-1",
                },
            }
        ]
    )
    public = store.components.get(job.name, "w")
    # A URL without a password is no secret: people see which database a component writes to.
    assert public.model_dump()["configuration"] == {
        "table": "t",
        "connection_url": "sqlite:///out.db",
        "password": MASK,
    }
    assert "pw-1" not in repr(public) and "pw-1" not in public.model_dump_json()
    assert store.components.configuration(job.name, "w")["password"] == "pw-1"
    history = store.components.config_history(job.name, "w")
    assert history[0].model_dump()["configuration"]["password"] == MASK


def test_dependencies_form_a_graph_in_topological_order(store, factory):
    job = factory.job(
        components=[
            {"name": "orders", "component_type": "test.step"},
            {"name": "customers", "component_type": "test.step"},
            {
                "name": "joined",
                "component_type": "test.step",
                "depends_on": ["orders", "customers"],
            },
            {"name": "report", "component_type": "test.step", "depends_on": ["joined"]},
        ]
    )
    graph = store.components.graph(job.name)
    assert graph["joined"] == ["customers", "orders"]
    order = list(graph)
    assert order.index("joined") > order.index("orders")
    assert order[-1] == "report"


def test_a_dependency_cycle_is_refused_and_nothing_changes(store, factory):
    job = factory.job()
    with pytest.raises(ConflictError) as caught:
        store.components.set_dependencies(job.name, "extract", ["load"])
    assert caught.value.field == "depends_on"
    assert "extract -> load -> extract" in str(caught.value) or "load -> extract -> load" in str(
        caught.value
    )
    assert store.components.get(job.name, "extract").depends_on == []


def test_a_component_cannot_depend_on_itself(store, factory):
    job = factory.job()
    with pytest.raises(ValidationError, match="itself"):
        store.components.set_dependencies(job.name, "load", ["load"])


def test_dependencies_never_cross_jobs(store, factory):
    first = factory.job()
    second = factory.job(components=[{"name": "only", "component_type": "test.step"}])
    with pytest.raises(ValidationError) as caught:
        store.components.set_dependencies(second.name, "only", ["extract"])
    assert caught.value.field == "depends_on"
    assert first.name not in str(caught.value)


def test_component_names_are_unique_within_a_job_only(store, factory):
    first = factory.job()
    second = factory.job()
    assert store.components.get(second.name, "extract").job_id != first.id
    with pytest.raises(AlreadyExistsError):
        store.components.create(first.name, {"name": "extract", "component_type": "test.step"})


def test_archiving_a_component_others_depend_on_is_refused(store, factory):
    job = factory.job()
    with pytest.raises(ConflictError, match="load"):
        store.components.archive(job.name, "extract")
    store.components.archive(job.name, "load")
    store.components.archive(job.name, "extract")
    assert store.components.list(job.name) == []
    assert len(store.components.list(job.name, include_archived=True)) == 2


def test_components_link_to_the_dataclasses_they_read_and_write(store, factory):
    orders = factory.dataclass()
    job = factory.job(
        components=[
            {"name": "extract", "component_type": "test.step", "outputs": [orders.name]},
            {
                "name": "load",
                "component_type": "test.step",
                "inputs": [orders.name],
                "depends_on": ["extract"],
            },
        ]
    )
    assert store.components.get(job.name, "extract").outputs == [orders.name]
    assert store.components.get(job.name, "load").inputs == [orders.name]
    with pytest.raises(ValidationError) as caught:
        store.components.update(job.name, "load", {"inputs": ["nope"]})
    assert caught.value.field == "inputs"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"name": "dotted.name", "component_type": "test.step"}, "name"),
        ({"name": "ok", "component_type": "bad type!"}, "component_type"),
        ({"name": "ok", "component_type": "test.step", "configuration": [1, 2]}, "configuration"),
        (
            {"name": "ok", "component_type": "test.step", "configuration": {"x": float("nan")}},
            "configuration",
        ),
        (
            {"name": "ok", "component_type": "test.step", "configuration": {"x": "a\x00b"}},
            "configuration",
        ),
        ({"name": "ok", "component_type": "test.step", "status": "sleeping"}, "status"),
    ],
)
def test_invalid_component_is_rejected_naming_the_field(store, factory, data, field):
    job = factory.job(components=[])
    with pytest.raises(ValidationError) as caught:
        store.components.create(job.name, data)
    assert caught.value.field == field
    assert store.components.list(job.name, include_archived=True) == []


def test_oversized_configuration_is_rejected_with_the_store_limit(store, factory, settings):
    job = factory.job(components=[])
    big = {"blob": "x" * (settings.max_json_bytes + 1)}
    with pytest.raises(ValidationError, match="bytes serialized"):
        store.components.create(
            job.name, {"name": "c", "component_type": "test.step", "configuration": big}
        )


def test_disabling_a_component_bumps_the_job_revision(store, factory):
    job = factory.job()
    store.components.update(job.name, "load", {"status": "DISABLED"})
    assert store.components.get(job.name, "load").status == "disabled"
    assert store.jobs.get(job.name).revision == 2
