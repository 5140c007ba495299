"""Helpers shared by the built-in types: input checks and crash-safe file writes.

Nothing here imports pandas at module level, so registering the built-ins stays cheap.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import pydantic

from etl_meta.components.base import ComponentContext
from etl_meta.components.errors import ComponentInputError

if TYPE_CHECKING:
    import pandas as pd

#: A configuration string that must not be empty (paths, column names, queries).
NonEmpty = Annotated[str, pydantic.StringConstraints(min_length=1)]


def frame_inputs(
    context: ComponentContext, inputs: Mapping[str, Any], *, count: int | None = None
) -> dict[str, pd.DataFrame]:
    """The DataFrame inputs by upstream name, in ``depends_on`` order.

    ``None`` inputs (what writers return) only order the steps and are left out. With ``count``,
    exactly that many DataFrames must remain; the error names the component and its upstreams.
    """
    import pandas as pd

    frames: dict[str, pd.DataFrame] = {}
    for upstream, value in inputs.items():
        if value is None:
            continue
        if not isinstance(value, pd.DataFrame):
            raise ComponentInputError(
                f"component {context.component!r} ({context.component_type}): input from "
                f"{upstream!r} is a {type(value).__name__}, not a pandas DataFrame",
                component=context.component,
            )
        frames[upstream] = value
    if count is not None and len(frames) != count:
        names = ", ".join(repr(name) for name in frames) or "none"
        plural = "" if count == 1 else "s"
        raise ComponentInputError(
            f"component {context.component!r} ({context.component_type}) needs exactly {count} "
            f"DataFrame input{plural} (from depends_on), got {len(frames)}: {names}",
            component=context.component,
        )
    return frames


def single_frame(context: ComponentContext, inputs: Mapping[str, Any]) -> pd.DataFrame:
    """The one DataFrame input of a component that transforms or writes a single table."""
    (frame,) = frame_inputs(context, inputs, count=1).values()
    return frame


def write_atomically(target: Path, write: Callable[[Path], None]) -> None:
    """Call ``write(temporary_path)`` and move the result onto ``target`` in one step.

    A crash or a failed attempt then never leaves a half-written file where readers (or the
    next job) would pick it up; parent directories are created as needed.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        write(temporary)
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)
