"""PostgreSQL partitions of ``metric_point``: created ahead of the writers, dropped when expired.

``metric_point`` is partitioned by ranges of ``series_id`` (migration 0011); ``metric_partition``
lists the ranges. Series ids grow as runs record, so the partition above the highest series is
where the next points land:

* :func:`ensure_ahead` keeps :data:`PARTITIONS_AHEAD` empty partitions above the highest series.
  A store whose maintenance stopped loses nothing: points beyond the last range land in the
  ``DEFAULT`` partition, and the next :func:`ensure_ahead` moves them into a new range.
* :func:`drop_expired` detaches and drops the partitions whose every series belongs to a run
  retention deletes: seconds and kilobytes of WAL where a row-wise ``DELETE`` takes minutes
  and writes every row to the WAL.

Both take ``lock_timeout``: partition DDL waits for the parent's lock behind running writers, and
while it waits it blocks new ones, so it gives up quickly (the next run tries again) rather than
stall a pipeline. Both need the role that owns the table (the one that ran the migrations): for
any other role they do nothing and say so, and retention falls back to deleting rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

#: Series per new partition (about 1.2 M points at a dozen points per series).
SERIES_PER_PARTITION = 100_000
#: Empty partitions kept above the highest series.
PARTITIONS_AHEAD = 2
#: How long partition DDL may wait for a lock before it gives up for this run.
LOCK_TIMEOUT = "2s"
#: SQLSTATEs that mean "not now" or "not allowed", never "broken".
_SKIPPABLE = {"55P03": "lock timeout", "42501": "insufficient privilege", "42P01": "no table"}
_LAST_SERIES = sa.text("SELECT coalesce(max(id), 0) FROM metric_series")


@dataclass(frozen=True)
class Partition:
    """One range of series ids, ``[low, high)``, and its table."""

    name: str
    low: int
    high: int


@dataclass(frozen=True)
class PartitionWork:
    """What one maintenance call did: partitions created or dropped, points moved or dropped."""

    created: tuple[str, ...] = ()
    dropped: tuple[str, ...] = ()
    moved_points: int = 0
    dropped_points: int = 0
    #: Why it stopped early (a lock timeout, a role that does not own the table), if it did.
    skipped: str | None = None


def partitioned(bind: sa.Engine | sa.Connection) -> bool:
    """Whether this store partitions its points (PostgreSQL)."""
    return bind.dialect.name == "postgresql"


def partitions(connection: sa.Connection) -> list[Partition]:
    """The ranges, lowest first (empty on SQLite)."""
    if not partitioned(connection):
        return []
    rows = connection.execute(
        sa.text("SELECT name, low, high FROM metric_partition ORDER BY low")
    ).all()
    return [Partition(name, low, high) for name, low, high in rows]


@dataclass(frozen=True)
class PartitionSize:
    """A partition as ``etl-meta db partitions`` lists it (``low``/``high`` ``None``: DEFAULT)."""

    name: str
    low: int | None
    high: int | None
    #: PostgreSQL's estimate (``pg_class.reltuples``); ``None`` before the first ``ANALYZE``.
    points: int | None
    bytes: int


_SIZES = sa.text(
    "SELECT c.relname, p.low, p.high, c.reltuples::bigint, pg_total_relation_size(c.oid) "
    "FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid "
    "LEFT JOIN metric_partition p ON p.name = c.relname "
    "WHERE i.inhparent = 'metric_point'::regclass ORDER BY p.low NULLS LAST"
)


def sizes(connection: sa.Connection) -> list[PartitionSize]:
    """Every partition, lowest range first and ``DEFAULT`` last, with its size."""
    if not partitioned(connection):
        return []
    return [
        PartitionSize(name, low, high, None if points < 0 else int(points), int(size))
        for name, low, high, points, size in connection.execute(_SIZES)
    ]


def ensure_ahead(
    engine: sa.Engine, *, size: int = SERIES_PER_PARTITION, ahead: int = PARTITIONS_AHEAD
) -> PartitionWork:
    """Create partitions until ``ahead`` empty ones sit above the highest series; each new
    range takes the points the ``DEFAULT`` partition holds for it. One transaction each.
    """
    if not partitioned(engine):
        return PartitionWork()
    created: list[str] = []
    moved = 0
    while True:
        try:
            with engine.connect() as connection:
                top = connection.execute(
                    sa.text("SELECT coalesce(max(high), 1) FROM metric_partition")
                ).scalar_one()
                last_series = connection.execute(_LAST_SERIES).scalar_one()
        except sa.exc.DBAPIError as exc:
            return PartitionWork(created=tuple(created), moved_points=moved, skipped=_skipped(exc))
        if top > last_series + ahead * size:
            return PartitionWork(created=tuple(created), moved_points=moved)
        partition = Partition(f"metric_point_{top}", top, top + size)
        try:
            with engine.begin() as connection:
                moved += _add_partition(connection, partition)
        except sa.exc.DBAPIError as exc:
            reason = _skippable(exc)
            if reason is None:
                raise
            return PartitionWork(created=tuple(created), moved_points=moved, skipped=reason)
        created.append(partition.name)


def _add_partition(connection: sa.Connection, partition: Partition) -> int:
    """One new range: the table, the ``DEFAULT`` partition's rows for it, attached and listed."""
    name, low, high = partition.name, partition.low, partition.high
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    connection.exec_driver_sql(
        f"CREATE TABLE {name} (LIKE metric_point INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
    )
    # ``name`` is built from integers above, never from input.
    move = (
        "WITH moved AS (DELETE FROM metric_point_default WHERE series_id >= :low "  # noqa: S608
        "AND series_id < :high RETURNING series_id, step, value, recorded_at, id) "
        f"INSERT INTO {name} (series_id, step, value, recorded_at, id) SELECT * FROM moved"
    )
    moved = connection.execute(
        sa.text(move),
        {"low": low, "high": high},
    ).rowcount
    connection.exec_driver_sql(
        f"ALTER TABLE metric_point ATTACH PARTITION {name} FOR VALUES FROM ({low}) TO ({high})"
    )
    connection.execute(
        sa.text(
            "INSERT INTO metric_partition (name, low, high, created_at) "
            "VALUES (:name, :low, :high, :now)"
        ),
        {"name": name, "low": low, "high": high, "now": datetime.now(UTC)},
    )
    return max(moved, 0)


