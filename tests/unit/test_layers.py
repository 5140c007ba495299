"""Imports only point down the layers of docs/internals/layers.md, and no package reaches into
another's private modules or names.

The contracts live in pyproject.toml (``[tool.importlinter]``); these tests run them, prove they
can fail, and check what import-linter cannot see: whether an allowed import of a heavy library
is made inside a function, and who uses whose private names.
"""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import grimp

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("etl_meta", "dagster_defs")
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
#: What the core imports only inside the functions that need it, if at all: the extras'
#: libraries, and etl_meta.analytics, which imports them at its top.
HEAVY = (
    "adbc_driver_manager",
    "adbc_driver_postgresql",
    "adbc_driver_sqlite",
    "airflow",
    "dagster",
    "dagster_graphql",
    "etl_meta.analytics",
    "matplotlib",
    "numpy",
    "pandas",
    "pyarrow",
)
#: Where the heavy libraries are at home: analytics and the integrations.
HEAVY_AT_HOME = ("etl_meta.analytics", "etl_meta.airflow", "dagster_defs")


def lint_imports(root: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with ``root``'s pyproject.toml over the packages in ``root``."""
    return subprocess.run(
        [str(Path(sys.executable).with_name("lint-imports")), "--no-cache"],
        cwd=root,
        env={"PATH": str(Path(sys.executable).parent), "PYTHONPATH": str(root)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_every_import_contract_is_kept() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


def test_the_layers_contract_places_every_module_of_etl_meta() -> None:
    (layers,) = (c for c in CONFIG["contracts"] if c["type"] == "layers")
    assert layers["exhaustive"] and layers["containers"] == ["etl_meta"]
    placed = [
        name.strip()
        for layer in layers["layers"]
        for name in layer.replace("|", ":").split(":")
        if name.strip()
    ]
    package = ROOT / "etl_meta"
    children = {p.stem for p in package.glob("*.py") if p.stem != "__init__"} | {
        p.parent.name for p in package.glob("*/__init__.py")
    }
    assert len(placed) == len(set(placed)), "a module is placed twice"
    assert sorted(placed) == sorted(children)


def test_a_reversed_import_breaks_the_contracts(tmp_path: Path) -> None:
    """The contracts fail on a copy of the code with imports that break them."""
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=_no_caches)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)
    _append(tmp_path / "etl_meta/types.py", "import etl_meta.cli")  # the bottom imports the top
    _append(tmp_path / "etl_meta/store/jobs.py", "import pandas")  # a heavy library in the core
    _append(tmp_path / "etl_meta/catalog.py", "import dagster_defs")  # etl_meta imports its plugin
    (tmp_path / "etl_meta/unplaced.py").write_text('"""A module no layer lists."""\n')
    result = lint_imports(tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    output = " ".join(result.stdout.split())
    for expected in (
        "etl_meta.types is not allowed to import etl_meta.cli",
        "- etl_meta.unplaced",
        "etl_meta.store.jobs -> pandas",
        "etl_meta.catalog -> dagster_defs",
        "No cycles are allowed in etl_meta.",
    ):
        assert expected in output, (expected, result.stdout)


def test_heavy_libraries_are_imported_inside_functions_outside_their_home() -> None:
    top_level = [
        f"{module}:{line} imports {name}"
        for module, name, line, lazy in _imports()
        if not lazy
        and _within(name, HEAVY)
        and not _within(module, HEAVY_AT_HOME)
        and not (module.startswith("etl_meta.analytics") and name.startswith("etl_meta.analytics"))
    ]
    assert top_level == []


def test_no_namespace_imports_another_namespaces_private_modules() -> None:
    graph = grimp.build_graph(*PACKAGES)
    reaching = sorted(
        f"{importer} -> {imported}"
        for importer in graph.modules
        for imported in graph.find_modules_directly_imported_by(importer)
        if (owner := _private_owner(imported)) and _namespace(importer) != _namespace(owner)
    )
    assert reaching == []


def test_no_namespace_uses_another_namespaces_private_names() -> None:
    found = []
    for module, tree in _trees():
        aliases: dict[str, str] = {}  # local name -> imported module of another namespace
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module and not node.level:
                for alias in node.names:
                    target = f"{node.module}.{alias.name}"
                    if _is_module(target):
                        aliases[alias.asname or alias.name] = target
                    elif _private(alias.name) and _foreign(module, node.module):
                        found.append(f"{module}:{node.lineno} imports {target}")
            elif isinstance(node, ast.Import):
                aliases.update({a.asname: a.name for a in node.names if a.asname})
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Attribute) and _private(node.attr)):
                continue
            value = node.value
            if isinstance(value, ast.Name) and value.id in aliases:
                if _foreign(module, aliases[value.id]):
                    found.append(f"{module}:{node.lineno} uses {aliases[value.id]}.{node.attr}")
            elif _is_store_namespace(value):
                # self._store.components._create_many: a namespace in another's privates.
                found.append(f"{module}:{node.lineno} uses {ast.unparse(node)}")
    assert found == []


# -- helpers ----------------------------------------------------------------------------------


def _no_caches(_directory: str, names: list[str]) -> list[str]:
    return [name for name in names if name == "__pycache__"]


def _append(path: Path, line: str) -> None:
    path.write_text(path.read_text() + f"\n{line}  # reversed on purpose\n")


def _within(name: str, prefixes: tuple[str, ...]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


def _private(name: str) -> bool:
    return name.startswith("_") and not name.startswith("__")


def _namespace(module: str) -> str:
    """``etl_meta.store`` for ``etl_meta.store._base``; each integration package is one."""
    parts = module.split(".")
    return ".".join(parts[:2]) if parts[0] == "etl_meta" else parts[0]


def _foreign(importer: str, owner: str) -> bool:
    return _namespace(importer) != _namespace(owner)


def _private_owner(module: str) -> str | None:
    """The module whose private part ``module`` is (``etl_meta.store`` for ``…store._errors``)."""
    parts = module.split(".")
    for index, part in enumerate(parts):
        if _private(part):
            return ".".join(parts[:index])
    return None


def _is_module(name: str) -> bool:
    path = ROOT.joinpath(*name.split("."))
    return path.with_suffix(".py").exists() or (path / "__init__.py").exists()


def _is_store_namespace(node: ast.expr) -> bool:
    return (
        isinstance(node, ast.Attribute)
        and not _private(node.attr)
        and isinstance(node.value, ast.Attribute)
        and node.value.attr == "_store"
    )


def _trees() -> Iterator[tuple[str, ast.Module]]:
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            module = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
            yield module, ast.parse(path.read_text(), str(path))


def _imports() -> Iterator[tuple[str, str, int, bool]]:
    """``(module, imported name, line, lazy)`` for every absolute import; ``lazy``: inside a
    function or an ``if TYPE_CHECKING:`` block, so nothing runs it when the module loads."""
    for module, tree in _trees():
        yield from _walk(module, tree, lazy=False)


def _walk(module: str, node: ast.AST, *, lazy: bool) -> Iterator[tuple[str, str, int, bool]]:
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.Import):
            yield from ((module, alias.name, child.lineno, lazy) for alias in child.names)
        elif isinstance(child, ast.ImportFrom) and child.module and not child.level:
            yield module, child.module, child.lineno, lazy
        inner = lazy or isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef)
        if isinstance(child, ast.If) and "TYPE_CHECKING" in ast.unparse(child.test):
            inner = True
        yield from _walk(module, child, lazy=inner)
