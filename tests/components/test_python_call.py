"""The python type: both callable forms, what the function receives, what it may return."""

from __future__ import annotations

import sys
import textwrap
import uuid
from pathlib import Path

import pandas as pd
import pytest

from etl_meta.components import ComponentContext, ComponentResult
from etl_meta.components.errors import ComponentFailed
from tests.components.helpers import run_component, sandbox_for

FUNCTIONS = """
import pandas as pd
from etl_meta.components import ComponentResult

LOADS = globals().get("LOADS", 0) + 1


def double(inputs, factor=2):
    (frame,) = inputs.values()
    return frame.assign(amount=frame["amount"] * factor)


def who_am_i(context):
    return {"component": context.component, "attempt": context.attempt}


def nothing():
    return None


def with_metrics(inputs, context):
    return ComponentResult(value=list(inputs), metrics={"seen": len(inputs)})


def anything(**kwargs):
    return kwargs


def broken():
    raise ConnectionError("service unavailable")


class Tools:
    @staticmethod
    def today():
        return "2026-01-01"
"""


@pytest.fixture
def code_dir(tmp_path: Path) -> Path:
    """A base directory holding ``lib/functions.py``."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "functions.py").write_text(FUNCTIONS, encoding="utf-8")
    return tmp_path


def call(base: Path, function: str, upstream: dict | None = None, **config) -> ComponentResult:
    return run_component(
        "python",
        {"callable": f"lib/functions.py:{function}", **config},
        upstream,
        base_dir=base,
        name="custom",
    )


def test_a_file_function_gets_inputs_and_kwargs(code_dir: Path, orders: pd.DataFrame) -> None:
    result = call(code_dir, "double", {"extract": orders}, kwargs={"factor": 10})

    assert result.value["amount"].tolist() == [125.0, 800.0, 72.5, 400.0]
    assert result.metrics == {"rows": 4}


def test_context_is_passed_when_asked_for(code_dir: Path) -> None:
    result = call(code_dir, "who_am_i")
    assert result.value == {"component": "custom", "attempt": 1}  # a dict is a value


def test_functions_without_parameters_and_none_results(code_dir: Path) -> None:
    result = call(code_dir, "nothing", {"upstream": None})
    assert (result.value, result.metrics) == (None, {})


def test_a_component_result_is_used_as_returned(code_dir: Path, orders: pd.DataFrame) -> None:
    result = call(code_dir, "with_metrics", {"a": orders, "b": None})
    assert (result.value, result.metrics) == (["a", "b"], {"seen": 2})


def test_var_keyword_functions_get_kwargs_only(code_dir: Path) -> None:
    result = call(code_dir, "anything", {"a": None}, kwargs={"x": 1})
    assert result.value == {"x": 1}


def test_attribute_paths_reach_into_classes(code_dir: Path) -> None:
    assert call(code_dir, "Tools.today").value == "2026-01-01"


def test_exceptions_of_the_function_propagate_unchanged(code_dir: Path) -> None:
    with pytest.raises(ConnectionError, match="service unavailable"):
        call(code_dir, "broken")


def test_a_file_is_loaded_once_per_path(code_dir: Path) -> None:
    first = call(code_dir, "double", {"a": pd.DataFrame({"amount": [1]})})
    second = call(code_dir, "double", {"a": pd.DataFrame({"amount": [1]})})
    assert first.value.equals(second.value)

    loaded = [
        m for name, m in sys.modules.items() if name.startswith("etl_meta_user_code_functions_")
    ]
    matching = [m for m in loaded if Path(m.__file__) == (code_dir / "lib" / "functions.py")]
    assert len(matching) == 1
    assert matching[0].LOADS == 1


def test_same_named_files_in_different_dirs_do_not_collide(tmp_path: Path) -> None:
    for name, value in (("one", 1), ("two", 2)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "steps.py").write_text(f"def value():\n    return {value}\n")

    results = [
        run_component("python", {"callable": f"{d}/steps.py:value"}, base_dir=tmp_path).value
        for d in ("one", "two")
    ]

    assert results == [1, 2]


def test_a_module_function_is_imported_from_sys_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, orders: pd.DataFrame
) -> None:
    package = f"shop_{uuid.uuid4().hex[:8]}"
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text("")
    (tmp_path / package / "steps.py").write_text(
        textwrap.dedent(
            """
            def count(inputs, context, label):
                return {label: sum(len(v) for v in inputs.values()), "job": context.job}
            """
        )
    )
    monkeypatch.syspath_prepend(str(tmp_path))

    result = run_component(
        "python",
        {"callable": f"{package}.steps:count", "kwargs": {"label": "rows"}},
        {"a": orders, "b": orders},
        base_dir=tmp_path / "elsewhere",
        job="nightly",
        sandbox=sandbox_for(tmp_path, sandbox_callable_modules=package),
    )

    assert result.value == {"rows": 8, "job": "nightly"}


@pytest.mark.parametrize(
    ("reference", "message"),
    [
        ("lib/missing.py:f", "no file 'lib/missing.py' under the base directory"),
        ("lib/functions.py:nope", "'lib/functions.py' has no attribute 'nope'"),
        ("lib/functions.py:LOADS", "'lib/functions.py:LOADS' is not callable"),
        ("no_such_module_xyz:f", "cannot import module 'no_such_module_xyz'"),
    ],
)
def test_unresolvable_callables_are_reported(code_dir: Path, reference: str, message: str) -> None:
    with pytest.raises(ComponentFailed) as caught:
        run_component(
            "python",
            {"callable": reference},
            base_dir=code_dir,
            name="custom",
            sandbox=sandbox_for(code_dir, sandbox_callable_modules="no_such_module_xyz"),
        )
    assert message in str(caught.value)
    assert caught.value.component == "custom"


def test_kwargs_the_function_does_not_take_are_reported(code_dir: Path) -> None:
    with pytest.raises(ComponentFailed, match=r"who_am_i\(\) takes no argument\(s\) 'colour'"):
        call(code_dir, "who_am_i", kwargs={"colour": "red"})


def test_a_module_that_fails_to_load_is_not_cached(tmp_path: Path) -> None:
    source = tmp_path / "flaky.py"
    source.write_text("raise RuntimeError('half-deployed')\n")
    with pytest.raises(RuntimeError, match="half-deployed"):
        run_component("python", {"callable": "flaky.py:f"}, base_dir=tmp_path)

    source.write_text("def f():\n    return 'fixed'\n")

    assert run_component("python", {"callable": "flaky.py:f"}, base_dir=tmp_path).value == "fixed"


def test_the_context_given_is_a_component_context(tmp_path: Path) -> None:
    (tmp_path / "c.py").write_text("def f(context):\n    return context\n")
    context = run_component("python", {"callable": "c.py:f"}, base_dir=tmp_path, attempt=3).value
    assert isinstance(context, ComponentContext)
    assert (context.attempt, context.path("x")) == (3, tmp_path / "x")
