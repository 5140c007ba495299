"""The migration lock: two migrators at once migrate once; the second waits for the first."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

from etl_meta import schema
from etl_meta.db import create_engine
from etl_meta.migration_env import lock_for_migration


def _etl_meta(*args: str, home: Path) -> subprocess.Popen[str]:
    """``etl-meta ARGS`` in a process of its own, as two operators (or two deploys) would run it."""
    # COLUMNS: pytest-xdist's workers inherit 80, which would wrap the long PostgreSQL URL.
    env = {**os.environ, "ETL_META_HOME": str(home), "COLUMNS": "200"}
    return subprocess.Popen(
        [sys.executable, "-m", "etl_meta.cli", *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _versions(url: str, settings) -> list[str]:
    engine = create_engine(url, settings=settings)
    try:
        with engine.connect() as connection:
            table = sa.table(schema.VERSION_TABLE, sa.column("version_num"))
            return list(connection.execute(sa.select(table.c.version_num)).scalars())
    finally:
        engine.dispose()


def test_two_upgrades_at_once_both_succeed_and_migrate_once(empty_url, settings, tmp_path):
    first = _etl_meta("db", "upgrade", "--database-url", empty_url, home=tmp_path)
    second = _etl_meta("db", "upgrade", "--database-url", empty_url, home=tmp_path)
    outputs = [first.communicate(timeout=300), second.communicate(timeout=300)]

    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert [err for _out, err in outputs] == ["", ""]
    head = schema.head_revision()
    # One migrated the empty database; the other waited, then found it at head.
    said = sorted("upgraded" if f"empty -> {head}" in out else out for out, _err in outputs)
    assert said[0].endswith(f"is already at {head}\n") and said[1] == "upgraded", outputs
    assert _versions(empty_url, settings) == [head]


def test_a_migrator_waits_while_another_holds_the_lock(empty_url, settings, tmp_path):
    engine = create_engine(empty_url, settings=settings)
    try:
        with engine.connect() as holder:
            lock_for_migration(holder)
            waiting = _etl_meta("db", "upgrade", "--database-url", empty_url, home=tmp_path)
            time.sleep(3)  # ample time for the upgrade to finish, were it not waiting
            assert waiting.poll() is None, waiting.communicate()
            holder.rollback()  # releases the lock, as the other migrator's commit would
            out, err = waiting.communicate(timeout=300)
    finally:
        engine.dispose()

    assert waiting.returncode == 0, err
    assert err == ""
    assert f"empty -> {schema.head_revision()}" in out
    assert _versions(empty_url, settings) == [schema.head_revision()]
