"""`etl-meta metrics query|plot` and `etl-meta runs compare` on every backend.

Exports are read back the way their users would (pandas for CSV and Parquet, ``json`` for JSON);
charts are checked through :func:`etl_meta.cli.metrics_figure.build_figure` (how many lines, labels,
axes) and as files (the PNG signature; the SVG parsed as XML, its text holding the labels).
"""

from __future__ import annotations

import io
import json
import xml.etree.ElementTree as ET
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import pytest
from rich.console import Console

from etl_meta.analytics import aggregate_metrics, metrics_frame
from etl_meta.cli import metrics_figure, metrics_output
from etl_meta.errors import ValidationError
from etl_meta.masking import MASK
from tests.factories import T0

SECRET = "cli-metrics-secret-0b7e"
SECRET_V2 = "cli-metrics-secret-v2-5d21"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SVG = "{http://www.w3.org/2000/svg}"
DAYS = 4
STEPS_PER_DAY = 3


@pytest.fixture
def seeded(store, factory):
    """sales: run-a (success, config v1) with 24 points over 4 days; run-b (failed, load v2,
    extract retried) with 3 final points. Secrets in load's configuration, rotated for v2.
    """
    factory.job(
        name="sales",
        tags={"env": "prod"},
        components=[
            {"name": "extract", "component_type": "read_csv", "configuration": {"path": "a.csv"}},
            {
                "name": "load",
                "component_type": "write_table",
                "depends_on": ["extract"],
                "configuration": {
                    "table": "t",
                    "connection_url": "sqlite:///out.db",
                    "password": SECRET,
                },
            },
        ],
    )
    run_a = factory.finished_run(
        "sales", run_id="run-a", seconds=42, config_versions={"extract": 1, "load": 1}
    )
    store.components.update(
        "sales",
        "load",
        {
            "configuration": {
                "table": "t2",
                "connection_url": "sqlite:///out.db",
                "password": SECRET_V2,
            }
        },
    )
    run_b = factory.execution(
        "sales",
        run_id="run-b",
        status="failed",
        started_at=T0 + timedelta(days=DAYS),
        ended_at=T0 + timedelta(days=DAYS, seconds=50),
        config_versions={"extract": 1, "load": 2},
    )
    points = []
    for day in range(DAYS):
        for index in range(STEPS_PER_DAY):
            at = T0 + timedelta(days=day, hours=6 * index, microseconds=index)
            step = day * 10 + index
            points += [
                ("extract", "rows", 1000.0 + day * 10 + index, step, 1, at),
                ("load", "rows", 990.0 + day * 10 + index, step, 1, at),
            ]
    store.metrics.record(points, execution_id=run_a.id)
    at_b = T0 + timedelta(days=DAYS)
    store.metrics.record(
        [
            ("extract", "rows", 5.0, 0, 1, at_b),  # retried attempt: hidden unless --attempts all
            ("extract", "rows", 1500.0, 0, 2, at_b),
            ("load", "rows", 700.0, 0, 1, at_b),
            ("load", "seconds", 3.25, 0, 1, at_b),
        ],
        execution_id=run_b.id,
    )
    return run_a, run_b


FINAL_POINTS = DAYS * STEPS_PER_DAY * 2 + 3


# --- metrics query: formats --------------------------------------------------------------------


def test_csv_to_stdout_parses_with_pandas(cli, store, seeded):
    result = cli("metrics", "query", "--format", "csv")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(io.StringIO(result.stdout))
    expected = metrics_frame(store)
    assert frame["metric_id"].tolist() == expected["metric_id"].tolist()
    assert frame["value"].tolist() == expected["value"].tolist()
    assert all(text.endswith("Z") and "T" in text for text in frame["recorded_at"])
    parsed = pd.to_datetime(frame["recorded_at"], utc=True)
    assert (parsed == expected["recorded_at"]).all()  # microseconds survive


def test_json_to_stdout_is_one_array(cli, store, seeded):
    result = cli("metrics", "query", "-f", "json", "--name", "rows", "--component", "load")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    assert len(rows) == DAYS * STEPS_PER_DAY + 1
    assert {row["component"] for row in rows} == {"load"}
    first = rows[0]
    assert set(first) == set(metrics_frame(store).columns)
    assert isinstance(first["metric_id"], int) and isinstance(first["value"], float)
    assert datetime.fromisoformat(first["recorded_at"]) == T0


def test_parquet_to_a_file_is_typed(cli, store, seeded, tmp_path):
    target = tmp_path / "points.parquet"
    result = cli("metrics", "query", "-f", "parquet", "-o", str(target))
    assert result.exit_code == 0, result.output
    assert f"wrote {FINAL_POINTS} rows" in result.stderr
    frame = pd.read_parquet(target)
    assert len(frame) == FINAL_POINTS
    assert frame["recorded_at"].dtype == pd.DatetimeTZDtype("us", "UTC")
    assert isinstance(frame["name"].dtype, pd.CategoricalDtype)
    assert frame["value"].dtype == np.float64 and frame["step"].dtype == np.int64
    expected = metrics_frame(store)
    assert (frame["recorded_at"] == expected["recorded_at"]).all()


