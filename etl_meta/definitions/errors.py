"""Errors about a definitions file, each naming the file position it concerns.

A :class:`DefinitionsError` is a :class:`~etl_meta.errors.ValidationError` (nothing was written),
so code that already catches the store's validation errors catches these too. Every problem carries
the path inside the file (``jobs[0].components[1].depends_on``) and, when known, the 1-based line
and column. Messages name fields, keys and entity names but never configuration values.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from etl_meta.errors import FieldProblem, ValidationError

#: One step of a path into the file: a mapping key or a list index.
PathPart = str | int
#: Where something is inside the file, from the top: ``("jobs", 0, "components", 1, "name")``.
DocPath = tuple[PathPart, ...]

#: The name used for definitions given as text rather than read from a file.
TEXT_SOURCE = "<definitions>"


def format_path(path: Iterable[PathPart]) -> str:
    """``("jobs", 0, "components", 1, "name")`` as ``jobs[0].components[1].name``.

    A key holding control, format (bidi, zero-width) or other non-printable characters is shown
    JSON-escaped, ``tags["a\\u001b[2J"]``: paths are printed to terminals, and a key from the file
    must not move the cursor, recolour the line or reorder what follows it.
    """
    text = ""
    for part in path:
        if isinstance(part, int):
            text += f"[{part}]"
        elif isinstance(part, str) and not part.isprintable():
            text += f"[{json.dumps(part)}]"
        else:
            text += f".{part}" if text else str(part)
    return text


@dataclass(frozen=True)
class DefinitionProblem(FieldProblem):
    """One thing wrong with a definitions file, at ``source:line:column`` when known.

    ``field`` is the formatted path inside the file (empty for the file as a whole).
    """

    source: str = TEXT_SOURCE
    line: int | None = None
    column: int | None = None

    @property
    def location(self) -> str:
        """``pipeline.yaml:14:9``, or only the source name when the position is unknown."""
        if self.line is None:
            return self.source
        return f"{self.source}:{self.line}:{self.column}"

    def __str__(self) -> str:
        field = f"{self.field}: " if self.field else ""
        return f"{self.location}: {field}{self.message}"


class DefinitionsError(ValidationError):
    """A definitions file is invalid, or the store refused it; nothing was written.

    ``problems`` are :class:`DefinitionProblem` s sorted by position; ``source`` names the file.
    """

    problems: tuple[DefinitionProblem, ...]

    def __init__(self, problems: Sequence[DefinitionProblem], *, source: str) -> None:
        self.source = source
        ordered = sorted(problems, key=lambda p: (p.line or 0, p.column or 0))
        super().__init__(ordered, entity="definitions")

    @classmethod
    def at(
        cls,
        source: str,
        message: str,
        *,
        path: DocPath = (),
        position: tuple[int, int] | None = None,
    ) -> DefinitionsError:
        """An error with one problem; ``position`` is 1-based ``(line, column)``."""
        line, column = position if position else (None, None)
        problem = DefinitionProblem(format_path(path), message, source, line, column)
        return cls([problem], source=source)
