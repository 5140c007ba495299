"""The export writers (``etl_meta.cli.metrics_export``), table by table, read back by their users.

Backend-independent: the tables are made here. The CLI tests (tests/analytics/test_cli.py) run
the same writers on real stores of both backends.
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime

import pandas as pd
import pyarrow as pa
import pytest

from etl_meta.cli.metrics_export import export

AT = datetime(2026, 1, 31, 12, 0, 0, 123456, tzinfo=UTC)
AWKWARD = ["plain", 'quote " inside', "back\\slash", "line\nbreak", "tab\tand\x01", "ünï ☃", ","]


def _tables() -> list[pa.Table]:
    """Two tables, as a stream of batches delivers them."""
    return [
        pa.table(
            {
                "metric_id": pa.array([i, i + 1], pa.int64()),
                "name": pa.array([AWKWARD[i % 7], AWKWARD[(i + 1) % 7]], pa.string()),
                "value": pa.array([float(i), 0.1 + i], pa.float64()),
                "step": pa.array([None, 2], pa.int64()),
                "recorded_at": pa.array([AT, AT], pa.timestamp("us", tz="UTC")),
            }
        )
        for i in range(0, 14, 2)
    ]


def _expected() -> pd.DataFrame:
    return pa.concat_tables(_tables()).to_pandas()


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_every_table_is_written_and_reads_back_the_same(tmp_path, fmt):
    target = tmp_path / f"points.{fmt}"
    assert export(fmt, target, _tables()) == 14
    expected = _expected()
    if fmt == "csv":
        read = pd.read_csv(target, keep_default_na=False, na_values=[""])
    elif fmt == "json":
        read = pd.DataFrame(json.loads(target.read_text(encoding="utf-8")))
    else:
        read = pd.read_parquet(target)
    assert read["metric_id"].tolist() == expected["metric_id"].tolist()
    assert read["name"].astype(str).tolist() == expected["name"].tolist()
    assert read["value"].tolist() == expected["value"].tolist()
    assert read["value"].dtype == "float64"
    assert read["step"].isna().tolist() == expected["step"].isna().tolist()
    if fmt == "parquet":
        assert read["recorded_at"].tolist() == [pd.Timestamp(AT)] * 14
    else:
        assert set(read["recorded_at"]) == {"2026-01-31T12:00:00.123456Z"}


def test_json_is_one_array_of_objects_with_typed_values():
    stdout = io.BytesIO()
    from etl_meta.cli import metrics_export

    writer = metrics_export._JsonWriter(stdout)
    for table in _tables():
        writer.write(table)
    writer.close()
    rows = json.loads(stdout.getvalue())
    assert rows[0] == {
        "metric_id": 0,
        "name": "plain",
        "value": 0.0,
        "step": None,
        "recorded_at": "2026-01-31T12:00:00.123456Z",
    }
    assert isinstance(rows[1]["value"], float) and rows[1]["step"] == 2


def test_a_failed_export_leaves_no_file(tmp_path):
    def failing():
        yield from _tables()[:2]
        raise OSError("disk full")

    target = tmp_path / "points.csv"
    with pytest.raises(OSError):
        export("csv", target, failing())
    assert list(tmp_path.iterdir()) == []


def test_an_export_of_nothing_writes_no_file_and_json_says_empty_list(tmp_path, capsysbinary):
    assert export("csv", tmp_path / "none.csv", iter([])) == 0
    assert export("parquet", tmp_path / "none.parquet", iter([])) == 0
    assert list(tmp_path.iterdir()) == []
    assert export("json", None, iter([])) == 0
    assert json.loads(capsysbinary.readouterr().out) == []
