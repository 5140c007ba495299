"""``run_tag.<key>`` in filters: runs and metric points selected by their run's tags."""

from __future__ import annotations

import pytest

from etl_meta.analytics import FilterSyntaxError, metrics_frame, run_history
from tests.factories import T0, Factory


@pytest.fixture
def tagged(store, factory: Factory) -> dict[str, int]:
    job = factory.job().name
    ids = {}
    for run_id, tags in (
        ("r-a", {"conf.experiment": "A", "team": "growth"}),
        ("r-b", {"conf.experiment": "B"}),
        ("r-c", {}),
    ):
        run = store.executions.upsert(
            {
                "job": job,
                "orchestrator": "airflow",
                "external_run_id": run_id,
                "status": "success",
                "started_at": T0,
                "tags": tags or None,
            }
        )
        store.metrics.record([("load", "rows", 1.0, 0, 1, T0)], execution_id=run.id)
        ids[run_id] = run.id
    return ids


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("run_tag.conf.experiment = 'A'", {"r-a"}),
        ("run_tag.conf.experiment in ('A', 'B')", {"r-a", "r-b"}),
        ("run_tag.conf.experiment != 'A'", {"r-b"}),  # a run without the tag matches no value
        ("run_tag.team is null", {"r-b", "r-c"}),
        ("run_tag.team is not null", {"r-a"}),
        ("not run_tag.conf.experiment = 'A'", {"r-b", "r-c"}),
        ("run_tag.\"conf.experiment\" like 'b'", {"r-b"}),  # like ignores case
        ("run_tag.conf.experiment = 'A' and run_tag.team = 'growth'", {"r-a"}),
    ],
)
def test_runs_and_points_are_selected_by_their_run_tags(store, tagged, expression, expected):
    runs = run_history(store, filter=expression)
    assert set(runs["external_run_id"]) == expected
    points = metrics_frame(store, filter=expression)
    assert set(points["external_run_id"]) == expected


def test_a_run_tag_field_needs_a_key_and_text_values(store, tagged):
    with pytest.raises(FilterSyntaxError, match=r"run_tag\.<key>"):
        run_history(store, filter="run_tag = 'A'")
    with pytest.raises(FilterSyntaxError):
        run_history(store, filter="run_tag.team > 3")
