"""The component types etl-meta ships with; importing this package registers them all.

Grouped by idea: :mod:`.readers` (``read_csv``, ``read_parquet``), :mod:`.transforms`
(``transform``, ``join``, ``sql``), :mod:`.quality` (``validate``), :mod:`.writers`
(``write_csv``, ``write_parquet``, ``write_table``) and :mod:`.python_call` (``python``).
pandas, pyarrow and SQLAlchemy are imported only when a step runs. Reference:
``docs/components.md``.
"""

from etl_meta.components.builtin import python_call, quality, readers, transforms, writers

__all__ = ["python_call", "quality", "readers", "transforms", "writers"]