def test_csv_and_json_to_a_file(cli, seeded, tmp_path):
    for fmt in ("csv", "json"):
        target = tmp_path / f"points.{fmt}"
        result = cli("metrics", "query", "-f", fmt, "-o", str(target), "--job", "sales")
        assert result.exit_code == 0, result.output
        assert result.stdout == ""  # data went to the file
        text = target.read_text(encoding="utf-8")
        count = len(pd.read_csv(io.StringIO(text))) if fmt == "csv" else len(json.loads(text))
        assert count == FINAL_POINTS
        assert not list(tmp_path.glob("*.partial"))


def test_parquet_needs_an_output_file(cli, seeded):
    result = cli("metrics", "query", "--format", "parquet")
    assert result.exit_code == 2
    assert "-o" in result.output


def test_nothing_matches(cli, seeded, tmp_path):
    result = cli("metrics", "query", "--name", "missing")
    assert result.exit_code == 0 and "no metric points match" in result.stdout
    target = tmp_path / "none.csv"
    result = cli("metrics", "query", "--name", "missing", "-f", "csv", "-o", str(target))
    assert result.exit_code == 0 and "no metric points match" in result.stderr
    assert not target.exists()
    result = cli("metrics", "query", "--name", "missing", "--agg", "mean")
    assert result.exit_code == 0 and "no metric points match" in result.stdout


def test_table_is_truncated_with_a_count_of_the_rest(cli, seeded):
    result = cli("metrics", "query", "--limit", "5")
    assert result.exit_code == 0, result.output
    assert f"… {FINAL_POINTS - 5} more rows" in result.stdout
    assert "recorded_at" in result.stdout and "2026-01-01 00:00:00Z" in result.stdout
    everything = cli("metrics", "query")  # default 50 rows: all 27 fit
    assert "more rows" not in everything.stdout and "run-b" in everything.stdout


def test_limit_caps_exports(cli, seeded):
    result = cli("metrics", "query", "-f", "csv", "--limit", "4")
    assert len(pd.read_csv(io.StringIO(result.stdout))) == 4


def test_filters_reach_the_query(cli, store, seeded):
    def count(*args: str) -> int:
        result = cli("metrics", "query", "-f", "json", *args)
        assert result.exit_code == 0, result.output
        return len(json.loads(result.stdout)) if result.stdout else 0

    assert count("--attempts", "all") == FINAL_POINTS + 1
    assert count("--run", "run-b") == 3
    assert count("--since", "2026-01-04T00:00:00Z") == STEPS_PER_DAY * 2 + 3
    assert count("--until", "2026-01-02") == STEPS_PER_DAY * 2
    assert count("--tag", "env=prod") == FINAL_POINTS
    assert count("--tag", "env=dev") == 0
    assert count("--filter", "value > 1200 or name = 'seconds'") == 2
    assert count("--job", "sales", "--job", "other", "--name", "seconds") == 1


def test_bad_input_is_one_readable_error(cli, seeded):
    bad_filter = cli("metrics", "query", "--filter", "value >")
    assert bad_filter.exit_code == 1 and "filter" in bad_filter.stderr
    assert "Traceback" not in bad_filter.output
    assert cli("metrics", "query", "--tag", "env").exit_code == 2
    assert cli("metrics", "query", "--every", "1d").exit_code == 2  # --every needs --agg
    unknown = cli("metrics", "query", "--agg", "median")
    assert unknown.exit_code == 1 and "aggregates" in unknown.stderr
    missing = cli("metrics", "query", "--run", "no-such-run")
    assert missing.exit_code == 1 and "no-such-run" in missing.stderr
    assert cli("metrics", "query", "-o", "x.txt").exit_code == 2  # a table goes to the terminal


def test_aggregates_match_the_api(cli, store, seeded):
    result = cli("metrics", "query", "--agg", "mean,p95,count", "--every", "1d", "-f", "json")
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)
    expected = aggregate_metrics(store, every="1d", aggregates=["mean", "p95", "count"])
    assert len(rows) == len(expected)
    assert [r["p95"] for r in rows] == pytest.approx(expected["p95"].tolist())
    assert [r["count"] for r in rows] == expected["count"].tolist()
    assert rows[0]["bucket"] == "2026-01-01T00:00:00.000000Z"
    by_job = cli("metrics", "query", "--agg", "max", "--every", "none", "--by", "job", "-f", "csv")
    frame = pd.read_csv(io.StringIO(by_job.stdout))
    assert frame.to_dict("records") == [{"job": "sales", "max": 1500.0}]
    table = cli("metrics", "query", "--agg", "mean", "--every", "1w")
    assert table.exit_code == 0 and "metrics per week" in table.stdout


