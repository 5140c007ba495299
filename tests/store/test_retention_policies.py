"""``store.retention``: the default policy and per-job overrides, versioned and audited."""

from __future__ import annotations

import pytest

from etl_meta import NotFoundError, ValidationError


def policy_events(store):
    return store.audit.list(entity_type="retention_policy")


def test_setting_the_same_policy_again_writes_nothing_not_even_audit(store, factory):
    job = factory.job().name
    assert store.retention.set_default({"raw_days": 30, "rollup_days": 365})
    assert store.retention.set_job(job, {"raw_days": 7, "legal_hold": True, "hold_reason": "x"})
    audited = len(policy_events(store))
    assert not store.retention.set_default({"raw_days": 30, "rollup_days": 365, "archive": False})
    assert not store.retention.set_job(job, {"raw_days": 7, "legal_hold": True, "hold_reason": "x"})
    assert len(policy_events(store)) == audited == 2
    assert [p.revision for p in store.retention.list()] == [1, 1]


def test_a_change_bumps_the_revision_and_audits_only_what_changed(store, factory):
    job = factory.job().name
    store.retention.set_job(job, {"raw_days": 7})
    assert store.retention.set_job(job, {"raw_days": 9})
    (policy,) = store.retention.list()
    assert (policy.job, policy.raw_days, policy.revision) == (job, 9, 2)
    update = next(e for e in policy_events(store) if e.action == "update")
    assert (update.entity_key, update.before, update.after) == (
        job, {"raw_days": 7}, {"raw_days": 9, "revision": 2}
    )  # fmt: skip


def test_an_override_inherits_what_it_leaves_unset_from_the_default(store, factory):
    job = factory.job().name
    store.retention.set_default({"raw_days": 30, "rollup_days": 365, "archive": True})
    store.retention.set_job(job, {"raw_days": 7})
    policy = store.retention.effective(job)
    assert (policy.raw_days, policy.rollup_days, policy.archive, policy.legal_hold) == (
        7, 365, True, False
    )  # fmt: skip
    assert store.retention.remove_job(job) and store.retention.effective(job).raw_days == 30
    assert not store.retention.remove_job(job)
    assert [e.action for e in policy_events(store) if e.entity_key == job] == [
        "delete",
        "create",
    ]  # newest first


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"raw_days": 0, "rollup_days": 1}, "raw_days"),
        ({"raw_days": -1, "rollup_days": 1}, "raw_days"),
        ({"raw_days": "7", "rollup_days": 1}, "raw_days"),
        ({"raw_days": 7, "rollup_days": -1}, "rollup_days"),
        ({"raw_days": 7, "rollup_days": 1, "legal_hold": True}, "legal_hold"),
        ({"raw_days": 7}, "rollup_days"),
    ],
)
def test_a_bad_default_is_refused_naming_the_field(store, data, field):
    with pytest.raises(ValidationError) as caught:
        store.retention.set_default(data)
    assert caught.value.field == field
    assert store.retention.list() == [] and policy_events(store) == []


def test_a_hold_needs_a_reason_and_an_override_needs_a_job(store, factory):
    job = factory.job().name
    with pytest.raises(ValidationError) as caught:
        store.retention.set_job(job, {"legal_hold": True})
    assert caught.value.field == "hold_reason"
    with pytest.raises(NotFoundError):
        store.retention.set_job("no_such_job", {"raw_days": 1})
    assert store.retention.list() == []
