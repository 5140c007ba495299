"""Cursor pagination for run and metric listings, stable while new rows arrive.

A cursor is an opaque token naming the last row seen (keyset pagination, not OFFSET): rows
inserted meanwhile never shift a page or repeat a row. Runs page newest first, metric points
oldest first.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from etl_meta.analytics.metrics import metrics_frame
from etl_meta.analytics.runs import run_history
from etl_meta.errors import ValidationError
from etl_meta.store import MetadataStore

if TYPE_CHECKING:
    import pandas as pd


@dataclass(frozen=True)
class Page:
    """One page of rows and the cursor of the next (``None`` on the last page)."""

    frame: pd.DataFrame
    next_cursor: str | None


def _check_limit(limit: int) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
        raise ValidationError.single("limit", "must be a positive integer")


def _encode(kind: str, key: int) -> str:
    return base64.urlsafe_b64encode(f"{kind}:{key}".encode()).decode().rstrip("=")


def _decode(kind: str, cursor: str | None) -> int | None:
    if cursor is None:
        return None
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
        found, _, key = text.partition(":")
        if found != kind or not key.isdigit():
            raise ValueError
        return int(key)
    except ValueError:
        raise ValidationError.single("cursor", f"not a {kind} cursor from this API") from None


def metrics_page(
    store: MetadataStore, *, cursor: str | None = None, limit: int = 10_000, **filters: Any
) -> Page:
    """Metric points (filters as :func:`metrics_frame`), ``limit`` per page, oldest first."""
    _check_limit(limit)
    # One row more than asked tells whether another page exists.
    frame = metrics_frame(store, after_id=_decode("metrics", cursor), limit=limit + 1, **filters)
    more = len(frame) > limit
    frame = frame.iloc[:limit]
    return Page(frame, _encode("metrics", int(frame["metric_id"].iloc[-1])) if more else None)


def runs_page(
    store: MetadataStore, *, cursor: str | None = None, limit: int = 100, **filters: Any
) -> Page:
    """Runs (filters as :func:`run_history`), ``limit`` per page, newest first."""
    _check_limit(limit)
    frame = run_history(store, before_id=_decode("runs", cursor), limit=limit + 1, **filters)
    more = len(frame) > limit
    frame = frame.iloc[:limit]
    return Page(frame, _encode("runs", int(frame["run_id"].iloc[-1])) if more else None)