def drop_expired(engine: sa.Engine, expired_runs: sa.Select[Any] | None) -> PartitionWork:
    """Detach and drop every full partition whose series all belong to ``expired_runs`` (a
    SELECT of execution ids), or, with ``None``, every full partition that holds no point
    (retention deleted its rows: dropping it gives the disk back, which ``VACUUM`` would not
    reuse, since new points go to newer ranges). One transaction each; the runs' other rows
    are the caller's.

    A partition is *full* when a series above its range exists: no new series can take one of
    its ids. A point written after the check into a dropped range lands in the ``DEFAULT``
    partition instead: nothing is lost but what retention was deleting.
    """
    if not partitioned(engine):
        return PartitionWork()
    dropped: list[str] = []
    points = 0
    try:
        with engine.connect() as connection:
            last_series = connection.execute(_LAST_SERIES).scalar_one()
            ranges = partitions(connection)
    except sa.exc.DBAPIError as exc:
        return PartitionWork(skipped=_skipped(exc))
    series = sa.table("metric_series", sa.column("id"), sa.column("execution_id"))
    for partition in ranges:
        if partition.high > last_series:
            break  # still filling, or ahead
        if expired_runs is None:
            kept = sa.select(sa.literal(1)).select_from(sa.table(partition.name))
        else:
            expired = expired_runs.subquery("expired")
            kept = sa.select(sa.literal(1)).where(
                series.c.id >= partition.low,
                series.c.id < partition.high,
                series.c.execution_id.not_in(sa.select(expired.c[0])),
            )
        try:
            with engine.begin() as connection:
                if connection.execute(sa.select(sa.exists(kept))).scalar_one():
                    continue
                points += _drop_partition(connection, partition)
        except sa.exc.DBAPIError as exc:
            reason = _skippable(exc)
            if reason is None:
                raise
            return PartitionWork(dropped=tuple(dropped), dropped_points=points, skipped=reason)
        dropped.append(partition.name)
    return PartitionWork(dropped=tuple(dropped), dropped_points=points)


def _drop_partition(connection: sa.Connection, partition: Partition) -> int:
    connection.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
    # The name is read from metric_partition, which only this module writes (from integers).
    count_points = f"SELECT count(*) FROM {partition.name}"  # noqa: S608
    count = connection.exec_driver_sql(count_points).scalar_one()
    connection.exec_driver_sql(f"ALTER TABLE metric_point DETACH PARTITION {partition.name}")
    connection.exec_driver_sql(f"DROP TABLE {partition.name}")
    connection.execute(
        sa.text("DELETE FROM metric_partition WHERE name = :name"), {"name": partition.name}
    )
    return int(count)


def _skippable(exc: sa.exc.DBAPIError) -> str | None:
    return _SKIPPABLE.get(getattr(exc.orig, "sqlstate", None) or "")


def _skipped(exc: sa.exc.DBAPIError) -> str:
    """Why a read of the partition list failed, or the error itself when that is not a skip."""
    reason = _skippable(exc)
    if reason is None:
        raise exc
    return reason
