"""Moved: driver errors are translated in :mod:`etl_meta.errors`, pydantic's in
:mod:`etl_meta.validation`. These names stay only until the modules still importing them from
here (the analytics rewrite, the command line) are committed with their new imports.
"""

from etl_meta.errors import (
    DriverError,
    is_transient,
    raise_translated,
    translate_db_error,
    translate_driver_error,
)
from etl_meta.validation import translate_validation_error, validate_input

__all__ = [
    "DriverError",
    "is_transient",
    "raise_translated",
    "translate_db_error",
    "translate_driver_error",
    "translate_validation_error",
    "validate_input",
]
