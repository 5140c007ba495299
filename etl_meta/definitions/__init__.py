"""Declarative definitions: a YAML file of dataclasses and jobs, applied to the store.

    >>> from etl_meta.definitions import apply_definitions, load_definitions
    >>> definitions = load_definitions("examples/pipeline.yaml")  # doctest: +SKIP
    >>> plan = apply_definitions(store, definitions, dry_run=True)  # doctest: +SKIP
    >>> plan.summary()  # doctest: +SKIP
    '20 created, 0 updated, 0 archived, 0 unchanged'

The file format is described in ``docs/definitions.md``.
"""

from __future__ import annotations

import os
from pathlib import Path

from etl_meta.definitions.apply import apply_definitions
from etl_meta.definitions.errors import TEXT_SOURCE, DefinitionProblem, DefinitionsError
from etl_meta.definitions.loader import MAX_ALIAS_NODES, MAX_FILE_BYTES, SourceMap, load_yaml
from etl_meta.definitions.plan import Plan, PlanItem
from etl_meta.definitions.spec import (
    ComponentSpec,
    DataclassSpec,
    DefinitionsFile,
    JobSpec,
    validate_definitions,
)

_PATH_SUFFIXES = (".yaml", ".yml", ".json")


def _looks_like_path(text: str) -> bool:
    if "\n" in text or len(text) > 4096:
        return False
    if text.lower().endswith(_PATH_SUFFIXES):
        return True
    try:
        return Path(text).is_file()
    except (OSError, ValueError):  # too long for the OS, or a NUL byte: text, not a path
        return False


def _read(path: Path, name: str) -> str:
    try:
        with path.open("rb") as handle:
            # Read one byte past the limit rather than trusting the size a stat reports.
            raw = handle.read(MAX_FILE_BYTES + 1)
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise DefinitionsError.at(name, f"cannot read the file: {reason}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise DefinitionsError.at(
            name, f"the file is larger than {MAX_FILE_BYTES} bytes (5 MiB), the limit"
        )
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        before = raw[: exc.start]
        position = (before.count(b"\n") + 1, exc.start - before.rfind(b"\n"))
        raise DefinitionsError.at(name, "the file is not UTF-8", position=position) from None


def load_definitions(source: str | os.PathLike[str], *, name: str | None = None) -> DefinitionsFile:
    """Read and validate a definitions file.

    ``source`` is a path (a :class:`~pathlib.Path`, or a one-line string naming an existing
    file or ending in ``.yaml``/``.yml``/``.json``) or the YAML text itself. ``name`` is what
    errors call the source (default: the path as given, or ``<definitions>`` for text).

    Raises:
        DefinitionsError: unreadable, too large, not YAML, or not a valid definitions file; each
            problem says where (``pipeline.yaml:14:9``) and what.
    """
    if isinstance(source, os.PathLike) or _looks_like_path(source):
        path = Path(source)
        name = name or os.fspath(source)
        text = _read(path, name)
    else:
        name = name or TEXT_SOURCE
        text = source
    data, source_map = load_yaml(text, name)
    return validate_definitions(data, source_map)


__all__ = [
    "MAX_ALIAS_NODES",
    "MAX_FILE_BYTES",
    "ComponentSpec",
    "DataclassSpec",
    "DefinitionProblem",
    "DefinitionsError",
    "DefinitionsFile",
    "JobSpec",
    "Plan",
    "PlanItem",
    "SourceMap",
    "apply_definitions",
    "load_definitions",
    "validate_definitions",
]