def test_aggregated_parquet(cli, seeded, tmp_path):
    target = tmp_path / "daily.parquet"
    result = cli("metrics", "query", "--agg", "p50,last", "-f", "parquet", "-o", str(target))
    assert result.exit_code == 0, result.output
    frame = pd.read_parquet(target)
    assert frame["bucket"].dtype == pd.DatetimeTZDtype("us", "UTC")
    assert list(frame.columns) == ["bucket", "job", "component", "name", "p50", "last"]


@pytest.mark.parametrize("fmt", ["csv", "json", "parquet"])
def test_exports_write_every_point_in_order(cli, store, seeded, tmp_path, fmt):
    target = tmp_path / f"paged.{fmt}"
    result = cli("metrics", "query", "-f", fmt, "-o", str(target))
    assert result.exit_code == 0, result.output
    if fmt == "csv":
        frame = pd.read_csv(target)
    elif fmt == "json":
        frame = pd.DataFrame(json.loads(target.read_text(encoding="utf-8")))
    else:
        frame = pd.read_parquet(target)
        assert isinstance(frame["component"].dtype, pd.CategoricalDtype)
    assert frame["metric_id"].tolist() == metrics_frame(store)["metric_id"].tolist()


def test_progress_bar_only_on_a_terminal(cli, seeded, tmp_path, monkeypatch):
    monkeypatch.setattr(metrics_output, "PROGRESS_ROWS", 4)
    quiet = cli("metrics", "query", "-f", "csv", "-o", str(tmp_path / "a.csv"))
    assert quiet.exit_code == 0 and "exporting" not in quiet.stderr  # CliRunner: not a tty
    terminal = io.StringIO()
    monkeypatch.setattr(
        metrics_output, "err_console", Console(file=terminal, force_terminal=True, width=100)
    )
    shown = cli("metrics", "query", "-f", "csv", "-o", str(tmp_path / "b.csv"))
    assert shown.exit_code == 0 and "exporting" in terminal.getvalue()
    assert f"/{FINAL_POINTS}" in terminal.getvalue()


# --- metrics plot ------------------------------------------------------------------------------


def _legend(figure) -> list[str]:
    return [text.get_text() for text in figure.axes[0].get_legend().get_texts()]


def test_build_figure_draws_one_line_per_series(store, seeded):
    figure = metrics_figure.build_figure(metrics_frame(store), title="points")
    axes = figure.axes[0]
    assert len(axes.get_lines()) == 3
    assert _legend(figure) == ["extract / rows", "load / rows", "load / seconds"]
    assert axes.get_title() == "points"
    assert axes.get_xlabel() == "time (UTC)" and axes.get_ylabel() == "value"
    rows = metrics_figure.build_figure(metrics_frame(store, name="rows", component="load"))
    assert rows.axes[0].get_ylabel() == "rows"
    xs = rows.axes[0].get_lines()[0].get_xdata()
    assert list(xs) == sorted(xs)  # drawn in time order


def test_build_figure_for_aggregates(store, factory, seeded):
    factory.job(name="other")
    run = factory.finished_run("other", run_id="o-1")
    store.metrics.record([("extract", "rows", 1.0, 0, 1, T0)], execution_id=run.id)
    daily = aggregate_metrics(store, every="1d", aggregates=["mean", "p95"])
    figure = metrics_figure.build_figure(daily, aggregates=["mean", "p95"])
    assert len(figure.axes[0].get_lines()) == 4 * 2  # 4 series (2 jobs now), 2 aggregates each
    assert "other / extract / rows p95" in _legend(figure)  # the job shows when several match
    by_job = aggregate_metrics(store, every="1d", by=["job"], aggregates=["max"])
    figure = metrics_figure.build_figure(by_job, aggregates=["max"], by=["job"])
    assert _legend(figure) == ["other", "sales"]
    assert figure.axes[0].get_ylabel() == "max of value"


def test_build_figure_refuses_unreadable_charts(store, seeded, monkeypatch):
    monkeypatch.setattr(metrics_figure, "MAX_SERIES", 2)
    with pytest.raises(ValidationError) as error:
        metrics_figure.build_figure(metrics_frame(store))
    assert error.value.field == "series"


def test_plot_writes_png_and_svg(cli, seeded, tmp_path):
    png = tmp_path / "chart.png"
    result = cli("metrics", "plot", "-o", str(png), "--name", "rows")
    assert result.exit_code == 0, result.output
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    assert "2 lines" in result.stdout

    svg = tmp_path / "chart.SVG"
    result = cli(
        "metrics", "plot", "-o", str(svg), "--agg", "mean", "--every", "1d", "--title", "Daily"
    )
    assert result.exit_code == 0, result.output
    root = ET.parse(svg).getroot()
    assert root.tag == f"{SVG}svg"
    texts = {"".join(node.itertext()).strip() for node in root.iter(f"{SVG}text")}
    assert {"extract / rows", "load / rows", "load / seconds", "Daily"} <= texts
    assert "mean of value" in texts and "time (UTC)" in texts


