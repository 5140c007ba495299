"""The ``python`` type: run a function of the project's own code as a step."""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import inspect
import re
import sys
import threading
from collections.abc import Callable, Mapping
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pydantic

from etl_meta.components.base import ComponentContext, ComponentResult, ComponentType
from etl_meta.components.errors import ComponentFailed
from etl_meta.components.registry import register
from etl_meta.components.sandbox import Sandbox, SandboxError, refusals, sandbox_of
from etl_meta.errors import FieldProblem

if TYPE_CHECKING:
    from etl_meta.config import Settings

_RESERVED_ARGUMENTS = frozenset({"inputs", "context"})
_FIELD = "configuration.callable"
_CALLABLE_RE = re.compile(r"^(?P<target>.+):(?P<attribute>[A-Za-z_]\w*(\.[A-Za-z_]\w*)*)$")

# Reentrant: a loaded file may itself run a `python` step that loads another file.
_modules_lock = threading.RLock()
_modules_by_path: dict[Path, ModuleType] = {}


@register
class PythonCall(ComponentType):
    """Call a Python function and pass on what it returns.

    Configuration: ``callable`` (required), either ``package.module:function`` (imported from
    ``sys.path``) or ``path/to/file.py:function`` (a path relative to the base directory,
    loaded once per path under a private module name); ``kwargs`` (keyword arguments).

    The function receives ``inputs`` (the upstream values by component name, in ``depends_on``
    order) and ``context`` (the :class:`~etl_meta.components.ComponentContext`) only if it has
    parameters with those names, plus ``kwargs``. Exceptions it raises propagate unchanged, so
    the orchestrator retries them as usual.

    Return values: a :class:`~etl_meta.components.ComponentResult` is used as it is; anything
    else (a DataFrame, ``None``, a dict, ...) becomes the value passed downstream. A dict is
    **not** read as metrics (it may well be data); return a ``ComponentResult`` to record
    metrics. A DataFrame value gets a ``rows`` metric.
    """

    name = "python"
    description = "Call a Python function (module:function or file.py:function)."

    class Config(ComponentType.Config):
        callable: str
        kwargs: dict[str, Any] = {}

        @pydantic.field_validator("callable")
        @classmethod
        def _reference(cls, value: str) -> str:
            if not _CALLABLE_RE.match(value.strip()):
                raise ValueError("expected 'package.module:function' or 'path/file.py:function'")
            return value.strip()

        @pydantic.field_validator("kwargs")
        @classmethod
        def _not_reserved(cls, value: dict[str, Any]) -> dict[str, Any]:
            clashes = sorted(_RESERVED_ARGUMENTS.intersection(value))
            if clashes:
                raise ValueError(f"{', '.join(clashes)} are passed by etl-meta, not by kwargs")
            return value

    def check_definition(self, config: Any, settings: Settings) -> list[FieldProblem]:
        sandbox = Sandbox.from_settings(settings)
        return refusals(lambda: sandbox.callable(config.callable, field=_FIELD))

    def run(
        self, context: ComponentContext, config: Config, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        function = load_callable(config.callable, context)
        arguments = _arguments(function, context, inputs, config.kwargs)
        returned = function(**arguments)
        if isinstance(returned, ComponentResult):
            return returned
        metrics: dict[str, float] = {}
        if _is_frame(returned):
            metrics["rows"] = len(returned)
        return ComponentResult(value=returned, metrics=metrics)


def load_callable(reference: str, context: ComponentContext) -> Callable[..., Any]:
    """The function ``reference`` names (``module:attr`` or ``file.py:attr``).

    The sandbox is asked before anything is imported (importing a module runs its code), and
    again about what the reference resolved to.
    """
    match = _CALLABLE_RE.match(reference)
    if match is None:
        raise ComponentFailed(f"invalid callable reference {reference!r}")
    target, attribute = match["target"], match["attribute"]
    where = f"component {context.component!r}"
    sandbox = sandbox_of(context)
    file = sandbox.callable(reference, field=_FIELD)
    if file is not None:
        module = _module_from_file(file, target, context)
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            if exc.name is not None and target.startswith(exc.name):
                raise ComponentFailed(
                    f"{where}: cannot import module {target!r} (use 'path/file.py:{attribute}' "
                    f"for a file under the base directory)",
                    component=context.component,
                ) from exc
            raise  # the module exists but one of its own imports is missing
    found: Any = module
    for part in attribute.split("."):
        try:
            found = getattr(found, part)
        except AttributeError:
            raise ComponentFailed(
                f"{where}: {target!r} has no attribute {attribute!r}", component=context.component
            ) from None
        if isinstance(found, ModuleType):  # `allowed_module:os.system` would reach around
            raise SandboxError(_FIELD, "the attribute path passes through another module")
    sandbox.loaded(found, field=_FIELD)
    if not callable(found):
        raise ComponentFailed(
            f"{where}: {reference!r} is not callable", component=context.component
        )
    return found


def _module_from_file(path: Path, shown: str, context: ComponentContext) -> ModuleType:
    """Load a source file once per resolved path, under a name no other module can have."""
    where = f"component {context.component!r}"
    path = path.resolve()
    with _modules_lock:
        cached = _modules_by_path.get(path)
        if cached is not None:
            return cached
        if not path.is_file():
            raise ComponentFailed(
                f"{where}: no file {shown!r} under the base directory", component=context.component
            )
        digest = hashlib.sha256(str(path).encode()).hexdigest()[:12]
        stem = re.sub(r"\W", "_", path.stem)
        module_name = f"etl_meta_user_code_{stem}_{digest}"
        spec = importlib.util.spec_from_file_location(module_name, path)
        if spec is None or spec.loader is None:
            raise ComponentFailed(
                f"{where}: cannot load {shown!r} as Python source", component=context.component
            )
        module = importlib.util.module_from_spec(spec)
        # Registered before running, as the import system does, so the module can refer to
        # itself (dataclasses, pickling); removed again if running it fails.
        sys.modules[module_name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(module_name, None)
            raise
        _modules_by_path[path] = module
        return module


def _arguments(
    function: Callable[..., Any],
    context: ComponentContext,
    inputs: Mapping[str, Any],
    kwargs: Mapping[str, Any],
) -> dict[str, Any]:
    """The keyword arguments for ``function``: ``inputs``/``context`` if it asks, and kwargs."""
    try:
        parameters = inspect.signature(function).parameters
    except (TypeError, ValueError):  # builtins without a signature: pass kwargs only
        return dict(kwargs)
    arguments: dict[str, Any] = {}
    if "inputs" in parameters:
        arguments["inputs"] = dict(inputs)
    if "context" in parameters:
        arguments["context"] = context
    takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    unknown = [k for k in kwargs if k not in parameters and not takes_any]
    if unknown:
        raise ComponentFailed(
            f"component {context.component!r}: {getattr(function, '__name__', 'the callable')}() "
            f"takes no argument(s) {', '.join(map(repr, unknown))} given in kwargs",
            component=context.component,
        )
    arguments.update(kwargs)
    return arguments


def _is_frame(value: Any) -> bool:
    # Only look when pandas is already loaded: a function returning a frame has imported it.
    pandas = sys.modules.get("pandas")
    return pandas is not None and isinstance(value, pandas.DataFrame)
