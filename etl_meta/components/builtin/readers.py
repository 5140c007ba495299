"""Readers: load a file into a DataFrame. Relative paths are taken from the base directory."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from etl_meta.components.base import ComponentContext, ComponentResult, ComponentType
from etl_meta.components.builtin._common import NonEmpty
from etl_meta.components.registry import register
from etl_meta.components.sandbox import Sandbox, refusals, sandbox_of
from etl_meta.errors import FieldProblem

if TYPE_CHECKING:
    from etl_meta.config import Settings


class _Reader(ComponentType):
    """A type reading ``configuration.path``: only inside the operator's sandbox."""

    def check_definition(self, config: Any, settings: Settings) -> list[FieldProblem]:
        sandbox = Sandbox.from_settings(settings)
        return refusals(lambda: sandbox.file(config.path, field="configuration.path"))


@register
class ReadCsv(_Reader):
    """Read a CSV file.

    Configuration: ``path`` (required); ``parse_dates`` (columns to parse as dates);
    ``dtype`` (``{column: dtype}``, e.g. ``{zip_code: string}``); ``sep`` (default ``,``);
    ``encoding`` (default ``utf-8``); ``usecols`` (read only these columns); ``na_values``
    (extra strings meaning "missing"). Upstream values are ignored (a ``depends_on`` only
    orders the step). Returns the DataFrame; metrics ``rows`` and ``columns``.
    """

    name = "read_csv"
    description = "Read a CSV file into a table."

    class Config(ComponentType.Config):
        path: NonEmpty
        parse_dates: list[NonEmpty] = []
        dtype: dict[str, NonEmpty] = {}
        sep: NonEmpty = ","
        encoding: NonEmpty = "utf-8"
        usecols: list[NonEmpty] | None = None
        na_values: list[str] | None = None

    def run(
        self, context: ComponentContext, config: Config, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        import pandas as pd

        path = sandbox_of(context).file(config.path, field="configuration.path")
        frame = pd.read_csv(
            path,
            parse_dates=config.parse_dates or None,
            dtype=config.dtype or None,
            sep=config.sep,
            encoding=config.encoding,
            usecols=config.usecols,
            na_values=config.na_values,
        )
        context.log.info("read %d rows from %s", len(frame), config.path)
        return ComponentResult(
            value=frame,
            metrics={"rows": len(frame), "columns": len(frame.columns)},
            metadata={"path": str(path), "columns": {c: str(t) for c, t in frame.dtypes.items()}},
        )


@register
class ReadParquet(_Reader):
    """Read a Parquet file (or a directory of Parquet files) with pyarrow.

    Configuration: ``path`` (required); ``columns`` (read only these). Upstream values are
    ignored. Returns the DataFrame; metrics ``rows`` and ``columns``.
    """

    name = "read_parquet"
    description = "Read a Parquet file into a table."

    class Config(ComponentType.Config):
        path: NonEmpty
        columns: list[NonEmpty] | None = None

    def run(
        self, context: ComponentContext, config: Config, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        import pandas as pd

        sandbox = sandbox_of(context)
        path = sandbox.file(config.path, field="configuration.path")
        if path.is_dir():
            sandbox.tree(path, field="configuration.path")
        frame = pd.read_parquet(path, columns=config.columns, engine="pyarrow")
        context.log.info("read %d rows from %s", len(frame), config.path)
        return ComponentResult(
            value=frame,
            metrics={"rows": len(frame), "columns": len(frame.columns)},
            metadata={"path": str(path), "columns": {c: str(t) for c, t in frame.dtypes.items()}},
        )
