"""Check every component of a definitions file against its type's contract, before any write.

The store checks each component as it is written and stops at the first; ``etl-meta apply``
checks them all first, so the plan lists every error with its file position and field path.
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from etl_meta.components.problems import component_problems
from etl_meta.definitions.errors import DefinitionProblem, DocPath, format_path

if TYPE_CHECKING:
    from etl_meta.config import Settings
    from etl_meta.definitions.spec import DefinitionsFile


def _path(field: str) -> DocPath:
    # The inverse of the field paths problems carry: numbers are list indexes, and a key that
    # is not a plain word was JSON-quoted (it holds no dot, or its position is its parent's).
    parts: list[str | int] = []
    for part in field.split("."):
        if part.isdigit():
            parts.append(int(part))
        elif len(part) > 1 and part[0] == part[-1] == '"':
            parts.append(json.loads(part))
        else:
            parts.append(part)
    return tuple(parts)


def contract_problems(definitions: DefinitionsFile, settings: Settings) -> list[DefinitionProblem]:
    """Every component whose type is unknown or whose configuration breaks its contract."""
    source_map = definitions.source_map
    problems = []
    for j_index, job in enumerate(definitions.jobs):
        for c_index, component in enumerate(job.components):
            prefix: DocPath = ("jobs", j_index, "components", c_index)
            for problem in component_problems(
                settings, component.component_type, component.configuration
            ):
                path = (*prefix, *_path(problem.field))
                position = source_map.locate(path, key=problem.message.startswith("unknown key"))
                line, column = position if position else (None, None)
                problems.append(
                    DefinitionProblem(
                        format_path(path), problem.message, source_map.source, line, column
                    )
                )
    return problems
