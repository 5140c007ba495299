"""Run tags: written by orchestrators with a run, set and removed by people, audited, never a
secret in clear, and replays change nothing."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from etl_meta import ConflictError, MetadataStore, NotFoundError, ValidationError
from etl_meta.errors import PermissionDeniedError
from etl_meta.masking import MASK
from etl_meta.models import ExecutionTag
from etl_meta.models.execution_tag import MAX_RUN_TAGS, RUN_TAG_VALUE_MAX
from etl_meta.run_tags import orchestrator_tags
from tests.factories import T0, Factory


def _run(job: str, run_id: str = "tagged-1", status: str = "running", **fields) -> dict:
    return {
        "job": job,
        "orchestrator": "dagster",
        "external_run_id": run_id,
        "status": status,
        **fields,
    }


def _events(store: MetadataStore) -> list:
    return store.audit.list(entity_type="execution", limit=1000)


def test_an_orchestrator_writes_tags_with_the_run(store, factory: Factory):
    job = factory.job().name
    run = store.executions.upsert(
        _run(job, tags={"team": "growth", "dagster/schedule_name": "nightly"}, started_at=T0)
    )
    assert run.tags == {"dagster/schedule_name": "nightly", "team": "growth"}
    assert store.executions.get(run.id).tags == run.tags
    assert store.executions.list(job=job)[0].tags == run.tags
    (created,) = _events(store)
    assert created.action == "create"
    assert created.after["tags"] == run.tags


def test_a_run_without_tags_has_an_empty_mapping(store, factory: Factory):
    run = store.executions.upsert(_run(factory.job().name))
    assert run.tags == {}
    assert store.executions.resolve(run.external_run_id).tags == {}


def test_replaying_the_same_tags_changes_nothing_not_even_the_audit_trail(store, factory):
    job = factory.job().name
    event = _run(job, tags={"team": "growth"})
    first = store.executions.upsert(event)
    count = len(_events(store))
    for _ in range(3):
        again = store.executions.upsert(event)
    assert again == first
    assert len(_events(store)) == count


def test_new_and_changed_orchestrator_tags_are_merged_and_audited(store, factory):
    job = factory.job().name
    store.executions.upsert(_run(job, tags={"team": "growth", "tier": "1"}))
    run = store.executions.upsert(_run(job, tags={"tier": "2", "region": "eu"}))
    # A key the orchestrator no longer reports is kept: an older event replayed removes nothing.
    assert run.tags == {"region": "eu", "team": "growth", "tier": "2"}
    event = _events(store)[0]
    assert event.action == "update"
    assert event.before == {"tags": {"region": None, "tier": "1"}}
    assert event.after == {"tags": {"region": "eu", "tier": "2"}}


def test_tags_still_change_on_a_settled_run(store, factory):
    """Tags annotate a run; they are not its outcome, so a finished run may still gain them."""
    job = factory.job().name
    store.executions.upsert(_run(job, status="success", started_at=T0))
    late = store.executions.upsert(_run(job, status="failed", error="late", tags={"note": "ok"}))
    assert late.status.value == "success" and late.error is None
    assert late.tags == {"note": "ok"}


def test_a_person_sets_tags_after_the_fact_and_they_are_audited(store, factory):
    job = factory.job().name
    run = store.executions.upsert(_run(job, tags={"team": "growth"}))
    tagged = store.executions.tag(run.id, {"reviewed": "yes", "team": "finance"})
    assert tagged.tags == {"reviewed": "yes", "team": "finance"}
    event = _events(store)[0]
    assert (event.action, event.entity_key) == ("tag", "dagster:tagged-1")
    assert event.before == {"tags": {"reviewed": None, "team": "growth"}}
    assert event.after == {"tags": {"reviewed": "yes", "team": "finance"}}
    count = len(_events(store))
    assert store.executions.tag("tagged-1", {"reviewed": "yes"}) == tagged  # by run id too
    assert len(_events(store)) == count


def test_an_orchestrator_replay_never_overwrites_a_persons_tag(store, factory):
    job = factory.job().name
    store.executions.upsert(_run(job, tags={"team": "growth"}))
    store.executions.tag("tagged-1", {"team": "finance"})
    count = len(_events(store))
    replayed = store.executions.upsert(_run(job, tags={"team": "growth"}))
    assert replayed.tags == {"team": "finance"}
    assert len(_events(store)) == count


def test_a_person_removes_their_tags_but_not_an_orchestrators(store, factory):
    job = factory.job().name
    store.executions.upsert(_run(job, tags={"dagster/partition": "2026-12-01"}))
    store.executions.tag("tagged-1", {"reviewed": "yes"})
    with pytest.raises(ConflictError, match="written by dagster"):
        store.executions.untag("tagged-1", ["dagster/partition", "reviewed"])
    assert store.executions.resolve("tagged-1").tags["reviewed"] == "yes"  # nothing half-done
    run = store.executions.untag("tagged-1", ["reviewed", "absent"])
    assert run.tags == {"dagster/partition": "2026-12-01"}
    event = _events(store)[0]
    assert (event.action, event.before, event.after) == (
        "tag",
        {"tags": {"reviewed": "yes"}},
        {"tags": {"reviewed": None}},
    )
    count = len(_events(store))
    store.executions.untag("tagged-1", ["reviewed"])
    assert len(_events(store)) == count


def test_orchestrator_secrets_are_masked_before_they_are_stored(store, factory):
    job = factory.job().name
    run = store.executions.upsert(
        _run(
            job,
            tags={
                "conf.db_password": "hunter2",
                "dsn": "postgresql://etl:hunter2@warehouse/db",
                "source": "postgresql://etl:hunter2@warehouse/db",
                "conf.author": "alice",
            },
        )
    )
    assert run.tags == {
        "conf.author": "alice",
        "conf.db_password": MASK,
        "dsn": MASK,
        "source": "postgresql://etl:***@warehouse/db",
    }
    with store.transaction(readonly=True) as session:
        stored = session.execute(sa.select(ExecutionTag.key, ExecutionTag.value)).all()
    assert len(stored) == 4 and "hunter2" not in repr(stored)
    assert "hunter2" not in repr(store.audit.list(limit=100))


def test_a_person_cannot_store_a_secret_in_a_tag(store, factory):
    store.executions.upsert(_run(factory.job().name))
    with pytest.raises(ValidationError) as caught:
        store.executions.tag(
            "tagged-1", {"api_token": "abc", "db": "postgresql://u:pw@h/db", "ok": "fine"}
        )
    assert {p.field for p in caught.value.problems} == {"tags.api_token", "tags.db"}
    assert "abc" not in str(caught.value) and "pw@" not in str(caught.value)
    assert store.executions.resolve("tagged-1").tags == {}


@pytest.mark.parametrize(
    ("tags", "field"),
    [
        ({"bad key": "x"}, "tags.bad key"),
        ({"/leading": "x"}, "tags./leading"),
        ({"k" * 256: "x"}, "tags"),
        ({"team": 3}, "tags.team"),
        ({"team": None}, "tags.team"),
        ({"team": "x" * (RUN_TAG_VALUE_MAX + 1)}, "tags.team"),
        ({"team": "a\x00b"}, "tags.team"),
        ({f"k{i}": "v" for i in range(MAX_RUN_TAGS + 1)}, "tags"),
        (["team=growth"], "tags"),
    ],
)
def test_bad_tags_are_refused_naming_the_field(store, factory, tags, field):
    store.executions.upsert(_run(factory.job().name))
    with pytest.raises(ValidationError) as caught:
        store.executions.tag("tagged-1", tags)
    assert any(p.field.startswith(field) for p in caught.value.problems), caught.value.problems
    assert store.executions.resolve("tagged-1").tags == {}


def test_bad_orchestrator_tags_refuse_the_upsert_through_the_api(store, factory):
    """Through the API, a caller's mistake is refused; the adapters clean what they report."""
    with pytest.raises(ValidationError) as caught:
        store.executions.upsert(_run(factory.job().name, tags={"bad key": "x"}))
    assert caught.value.problems[0].field.startswith("tags")
    assert store.executions.list() == []