def test_plot_default_title_comes_from_the_filters(cli, seeded, tmp_path):
    svg = tmp_path / "chart.svg"
    result = cli("metrics", "plot", "-o", str(svg), "--job", "sales", "--name", "rows")
    assert result.exit_code == 0, result.output
    texts = {"".join(node.itertext()) for node in ET.parse(svg).getroot().iter(f"{SVG}text")}
    assert "rows · job sales" in texts


def test_plot_refusals(cli, seeded, tmp_path):
    jpg = cli("metrics", "plot", "-o", str(tmp_path / "chart.jpg"))
    assert jpg.exit_code == 2 and ".png or .svg" in jpg.output
    no_axis = cli(
        "metrics", "plot", "-o", str(tmp_path / "c.png"), "--agg", "max", "--every", "none"
    )
    assert no_axis.exit_code == 2
    empty = cli("metrics", "plot", "-o", str(tmp_path / "empty.png"), "--name", "missing")
    assert empty.exit_code == 0 and "no metric points match" in empty.stdout
    assert not (tmp_path / "empty.png").exists()
    assert cli("metrics", "plot", "--name", "rows").exit_code == 2  # -o is required


# --- runs compare ------------------------------------------------------------------------------


def test_runs_compare_table(cli, seeded):
    result = cli("runs", "compare", "run-a", "run-b")
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert "run-a" in out and "success" in out and "42.0s" in out
    assert "run-b" in out and "failed" in out and "50.0s" in out
    # extract rows: last of run-a (1032) vs the final attempt of run-b (1500).
    assert "1032" in out and "1500" in out and "+468" in out and "+45.3%" in out
    assert "seconds" in out
    assert "password" in out and MASK in out and "v1 → v2" in out and "t2" in out
    assert SECRET not in result.output and SECRET_V2 not in result.output


def test_runs_compare_json(cli, seeded):
    result = cli("runs", "compare", "run-a", "run-b", "--format", "json")
    assert result.exit_code == 0, result.output
    assert SECRET not in result.output and SECRET_V2 not in result.output
    data = json.loads(result.stdout)
    assert data["run_a"]["external_run_id"] == "run-a" and data["run_b"]["status"] == "failed"
    metrics = {(m["component"], m["name"]): m for m in data["metrics"]}
    assert metrics[("extract", "rows")]["delta"] == 468.0
    assert metrics[("load", "seconds")]["a"] is None  # only run-b has it
    changes = {c["field"]: c for c in data["config_changes"]}
    assert changes["password"]["before"] == MASK and changes["password"]["after"] == MASK
    assert (changes["table"]["version_a"], changes["table"]["version_b"]) == (1, 2)
    assert data["config_known"] is True


def test_runs_compare_since_last_success(cli, store, seeded):
    result = cli("runs", "compare", "--since-last-success", "run-b", "-f", "json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert (data["run_a"]["external_run_id"], data["run_b"]["external_run_id"]) == (
        "run-a",
        "run-b",
    )
    never = cli("runs", "compare", "--since-last-success", "run-a")
    assert never.exit_code == 1 and "no successful run of sales before" in never.stderr


def test_runs_compare_usage(cli, seeded):
    assert cli("runs", "compare", "run-a").exit_code == 2
    assert cli("runs", "compare", "run-a", "run-b", "--since-last-success", "run-b").exit_code == 2
    missing = cli("runs", "compare", "run-a", "nope")
    assert missing.exit_code == 1 and "nope" in missing.stderr


def test_runs_compare_when_versions_are_unknown(cli, store, factory, seeded):
    factory.finished_run("sales", run_id="run-c")  # recorded no configuration versions
    result = cli("runs", "compare", "run-a", "run-c")
    assert result.exit_code == 0, result.output
    assert "configuration: not known" in result.stdout


def test_timestamps_in_exports_are_utc(cli, factory, store):
    factory.job(name="tz")
    run = factory.finished_run("tz", run_id="tz-1")
    plus_two = datetime(2026, 3, 1, 14, 30, tzinfo=timezone(timedelta(hours=2)))
    store.metrics.record([("extract", "rows", 1.0, 0, 1, plus_two)], execution_id=run.id)
    recorded = json.loads(cli("metrics", "query", "-f", "json").stdout)[0]["recorded_at"]
    assert recorded == "2026-03-01T12:30:00.000000Z"
    assert datetime.fromisoformat(recorded) == plus_two.astimezone(UTC)
