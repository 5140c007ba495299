"""``compare_runs`` compares what was configured, secrets included, and shows only masks.

Secrets are encrypted at rest with a fresh token per encryption, so two versions holding the same
secret never hold the same ciphertext: the comparison must look at plaintext, inside the store.
"""

from __future__ import annotations

import pytest

from etl_meta import MetadataStore
from etl_meta.analytics import compare_runs
from etl_meta.masking import MASK
from tests.backends import isolated_settings
from tests.factories import Factory

PASSWORD, PASSWORD_V2 = "pw-7d1e-first", "pw-7d1e-rotated"
URL_SECRET, URL_SECRET_V2 = "url-3b9c-first", "url-3b9c-rotated"


def _url(secret: str, host: str = "db") -> str:
    return f"postgresql://etl:{secret}@{host}/warehouse"


def _config(
    *, table: str = "t", password: str = PASSWORD, url_secret: str = URL_SECRET, host: str = "db"
) -> dict:
    return {"table": table, "connection_url": _url(url_secret, host), "password": password}


def _job(factory: Factory, **config: str) -> str:
    components = [
        {"name": "load", "component_type": "write_table", "configuration": _config(**config)}
    ]
    return factory.job(components=components).name


def _run(factory: Factory, job: str, version: int) -> int:
    return factory.finished_run(job, config_versions={"load": version}).id


def _changes(store: MetadataStore, a: int, b: int) -> dict[str, tuple]:
    comparison = compare_runs(store, a, b)
    text = repr(comparison) + comparison.config_frame().to_string()
    for secret in (PASSWORD, PASSWORD_V2, URL_SECRET, URL_SECRET_V2):
        assert secret not in text
    return {c.field: (c.before, c.after) for c in comparison.config_changes}


@pytest.fixture
def versions(store: MetadataStore, factory: Factory) -> tuple[str, list[int]]:
    """One run on each of five versions of ``load``: v3 holds v1's content again, v4 a new
    password, v5 a new URL password, v6 the v5 URL on another host (same password)."""
    job = _job(factory)
    for config in (
        _config(table="t2"),
        _config(),
        _config(password=PASSWORD_V2),
        _config(password=PASSWORD_V2, url_secret=URL_SECRET_V2),
        _config(password=PASSWORD_V2, url_secret=URL_SECRET_V2, host="db2"),
    ):
        store.components.update(job, "load", {"configuration": config})
    return job, [_run(factory, job, version) for version in range(1, 7)]


def test_the_same_secrets_in_two_versions_are_no_change(store, versions):
    _job_name, runs = versions
    assert _changes(store, runs[0], runs[2]) == {}  # v1 and v3: same content, new ciphertext
    assert _changes(store, runs[0], runs[1]) == {"table": ("t", "t2")}


def test_a_changed_password_is_reported_masked(store, versions):
    _job_name, runs = versions
    assert _changes(store, runs[2], runs[3]) == {"password": (MASK, MASK)}


def test_a_changed_url_password_is_reported_with_the_url_masked(store, versions):
    _job_name, runs = versions
    masked = "postgresql://etl:***@db/warehouse"
    assert _changes(store, runs[3], runs[4]) == {"connection_url": (masked, masked)}


def test_a_url_on_another_host_shows_the_host_and_hides_the_password(store, versions):
    _job_name, runs = versions
    assert _changes(store, runs[4], runs[5]) == {
        "connection_url": (
            "postgresql://etl:***@db/warehouse",
            "postgresql://etl:***@db2/warehouse",
        )
    }


def test_comparing_writes_no_decrypt_event(store, versions):
    _job_name, runs = versions
    events = len(store.audit.list(limit=1000))
    compare_runs(store, runs[0], runs[4])
    assert len(store.audit.list(limit=1000)) == events
    assert store.audit.list(action="decrypt") == []


def test_runs_of_two_jobs_compare_their_own_versions(store, factory):
    same, other = _job(factory), _job(factory, password=PASSWORD_V2)
    base = _run(factory, same, 1)
    assert _changes(store, base, _run(factory, _job(factory), 1)) == {}
    assert _changes(store, base, _run(factory, other, 1)) == {"password": (MASK, MASK)}


def test_a_component_only_one_job_has_shows_as_absent(store, factory):
    job = _job(factory)
    extract = {"name": "extract", "component_type": "read_csv", "configuration": {"path": "a.csv"}}
    other = factory.job(components=[extract]).name
    a = _run(factory, job, 1)
    b = factory.finished_run(other, config_versions={"extract": 1}).id
    changes = _changes(store, a, b)
    assert changes["table"] == ("t", "<absent>")
    assert changes["password"] == (MASK, "<absent>")
    assert changes["path"] == ("<absent>", "a.csv")


def test_a_renamed_component_does_not_break_the_comparison(store, factory):
    job = _job(factory)
    a = _run(factory, job, 1)
    store.components.rename(job, "load", "write")
    b = factory.finished_run(job, config_versions={"write": 1}).id
    comparison = compare_runs(store, a, b)  # "load" is no longer a name the job knows
    changes = {(c.component, c.field): (c.before, c.after) for c in comparison.config_changes}
    assert changes[("write", "table")] == ("<absent>", "t")
    assert changes[("write", "password")] == ("<absent>", MASK)


def test_a_secret_that_cannot_be_decrypted_is_reported_changed(store_url, tmp_path, versions):
    _job_name, runs = versions
    keyless = isolated_settings(tmp_path / "nokey", secret_keys=None)
    with MetadataStore(store_url, settings=keyless) as blind:
        changes = _changes(blind, runs[0], runs[2])  # unknown is not "unchanged"
    assert changes["password"] == (MASK, MASK)
    assert "table" not in changes
