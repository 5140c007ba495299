"""The audit trail says what changed: before and after (masked), which secrets changed, what kind
of change it was, and nothing for writes that change nothing. Its filters are indexed."""

from __future__ import annotations

import sqlalchemy as sa

from etl_meta import MetadataStore
from etl_meta.masking import MASK
from tests.factories import T0, Factory

PASSWORD, PASSWORD_V2 = "pw-51aa-first", "pw-51aa-rotated"
URL_PASSWORD, URL_PASSWORD_V2 = "url-9e0f-first", "url-9e0f-rotated"


def _config(
    *, password: str = PASSWORD, url_password: str = URL_PASSWORD, host: str = "db", table="t"
) -> dict:
    return {
        "table": table,
        "connection_url": f"postgresql://etl:{url_password}@{host}/warehouse",
        "password": password,
    }


def _job(factory: Factory) -> str:
    components = [{"name": "w", "component_type": "write_table", "configuration": _config()}]
    return factory.job(components=components).name


def _last_update(store: MetadataStore, job: str):
    (event,) = store.audit.list(entity_type="component", entity_key=f"{job}.w", limit=1)
    assert event.action == "update"
    text = str(event.model_dump())
    for secret in (PASSWORD, PASSWORD_V2, URL_PASSWORD, URL_PASSWORD_V2):
        assert secret not in text
    return event


def test_a_password_only_change_is_marked_in_the_event(store, factory):
    job = _job(factory)
    store.components.update(job, "w", {"configuration": _config(password=PASSWORD_V2)})
    event = _last_update(store, job)
    assert event.before["configuration"]["password"] == MASK
    assert event.after["configuration"]["password"] == MASK
    assert (event.before["config_version"], event.after["config_version"]) == (1, 2)
    assert event.after["masked_changes"] == ["configuration.password"]
    assert "masked_changes" not in event.before


def test_a_url_password_change_is_marked_and_a_new_host_is_shown(store, factory):
    job = _job(factory)
    store.components.update(job, "w", {"configuration": _config(url_password=URL_PASSWORD_V2)})
    event = _last_update(store, job)
    masked = "postgresql://etl:***@db/warehouse"
    assert event.before["configuration"]["connection_url"] == masked
    assert event.after["configuration"]["connection_url"] == masked
    assert event.after["masked_changes"] == ["configuration.connection_url"]

    moved = _config(url_password=URL_PASSWORD_V2, host="db2")
    store.components.update(job, "w", {"configuration": moved})
    event = _last_update(store, job)
    assert event.after["configuration"]["connection_url"] == "postgresql://etl:***@db2/warehouse"
    assert "masked_changes" not in event.after  # the password is the same: only the host moved


def test_a_change_of_plain_fields_marks_no_secret(store, factory):
    job = _job(factory)
    store.components.update(job, "w", {"configuration": _config(table="t2")})
    event = _last_update(store, job)
    assert (event.before["configuration"]["table"], event.after["configuration"]["table"]) == (
        "t",
        "t2",
    )
    assert "masked_changes" not in event.after
    store.jobs.update(job, {"num_of_retries": 3})
    (job_event,) = store.audit.list(entity_type="job", entity_key=job, limit=1)
    assert (job_event.before, job_event.after) == ({"num_of_retries": 1}, {"num_of_retries": 3})


def test_setting_the_same_secrets_again_writes_no_event(store, factory):
    job = _job(factory)
    count = len(store.audit.list(limit=1000))
    store.components.update(job, "w", {"configuration": _config()})
    assert len(store.audit.list(limit=1000)) == count


def test_archiving_and_restoring_are_audited_as_such(store, factory):
    job = _job(factory)
    store.components.archive(job, "w")
    store.components.update(job, "w", {"status": "active"})
    store.components.update(job, "w", {"status": "disabled"})
    events = store.audit.list(entity_type="component", entity_key=f"{job}.w", limit=3)
    assert [(e.action, e.before, e.after) for e in events] == [
        ("update", {"status": "active"}, {"status": "disabled"}),
        ("restore", {"status": "archived"}, {"status": "active"}),
        ("archive", {"status": "active"}, {"status": "archived"}),
    ]
    store.jobs.archive(job)
    store.jobs.restore(job)
    dataclass = factory.dataclass()
    store.dataclasses.archive(dataclass.name)
    store.dataclasses.restore(dataclass.name)
    for entity_type, key in (("job", job), ("dataclass", dataclass.name)):
        events = store.audit.list(entity_type=entity_type, entity_key=key, limit=2)
        assert [(e.action, e.before, e.after) for e in events] == [
            ("restore", {"is_archived": True}, {"is_archived": False}),
            ("archive", {"is_archived": False}, {"is_archived": True}),
        ]


def test_recording_and_replaying_metric_batches_writes_no_event(store, factory):
    job = factory.job()
    run = factory.execution(job.name, run_id="metrics-audit")
    count = len(store.audit.list(limit=1000))
    batch = [("extract", "rows", 10.0, 0, 1, T0), ("load", "rows", 9.0, 0, 1, T0)]
    first = store.metrics.record(batch, execution_id=run.id)
    for _ in range(3):
        again = store.metrics.record(batch, execution_id=run.id)
    assert (first.inserted, again.inserted, again.skipped) == (2, 0, 2)
    assert len(store.audit.list(limit=1000)) == count
    assert store.audit.list(action="record_metrics") == []


def test_a_late_failure_after_success_writes_no_event(store, factory):
    job = factory.job()
    event = {"job": job.name, "orchestrator": "dagster", "external_run_id": "settled"}
    store.executions.upsert({**event, "status": "success", "started_at": T0})
    count = len(store.audit.list(limit=1000))
    store.executions.upsert({**event, "status": "failed", "error": "late boom"})
    store.executions.upsert({**event, "status": "running", "log_path": "/late.log"})
    assert len(store.audit.list(limit=1000)) == count


def test_every_filter_of_the_audit_list_has_an_index(store: MetadataStore):
    with store.transaction(readonly=True) as session:
        indexes = sa.inspect(session.connection()).get_indexes("audit_event")
    columns = {tuple(index["column_names"]) for index in indexes}
    assert {
        ("entity_type", "entity_key", "id"),
        ("entity_type", "entity_id"),
        ("action", "id"),
        ("actor", "id"),
        ("occurred_at",),
    } <= columns


def test_filters_find_events_by_entity_action_and_actor(store_url, settings):
    with MetadataStore(store_url, settings=settings, actor="bob@desk") as store:
        store.jobs.create({"name": "audited"})
        store.jobs.archive("audited")
        with store.acting_as("carol@desk"):
            store.jobs.restore("audited")
        by_key = store.audit.list(entity_type="job", entity_key="audited")
        assert [e.action for e in by_key] == ["restore", "archive", "create"]
        assert [e.actor for e in store.audit.list(action="archive")] == ["bob@desk"]
        assert [e.action for e in store.audit.list(actor="carol@desk")] == ["restore"]
        newest = by_key[0].id
        assert [e.action for e in store.audit.list(entity_key="audited", before_id=newest)] == [
            "archive",
            "create",
        ]
