"""Timestamps are instants: aware in, UTC out, identical on both backends."""

from datetime import UTC, datetime, timedelta, timezone

import pytest

from etl_meta import ValidationError
from etl_meta.models import Job
from etl_meta.types import UTCDateTime

PLUS_TWO = timezone(timedelta(hours=2))


def test_aware_timestamps_in_any_zone_read_back_as_the_same_instant_in_utc(store, factory):
    job = factory.job()
    local = datetime(2026, 3, 29, 2, 30, 15, 123456, tzinfo=PLUS_TWO)
    run = factory.execution(job.name, started_at=local)
    read = store.executions.get(run.id).started_at
    assert read == local
    assert read.utcoffset() == timedelta(0)
    assert read.hour == 0 and read.microsecond == 123456


def test_naive_timestamps_are_rejected_before_the_database(store, factory):
    job = factory.job()
    with pytest.raises(ValidationError) as caught:
        factory.execution(job.name, started_at=datetime(2026, 1, 1))
    assert caught.value.field == "started_at"


def test_the_column_type_itself_refuses_naive_values(store):
    with pytest.raises(Exception, match="naive"), store.transaction() as session:
        session.add(Job(name="n", created_at=datetime(2026, 1, 1), updated_at=datetime(2026, 1, 1)))
        session.flush()


def test_timestamps_order_correctly_across_zones(store, factory):
    job = factory.job()
    early = datetime(2026, 1, 1, 12, 0, tzinfo=PLUS_TWO)  # 10:00 UTC
    late = datetime(2026, 1, 1, 11, 0, tzinfo=UTC)
    factory.execution(job.name, run_id="late", started_at=late)
    factory.execution(job.name, run_id="early", started_at=early)
    runs = sorted(store.executions.list(), key=lambda r: r.started_at)
    assert [r.external_run_id for r in runs] == ["early", "late"]


def test_utc_datetime_bind_rejects_non_datetimes():
    with pytest.raises(TypeError):
        UTCDateTime().process_bind_param("2026-01-01", dialect=None)
