"""The analysts' filter language: ``job = 'sales' and value > 0 or tag.env = 'prod'``.

Parsed into a small AST (:mod:`.parse`, :mod:`.nodes`) that knows nothing about fields or SQL,
then compiled against a query's own fields into a SQLAlchemy clause (:mod:`.sql`). The analytics
reads (``etl_meta.analytics``) and the CLI's ``--filter`` options use it; it needs no pandas.
Grammar, limits and errors: ``docs/filters.md``.
"""

from etl_meta.filters.nodes import FilterSyntaxError, render_filter
from etl_meta.filters.parse import parse_filter
from etl_meta.filters.sql import FieldSpec, compile_filter, filter_clause

__all__ = [
    "FieldSpec",
    "FilterSyntaxError",
    "compile_filter",
    "filter_clause",
    "parse_filter",
    "render_filter",
]
