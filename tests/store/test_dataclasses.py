"""Dataclasses: versioned schemas with rules; archived ones take no new links."""

import pytest

from etl_meta import AlreadyExistsError, ValidationError


def test_a_new_schema_or_rules_bumps_the_version_but_a_description_does_not(store, factory):
    dc = factory.dataclass(validation_rules={"not_null": ["id"]})
    assert dc.version == 1 and dc.dataclass_type == "table"
    assert store.dataclasses.update(dc.name, {"description": "orders"}).version == 1
    changed = store.dataclasses.update(dc.name, {"schema_definition": {"columns": {"id": "str"}}})
    assert changed.version == 2
    assert store.dataclasses.update(dc.name, {"validation_rules": {}}).version == 3
    same = store.dataclasses.update(dc.name, {"validation_rules": {}})
    assert same.version == 3 and same.updated_at == store.dataclasses.get(dc.name).updated_at


def test_duplicate_and_invalid_dataclasses_are_rejected(store, factory):
    dc = factory.dataclass()
    with pytest.raises(AlreadyExistsError):
        store.dataclasses.create({"name": dc.name})
    with pytest.raises(ValidationError) as caught:
        store.dataclasses.create({"name": "x", "schema_definition": "columns: id"})
    assert caught.value.field == "schema_definition"


def test_archived_dataclasses_take_no_new_links_until_restored(store, factory):
    dc = factory.dataclass()
    store.dataclasses.archive(dc.name)
    assert store.dataclasses.list() == []
    assert [d.name for d in store.dataclasses.list(include_archived=True)] == [dc.name]
    job = factory.job(components=[])
    with pytest.raises(ValidationError, match="archived"):
        store.components.create(
            job.name, {"name": "c", "component_type": "test.step", "inputs": [dc.name]}
        )
    store.dataclasses.restore(dc.name)
    linked = store.components.create(
        job.name, {"name": "c", "component_type": "test.step", "inputs": [dc.name]}
    )
    assert linked.inputs == [dc.name]


def test_component_errors_name_their_position_when_created_with_a_job(store):
    with pytest.raises(ValidationError) as caught:
        store.jobs.create(
            {
                "name": "j",
                "components": [{"name": "a", "component_type": "test.step", "inputs": ["nope"]}],
            }
        )
    assert caught.value.field == "components.0.inputs"
