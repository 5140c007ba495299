"""Catalog snapshots are cached per process, keyed by the catalog's fingerprint (both backends)."""

from __future__ import annotations

from etl_meta import MetadataStore
from etl_meta.catalog import take_snapshot
from etl_meta.query_timing import query_stats, reset_query_stats
from tests.factories import Factory


def _selects() -> int:
    return query_stats().get("SELECT", {"count": 0})["count"]


def test_an_unchanged_catalog_is_served_from_the_cache(store: MetadataStore, factory: Factory):
    for _ in range(3):
        factory.job()
    factory.dataclass()
    reset_query_stats()
    cold = take_snapshot(store, cached=False)
    cold_selects = _selects()
    reset_query_stats()
    warm = take_snapshot(store)
    assert _selects() == 2 < cold_selects  # the fingerprint only
    assert warm.model_dump(exclude={"taken_at"}) == cold.model_dump(exclude={"taken_at"})
    assert warm.taken_at >= cold.taken_at


def test_a_change_made_by_another_process_is_seen_at_once(
    store: MetadataStore, store_url: str, settings, factory: Factory
):
    job = factory.job()
    dataclass = factory.dataclass()
    before = take_snapshot(store)
    # Another engine on the same database stands for another process.
    with MetadataStore(store_url, settings=settings) as other:
        other.components.update(job.name, "extract", {"configuration": {"path": "new.csv"}})
    after = take_snapshot(store)
    assert after.revision != before.revision
    assert after.job(job.name).config_versions["extract"] == 2

    with MetadataStore(store_url, settings=settings) as other:
        other.dataclasses.update(dataclass.name, {"dataclass_type": "file"})
    changed = take_snapshot(store)
    assert changed.dataclasses[dataclass.name].dataclass_type == "file"

    with MetadataStore(store_url, settings=settings) as other:
        other.jobs.archive(job.name)
    assert job.name not in {j.name for j in take_snapshot(store).jobs}
