"""Airflow stays optional: only ``etl_meta/airflow/`` imports it, and only where it must."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pandas as pd

from etl_meta.airflow import handoff

REPO = Path(__file__).resolve().parents[2]
_IMPORT = re.compile(r"^\s*(?:import airflow\b|from airflow\b)", re.MULTILINE)


def test_nothing_outside_etl_meta_airflow_imports_airflow():
    allowed = {("etl_meta", "airflow"), ("tests", "airflow")}
    offenders = [
        str(path.relative_to(REPO))
        for folder in ("etl_meta", "dagster_defs", "benchmarks", "examples", "migrations", "tests")
        for path in (REPO / folder).rglob("*.py")
        if path.relative_to(REPO).parts[:2] not in allowed and _IMPORT.search(path.read_text())
    ]
    assert offenders == []


def test_the_cli_export_hand_off_and_reconcile_modules_load_without_airflow():
    code = (
        "import sys, etl_meta.cli, etl_meta.airflow.cli, etl_meta.airflow.export,"
        " etl_meta.airflow.handoff, etl_meta.airflow.recording, etl_meta.airflow.stores,"
        " etl_meta.airflow.background, etl_meta.airflow.xcom, etl_meta.airflow.rest,"
        " etl_meta.airflow.connection, etl_meta.airflow.reconcile;"
        "print(','.join(m for m in sys.modules if m == 'airflow' or m.startswith('airflow.')))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO
    )
    assert result.stdout.strip() == ""


def test_hand_off_files_parquet_for_frames_pickle_for_the_rest(tmp_path):
    frame = pd.DataFrame({"id": [1, 2], "when": pd.to_datetime(["2026-01-01", "2026-01-02"])})
    run_id = "manual__2026-01-01T00:00:00+00:00"
    path = handoff.write_output(frame, dag_id="d", run_id=run_id, component="a", root=tmp_path)
    assert path == str(tmp_path / "d" / "manual__2026-01-01T00_00_00_00_00" / "a.parquet")
    pd.testing.assert_frame_equal(handoff.read_output(path), frame)

    mixed = pd.DataFrame({"x": [1, "two"]})  # Parquet refuses mixed object columns
    mixed_path = handoff.write_output(
        mixed, dag_id="d", run_id=run_id, component="m", root=tmp_path
    )
    assert mixed_path.endswith("m.pickle")
    pd.testing.assert_frame_equal(handoff.read_output(mixed_path), mixed)

    value = {"rows": 3}
    other = handoff.write_output(value, dag_id="d", run_id=run_id, component="b", root=tmp_path)
    assert other.endswith("b.pickle") and handoff.read_output(other) == value
    assert (
        handoff.write_output(None, dag_id="d", run_id=run_id, component="c", root=tmp_path) is None
    )
    assert handoff.read_output(None) is None
    assert not list((tmp_path / "d").rglob(".*"))  # no temporary files left behind

    assert handoff.clean(3600, root=tmp_path) == []
    assert handoff.clean(0, root=tmp_path) == [tmp_path / "d" / "manual__2026-01-01T00_00_00_00_00"]
