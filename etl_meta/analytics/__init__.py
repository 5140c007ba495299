"""Analytics over the store: runs and metrics as pandas DataFrames, for analysts.

Importing :mod:`etl_meta` does not import this package (it needs pandas and pyarrow).

    >>> from etl_meta import MetadataStore
    >>> from etl_meta import analytics
    >>> store = MetadataStore()  # doctest: +SKIP
    >>> analytics.aggregate_metrics(store, job="daily_sales", every="1d")  # doctest: +SKIP

Every function takes the store first. Filters (``filter="job = 'sales' and value > 0"``) use the
fields in :data:`METRIC_FIELDS` / :data:`RUN_FIELDS`; see ``docs/filters.md``.

Install with ``pip install 'etl-meta[analytics]'``: without the extra, importing this package
raises :class:`~etl_meta.errors.MissingExtraError`, one line naming it.
"""

# ruff: noqa: E402  (the extra is checked before the modules below import pandas and pyarrow)

from etl_meta.extras import require_extra

require_extra("analytics", needed_by="etl_meta.analytics")

from etl_meta.analytics._select import METRIC_FIELDS, RUN_FIELDS
from etl_meta.analytics.compare import (
    ConfigChange,
    RunComparison,
    TagChange,
    changes_since_last_success,
    compare_runs,
    last_success_before,
)
from etl_meta.analytics.daily import metrics_daily_frame
from etl_meta.analytics.metrics import (
    AGGREGATES,
    aggregate_metrics,
    latest_metrics,
    metric_batches,
    metric_count,
    metrics_frame,
)
from etl_meta.analytics.pages import Page, metrics_page, runs_page
from etl_meta.analytics.runs import run_history, step_attempts, success_rate
from etl_meta.filters import FilterSyntaxError, parse_filter

__all__ = [
    "AGGREGATES",
    "METRIC_FIELDS",
    "RUN_FIELDS",
    "ConfigChange",
    "FilterSyntaxError",
    "Page",
    "RunComparison",
    "TagChange",
    "aggregate_metrics",
    "changes_since_last_success",
    "compare_runs",
    "last_success_before",
    "latest_metrics",
    "metric_batches",
    "metric_count",
    "metrics_daily_frame",
    "metrics_frame",
    "metrics_page",
    "parse_filter",
    "run_history",
    "runs_page",
    "step_attempts",
    "success_rate",
]
