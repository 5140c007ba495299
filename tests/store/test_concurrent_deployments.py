"""Four deployments, each its own process, record runs into one store at the same moment while
each replays its neighbour's runs: every run, attempt and point lands exactly once, with one
audit row per run and attempt, and no write fails (SQLite: the file's write lock taken in turn;
PostgreSQL: concurrent upserts of the same keys, without deadlock).
"""

from __future__ import annotations

from pathlib import Path

from etl_meta import MetadataStore
from tests import concurrent_writers as writers


def test_deployments_writing_and_replaying_at_once_record_everything_exactly_once(
    store: MetadataStore, store_url: str, tmp_path: Path
) -> None:
    writers.create_job(store)
    work = writers.Workload(writers=4, runs=3, steps=4)

    done = writers.run(store_url, tmp_path, work)

    found = writers.stored(store_url, tmp_path)
    assert writers.problems(work, found, done["errors"]) == []
    # Every writer submitted its own runs and its neighbour's: twice the points stored.
    assert done["submitted"] == 2 * work.expected["points"]