def test_the_tag_limit_counts_the_tags_a_run_has(store, factory):
    job = factory.job().name
    store.executions.upsert(_run(job, tags={f"k{i:03}": "v" for i in range(MAX_RUN_TAGS)}))
    with pytest.raises(ValidationError, match=f"at most {MAX_RUN_TAGS} tags"):
        store.executions.tag("tagged-1", {"one_more": "v"})
    assert store.executions.tag("tagged-1", {"k000": "changed"}).tags["k000"] == "changed"


def test_tagging_an_unknown_run_is_not_found(store):
    with pytest.raises(NotFoundError):
        store.executions.tag("no-such-run", {"team": "x"})


def test_tagging_needs_the_writer_role_and_removing_the_admin_role(
    store, store_url, settings, factory
):
    store.executions.upsert(_run(factory.job().name))
    reader = MetadataStore(store_url, settings=settings, role="reader")
    with reader, pytest.raises(PermissionDeniedError):
        reader.executions.tag("tagged-1", {"team": "x"})
    with MetadataStore(store_url, settings=settings, role="writer") as writer:
        assert writer.executions.tag("tagged-1", {"team": "x"}).tags == {"team": "x"}
        with pytest.raises(PermissionDeniedError):
            writer.executions.untag("tagged-1", ["team"])


def test_orchestrator_tags_are_made_storable_never_refused():
    raw = {
        ".dagster/grpc_info": "hidden",
        "bad key": "x",
        "count": 3,
        "nested": {"b": 1, "a": [1, 2]},
        "empty": None,
        "long": "x" * (RUN_TAG_VALUE_MAX + 10),
        "coloured": "\x1b[31mred\x1b[0m",
        "token": "abc",
    }
    tags = orchestrator_tags(raw)
    assert tags == {
        "coloured": "red",
        "count": "3",
        "long": "x" * (RUN_TAG_VALUE_MAX - 1) + "…",
        "nested": '{"a": [1, 2], "b": 1}',
        "token": MASK,
    }
    many = orchestrator_tags({f"k{i:04}": "v" for i in range(MAX_RUN_TAGS + 5)})
    assert len(many) == MAX_RUN_TAGS and "k0000" in many


def test_an_orchestrator_write_past_the_tag_limit_is_recorded_without_the_extra_keys(
    store, factory
):
    """The run must be recorded: new keys beyond the limit are left out (in key order), never
    a reason to refuse the write."""
    job = factory.job().name
    store.executions.upsert(_run(job, tags={f"k{i:03}": "v" for i in range(MAX_RUN_TAGS - 2)}))
    store.executions.tag("tagged-1", {"reviewed": "yes"})
    done = store.executions.upsert(
        _run(job, status="success", tags={"k000": "changed", "new_a": "1", "new_b": "2"})
    )
    assert done.status.value == "success"
    assert len(done.tags) == MAX_RUN_TAGS
    assert done.tags["k000"] == "changed" and done.tags["new_a"] == "1" and "new_b" not in done.tags
    assert store.executions.resolve("tagged-1").tags == done.tags
