"""Driver rows turned into columns, without waking Python's garbage collector.

``zip(*rows)`` is the usual way to turn rows into columns, and for a few rows the fastest. For
thousands it is the slowest: the ``zip`` holds an iterator per row until it is done, so the
collection of the youngest generation that the allocations set off finds thousands of live
containers, moves them to the older generations, and soon makes the interpreter collect *every*
object in the process — in a notebook holding millions of objects, a long pause. One pass per
column with ``operator.itemgetter`` allocates no container per row and sets off none.
"""

from __future__ import annotations

from collections.abc import Sequence
from operator import itemgetter
from typing import Any

__all__ = ["columns_of"]

#: Up to this many rows, ``zip(*rows)`` (faster for a few rows than a pass per column): too few
#: iterators to outlive a collection.
ZIP_ROWS = 256


def columns_of(rows: Sequence[Sequence[Any]], width: int) -> list[Sequence[Any]]:
    """The values of ``rows`` column by column: ``width`` sequences of ``len(rows)`` values.
    The rows are one statement's, each of ``width`` values."""
    if not rows:
        return [()] * width
    if len(rows) <= ZIP_ROWS:
        return list(zip(*rows, strict=True))
    return [list(map(itemgetter(index), rows)) for index in range(width)]
