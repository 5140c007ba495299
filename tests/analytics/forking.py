"""A read in a forked child: it must get its own connections (its parent's sockets are the
parent's) and leave the parent's pool untouched."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import pandas as pd

from etl_meta import MetadataStore
from etl_meta.analytics._per_store import PerStore


def assert_a_forked_child_reads_on_its_own(
    store: MetadataStore, read: Callable[[], pd.DataFrame], pools: PerStore[Any]
) -> None:
    """``read()`` in a forked child gives the parent's frame from a pool of the child's own;
    afterwards the parent reads on its pool as before."""
    before = read()
    parents = pools.current(store)
    assert parents is not None
    child = os.fork()
    if child == 0:  # pragma: no cover (runs in the child; its exit code is the verdict)
        code = 3
        try:
            same = read().equals(before)
            own = pools.current(store)
            code = 0 if same and own is not None and own is not parents else 1
        finally:
            os._exit(code)
    _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    assert pools.current(store) is parents  # the parent's pool is untouched
    pd.testing.assert_frame_equal(read(), before)
