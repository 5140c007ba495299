"""Every change through the store leaves an audit event in the same transaction."""

import pytest

from etl_meta import MetadataStore
from etl_meta.masking import MASK

URL = "sqlite:///out.db"


def test_definition_changes_are_audited_with_actor_and_masked_diff(store_url, settings):
    with MetadataStore(store_url, settings=settings, actor="alice@laptop") as store:
        store.jobs.create(
            {
                "name": "j",
                "components": [
                    {
                        "name": "w",
                        "component_type": "write_table",
                        "configuration": {"table": "t", "connection_url": URL, "password": "p1"},
                    }
                ],
            }
        )
        store.components.update(
            "j", "w", {"configuration": {"table": "t2", "connection_url": URL, "password": "p2"}}
        )
        store.jobs.update("j", {"num_of_retries": 4})
        events = store.audit.list()
    assert [(e.action, e.entity_type, e.entity_key) for e in events] == [
        ("update", "job", "j"),
        ("update", "component", "j.w"),
        ("create", "component", "j.w"),
        ("create", "job", "j"),
    ]
    assert {e.actor for e in events} == {"alice@laptop"}
    assert events[0].before == {"num_of_retries": 1 - 1} and events[0].after == {
        "num_of_retries": 4
    }
    config_change = events[1]
    before, after = config_change.before["configuration"], config_change.after["configuration"]
    assert (before["table"], before["password"]) == ("t", MASK)
    assert (after["table"], after["password"]) == ("t2", MASK)
    assert config_change.after["config_version"] == 2
    assert "p1" not in str(events) and "p2" not in str(events)


def test_audit_events_roll_back_with_the_change(store):
    with pytest.raises(RuntimeError), store.transaction():
        store.jobs.create({"name": "j"})
        raise RuntimeError
    assert store.audit.list() == []


def test_audit_trail_filters_and_pages(store, factory):
    job = factory.job()
    factory.execution(job.name, run_id="r")
    job_events = store.audit.list(entity_type="job", entity_key=job.name)
    assert [e.action for e in job_events] == ["create"]
    first = store.audit.list(limit=2)
    rest = store.audit.list(before_id=first[-1].id)
    assert len(first) == 2 and all(e.id < first[-1].id for e in rest)
    assert len(first) + len(rest) == len(store.audit.list(limit=1000))
