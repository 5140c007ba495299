"""How a component's output reaches the components downstream of it under Airflow.

XCom lives in Airflow's metadata database and is meant for small values; a DataFrame does not
belong there. Each task therefore writes its component's output to a run-scoped file and pushes
only the path through XCom (the task's return value)::

    ETL_META_HOME/airflow/<dag_id>/<run_id>/<component>.parquet   DataFrames
    ETL_META_HOME/airflow/<dag_id>/<run_id>/<component>.pickle    anything else

``ETL_META_AIRFLOW_DATA_DIR`` replaces ``ETL_META_HOME/airflow``. Every worker must see the same
directory (a shared volume) unless the whole DAG runs on one machine. A ``None`` output writes
no file and pushes ``None``. Files are never deleted by etl-meta: remove a run's directory once
the run is over (``etl-meta airflow clean``).
"""

from __future__ import annotations

import os
import pickle
import re
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from etl_meta.config import Settings

DATA_DIR_ENV = "ETL_META_AIRFLOW_DATA_DIR"
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]")


def data_dir(settings: Settings | None = None) -> Path:
    """The root of every run's hand-off files."""
    configured = os.environ.get(DATA_DIR_ENV, "").strip()
    if configured:
        return Path(configured).expanduser()
    return (settings or Settings()).home / "airflow"


def safe_name(value: str) -> str:
    """``value`` as one portable path segment (Airflow run ids hold ``:`` and ``+``)."""
    return _UNSAFE.sub("_", value) or "_"


def run_dir(dag_id: str, run_id: str, *, root: Path | None = None) -> Path:
    """The directory holding run ``run_id``'s hand-off files."""
    return (root or data_dir()) / safe_name(dag_id) / safe_name(run_id)


def _is_frame(value: Any) -> bool:
    # Duck-typed: pandas is imported only when a frame is actually written.
    return hasattr(value, "to_parquet") and hasattr(value, "columns") and hasattr(value, "dtypes")


def write_output(
    value: Any, *, dag_id: str, run_id: str, component: str, root: Path | None = None
) -> str | None:
    """Write ``value`` for the downstream tasks and return its path (``None`` for ``None``).

    A DataFrame goes to Parquet; if Parquet refuses it (mixed-type object columns, non-string
    column names), it is pickled like any other value. The file is replaced atomically, so a
    retried task never leaves a torn file behind.
    """
    if value is None:
        return None
    directory = run_dir(dag_id, run_id, root=root)
    directory.mkdir(parents=True, exist_ok=True)
    stem = directory / safe_name(component)
    descriptor, temporary = tempfile.mkstemp(prefix=f".{stem.name}.", dir=directory)
    os.close(descriptor)
    try:
        target = None
        if _is_frame(value):
            try:
                value.to_parquet(temporary)
                target = stem.with_suffix(".parquet")
            except (ValueError, TypeError, NotImplementedError):  # pyarrow's Arrow*Error too
                target = None
        if target is None:
            with open(temporary, "wb") as handle:
                pickle.dump(value, handle, protocol=pickle.HIGHEST_PROTOCOL)
            target = stem.with_suffix(".pickle")
        os.replace(temporary, target)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return str(target)


def read_output(path: str | None) -> Any:
    """The value a task wrote with :func:`write_output` (``None`` stays ``None``).

    Pickle files are trusted: only etl-meta tasks of the same deployment write into the data
    directory, which should not be writable by anyone else.
    """
    if path is None:
        return None
    if path.endswith(".parquet"):
        import pandas as pd

        return pd.read_parquet(path)
    with open(path, "rb") as handle:
        return pickle.load(handle)  # our own files (see the docstring)


def clean(older_than_seconds: float, *, root: Path | None = None) -> list[Path]:
    """Delete run directories not modified for ``older_than_seconds``; return what went."""
    base = root or data_dir()
    cutoff = time.time() - older_than_seconds
    removed: list[Path] = []
    if not base.is_dir():
        return removed
    for dag in sorted(p for p in base.iterdir() if p.is_dir()):
        for run in sorted(p for p in dag.iterdir() if p.is_dir()):
            newest = max((f.stat().st_mtime for f in run.rglob("*")), default=run.stat().st_mtime)
            if max(newest, run.stat().st_mtime) < cutoff:
                shutil.rmtree(run, ignore_errors=True)
                removed.append(run)
    return removed
