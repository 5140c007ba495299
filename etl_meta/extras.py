"""The optional extras: which modules each ``pip install 'etl-meta[EXTRA]'`` brings, and the
one-line error raised in their place when a feature's extra is missing.

The core install (the store, the command line, migrations) imports none of these modules; the
layers that do import them lazily. Those layers call :func:`require_extra` before their first
import, so a core install says which extra to add instead of showing a traceback, and the command
line turns any stray ``ModuleNotFoundError`` of these modules into the same line
(:func:`missing_extra`).

Keep :data:`EXTRA_MODULES` in step with ``[project.optional-dependencies]`` in pyproject.toml:
tests/unit/test_extras.py compares them.
"""

from __future__ import annotations

import importlib.util

from etl_meta.errors import MissingExtraError

_ANALYTICS = ("pandas", "pyarrow", "adbc_driver_postgresql", "adbc_driver_sqlite")

#: The top-level modules of every package an extra lists, its own first, then those of the extras
#: it includes (``plot``, ``dagster`` and ``airflow`` carry ``analytics``).
EXTRA_MODULES: dict[str, tuple[str, ...]] = {
    "analytics": _ANALYTICS,
    "plot": ("matplotlib", *_ANALYTICS),
    "dagster": ("dagster", "dagster_webserver", *_ANALYTICS),
    "airflow": ("airflow", "httpx", *_ANALYTICS),
}

#: The extra that installs each module etl-meta imports outside the core: the extras' own
#: modules (the smallest extra that has them), and the dependencies of theirs that etl-meta
#: imports directly.
_EXTRA_OF_MODULE: dict[str, str] = {
    **{module: extra for extra in reversed(EXTRA_MODULES) for module in EXTRA_MODULES[extra]},
    "numpy": "analytics",  # comes with pandas
    "adbc_driver_manager": "analytics",  # comes with the ADBC drivers
    "dagster_graphql": "dagster",  # comes with dagster-webserver
    "requests": "dagster",  # comes with Dagster; `etl-meta dagster status` posts with it
}


def installed(module: str) -> bool:
    """Whether ``module`` (a top-level name) can be imported, without importing it."""
    try:
        # Finds the module without importing it: checking costs a few stat calls.
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):  # blocked by an import hook, or a half-imported module
        return False


def require_extra(extra: str, *modules: str, needed_by: str) -> None:
    """Raise :class:`MissingExtraError` naming ``extra`` unless its modules are installed.

    ``modules`` default to every module of the extra (:data:`EXTRA_MODULES`); pass fewer when the
    feature needs only some. ``needed_by`` names the feature for the message, e.g.
    ``"etl-meta metrics plot"``: ``etl-meta metrics plot needs matplotlib: pip install
    'etl-meta[plot]'``.
    """
    wanted = modules or EXTRA_MODULES[extra]
    missing = [module for module in wanted if not installed(module)]
    if missing:
        raise MissingExtraError(extra, missing, needed_by=needed_by)


def missing_extra(exc: BaseException, *, needed_by: str) -> MissingExtraError | None:
    """The :class:`MissingExtraError` that ``exc`` amounts to, if it is a ``ModuleNotFoundError``
    of a module only an extra installs; ``None`` otherwise (a bug or a broken install)."""
    if not isinstance(exc, ModuleNotFoundError) or not exc.name:
        return None
    module = exc.name.partition(".")[0]
    extra = _EXTRA_OF_MODULE.get(module)
    if extra is None:
        return None
    return MissingExtraError(extra, [module], needed_by=needed_by)
