"""Parquet archives of retention: a directory per gc or retention pass, a file per batch and table.

Files are written under a temporary name, fsynced and renamed, so an archive never holds a
half-written file; a batch whose files could not be written is not deleted.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl_meta.repository import maintenance as repo
from etl_meta.types import utcnow

if TYPE_CHECKING:
    from sqlalchemy.orm import Session


class ArchiveWriteFailed(Exception):
    """Internal: the archive could not be written (``args[0]`` says why)."""


class Archive:
    """Parquet files of one gc under ``<root>/gc-<UTC timestamp>/``, created at the first batch."""

    def __init__(self, root: Path, *, prefix: str = "gc") -> None:
        self.root = Path(root).expanduser().absolute()
        stamp = utcnow().strftime("%Y%m%dT%H%M%SZ")
        self.path = self.root / f"{prefix}-{stamp}"
        self.created = False

    def write_batch(
        self,
        session: Session,
        number: int,
        ids: list[int],
        out: list[Path],
        tables: dict[str, repo.ArchiveColumns] = repo.ARCHIVE_TABLES,
    ) -> None:
        """``runs-N``, ``attempts-N``, ``metrics-N`` and ``tags-N.parquet`` of runs ``ids``
        (one file per entry of ``tables``), durable on disk.

        Each file is written under a temporary name, fsynced, renamed, and the directory fsynced,
        all before the caller deletes anything. Every file written is appended to ``out``.
        """
        import pyarrow as pa

        try:
            self._ensure_directory()
            for table, columns in tables.items():
                target = self.path / f"{table}-{number:06d}.parquet"
                _write_parquet(target, columns, repo.archive_rows(session, table, ids))
                out.append(target)
            _fsync(self.path, directory=True)
        except OSError as exc:
            raise ArchiveWriteFailed(exc.strerror or type(exc).__name__) from exc
        except pa.ArrowException as exc:
            raise ArchiveWriteFailed(f"pyarrow {type(exc).__name__}") from exc

    def _ensure_directory(self) -> None:
        if self.created:
            return
        self.root.mkdir(parents=True, exist_ok=True)
        base, suffix = self.path, 1
        while True:
            try:
                self.path.mkdir()
                break
            except FileExistsError:
                suffix += 1
                self.path = base.with_name(f"{base.name}-{suffix}")
        _fsync(self.root, directory=True)
        self.created = True

    def remove_if_empty(self) -> None:
        if self.created and self.path.is_dir() and not any(self.path.iterdir()):
            self.path.rmdir()
            self.created = False


def _arrow_table(columns: list[list[Any]], kinds: repo.ArchiveColumns) -> Any:
    import pyarrow as pa

    types = {"int": pa.int64(), "float": pa.float64(), "str": pa.string(), "json": pa.string()}
    types["time"] = pa.timestamp("us", tz="UTC")
    types["date"] = pa.date32()
    schema = pa.schema([pa.field(name, types[kind]) for name, _column, kind in kinds])
    if not columns:
        return schema.empty_table()
    arrays = [
        pa.array(values, type=field.type) for values, field in zip(columns, schema, strict=True)
    ]
    return pa.Table.from_arrays(arrays, schema=schema)


def _write_parquet(
    target: Path, kinds: repo.ArchiveColumns, chunks: Iterable[list[list[Any]]]
) -> None:
    import pyarrow.parquet as pq

    temporary = target.with_name(f".{target.name}.tmp")
    try:
        with pq.ParquetWriter(str(temporary), _arrow_table([], kinds).schema) as writer:
            empty = True
            for columns in chunks:
                writer.write_table(_arrow_table(columns, kinds))
                empty = False
            if empty:
                writer.write_table(_arrow_table([], kinds))
        _fsync(temporary)
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def _fsync(path: Path, *, directory: bool = False) -> None:
    """Flush ``path`` to disk; for a directory (its new and renamed entries) best effort only."""
    try:
        descriptor = os.open(path, os.O_RDONLY)
        try:
            os.fsync(descriptor)
        finally:
            os.close(descriptor)
    except OSError:
        if not directory:
            raise
