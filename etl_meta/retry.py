"""Retry transient store errors with capped, jittered backoff — never permanent ones.

Orchestrator writes go through :func:`retry_transient`: a dropped connection, a deadlock or a
locked SQLite file is retried for up to ``max_seconds``; a validation error or a conflict is
raised at once, since repeating it cannot help. Every write it wraps is idempotent, so a retry
after an ambiguous failure (the commit may have landed) cannot duplicate anything.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from tenacity import (
    Retrying,
    before_sleep_log,
    retry_if_exception,
    stop_after_delay,
    wait_exponential_jitter,
)

from etl_meta.errors import is_transient

log = logging.getLogger(__name__)
T = TypeVar("T")


def retry_transient(fn: Callable[[], T], *, max_seconds: float = 60.0, max_wait: float = 10.0) -> T:
    """Call ``fn``, retrying transient store errors for up to ``max_seconds`` in total."""
    retrying = Retrying(
        retry=retry_if_exception(is_transient),
        wait=wait_exponential_jitter(multiplier=0.2, max=max_wait),
        stop=stop_after_delay(max_seconds),
        before_sleep=before_sleep_log(log, logging.WARNING),
        reraise=True,
    )
    return retrying(fn)
