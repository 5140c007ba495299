"""A feature whose extra is missing fails with one line naming it (issue 19, "Extras").

The extras are hidden in a subprocess by an import hook that makes every extra's modules
unfindable, as on the core install; the tests pass alike in the full venv and in
`make test-core`'s.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from etl_meta.cli._common import describe_error
from etl_meta.errors import MissingExtraError
from etl_meta.extras import EXTRA_MODULES, require_extra

ROOT = Path(__file__).resolve().parents[2]

#: Every module an extra installs: the core install has none of them.
ALL_EXTRAS = sorted({module for modules in EXTRA_MODULES.values() for module in modules})

#: Run before the code under test: imports of ALL_EXTRAS fail as if they were not installed.
_HIDE = f"""
import sys

class _NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in {ALL_EXTRAS!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, _NotInstalled())
"""


def _run_without_extras(code: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ETL_META_")}
    env["ETL_META_HOME"] = str(cwd)  # never the developer's own store
    return subprocess.run(
        [sys.executable, "-c", _HIDE + code],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=env,
        timeout=300,
    )


def _needs(command: str, modules: str, extra: str) -> str:
    return f"etl-meta {command} needs {modules}: pip install 'etl-meta[{extra}]'"


_ANALYTICS = "pandas, pyarrow and 2 more"
_DAGSTER = "dagster, dagster_webserver and 4 more"
#: Commands whose extra is missing, and the line each prints.
MISSING = {
    ("metrics", "query"): _needs("metrics query", _ANALYTICS, "analytics"),
    ("runs", "compare", "1", "2"): _needs("runs compare", _ANALYTICS, "analytics"),
    ("metrics", "plot", "-o", "c.png"): _needs(
        "metrics plot", "matplotlib, pandas and 3 more", "plot"
    ),
    ("dagster", "status"): _needs("dagster status", _DAGSTER, "dagster"),
    ("dagster", "run", "daily_sales"): _needs("dagster run", _DAGSTER, "dagster"),
    ("dagster", "reload"): _needs("dagster reload", _DAGSTER, "dagster"),
    ("dagster", "reconcile"): _needs("dagster reconcile", _DAGSTER, "dagster"),
    ("gc", "--older-than", "9d", "--archive", "a"): _needs("gc --archive", "pyarrow", "analytics"),
    ("airflow", "reconcile"): _needs("airflow reconcile", "httpx", "airflow"),
}
#: Commands whose outcome does not depend on the extras.
OTHERS = [("--help",), ("dagster", "run", "--help"), ("dagster", "run")]


@pytest.fixture(scope="module")
def without_extras(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, ...], list]:
    """``{args: [exit code, stdout, stderr]}`` of every command above, run in one subprocess
    (an interpreter start each would cost seconds)."""
    commands = [*MISSING, *OTHERS]
    code = (
        "\nimport json\n"
        "from typer.testing import CliRunner\n"
        "from etl_meta.cli import app\n"
        "results = []\n"
        f"for args in {commands!r}:\n"
        "    run = CliRunner().invoke(app, list(args), prog_name='etl-meta')\n"
        "    results.append([run.exit_code, run.stdout, run.stderr])\n"
        "print(json.dumps(results))\n"
    )
    done = _run_without_extras(code, tmp_path_factory.mktemp("no-extras"))
    assert done.returncode == 0, done.stderr
    return dict(zip(commands, json.loads(done.stdout), strict=True))


@pytest.mark.parametrize("args", list(MISSING), ids=" ".join)
def test_a_command_whose_extra_is_missing_names_it_in_one_line(args, without_extras):
    code, stdout, stderr = without_extras[args]
    assert (code, stdout) == (1, "")
    assert stderr.splitlines() == [f"error: MissingExtraError: {MISSING[args]}"]


def test_the_dagster_commands_stay_listed_and_their_help_shows_without_dagster(without_extras):
    code, stdout, stderr = without_extras[("--help",)]
    assert code == 0, stderr
    assert re.search(r"^│ dagster ", stdout, re.MULTILINE), stdout
    code, stdout, stderr = without_extras[("dagster", "run", "--help")]
    assert code == 0, stderr
    assert "Run stored jobs through Dagster" in stdout


def test_a_malformed_command_line_is_reported_before_a_missing_extra(without_extras):
    code, _, stderr = without_extras[("dagster", "run")]
    assert code == 2  # click's code for a bad command line, whatever is installed
    assert stderr.splitlines() == [
        "error: Missing argument 'jobs'. (see 'etl-meta dagster run --help')"
    ]


def test_importing_analytics_without_its_extra_raises_missing_extra_error(tmp_path):
    code = (
        "try:\n"
        "    import etl_meta.analytics\n"
        "except ImportError as exc:\n"  # a MissingExtraError is an ImportError too
        "    print(type(exc).__name__, exc.extra, exc.modules[0], sep='|')\n"
        "import etl_meta.analytics\n"
    )
    result = _run_without_extras(code, tmp_path)
    assert result.stdout.strip() == "MissingExtraError|analytics|pandas"
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1] == (
        "etl_meta.errors.MissingExtraError: etl_meta.analytics needs pandas, pyarrow and 2 more: "
        "pip install 'etl-meta[analytics]'"
    )


def test_require_extra_names_only_the_missing_modules(monkeypatch):
    import etl_meta.extras as extras

    monkeypatch.setattr(extras, "installed", lambda module: module != "matplotlib")
    with pytest.raises(MissingExtraError) as raised:
        require_extra("plot", needed_by="a chart")
    assert str(raised.value) == "a chart needs matplotlib: pip install 'etl-meta[plot]'"
    assert raised.value.modules == ("matplotlib",)
    require_extra("plot", "pandas", needed_by="a frame")  # present: no error


def test_a_stray_import_of_an_extras_module_is_reported_as_its_extra():
    missing = ModuleNotFoundError("No module named 'numpy.core'", name="numpy.core")
    assert describe_error(missing) == (
        "MissingExtraError: this command needs numpy: pip install 'etl-meta[analytics]'",
        1,
    )


def test_a_missing_module_no_extra_installs_is_still_a_bug():
    message, code = describe_error(ModuleNotFoundError("No module named 'nope'", name="nope"))
    assert code == 3
    assert message.startswith("unexpected ModuleNotFoundError: No module named 'nope'")


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _listed_packages(extras: dict[str, list[str]], extra: str) -> set[str]:
    """The distributions ``extra`` lists, with those of the etl-meta extras it includes."""
    names: set[str] = set()
    for line in extras[extra]:
        requirement = Requirement(line)
        if _normalized(requirement.name) == "etl-meta":
            for included in requirement.extras:
                names |= _listed_packages(extras, included)
        else:
            names.add(_normalized(requirement.name))
    return names


def _modules_of(distribution: str, provided: dict[str, set[str]]) -> set[str]:
    """Top-level modules ``distribution`` installs; a meta-package's (apache-airflow) are those
    of the distributions it requires."""
    if distribution in provided:
        return provided[distribution]
    requires = importlib.metadata.requires(distribution) or []
    return set().union(
        *(provided.get(_normalized(Requirement(r).name), set()) for r in requires if ";" not in r)
    )


@pytest.mark.extra("all")
def test_extra_modules_match_the_extras_in_pyproject():
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    provided: dict[str, set[str]] = {}
    for module, distributions in importlib.metadata.packages_distributions().items():
        for distribution in distributions:
            provided.setdefault(_normalized(distribution), set()).add(module)
    for extra, modules in EXTRA_MODULES.items():
        packages = _listed_packages(extras, extra)
        by_package = {name: _modules_of(name, provided) & set(modules) for name in packages}
        unchecked = sorted(package for package, found in by_package.items() if not found)
        assert not unchecked, f"EXTRA_MODULES[{extra!r}] checks no module of {unchecked}"
        unlisted = set(modules) - set().union(*by_package.values())
        assert not unlisted, f"EXTRA_MODULES[{extra!r}] has {sorted(unlisted)}, not in the extra"
    assert set(EXTRA_MODULES) == {"analytics", "plot", "dagster", "airflow"}
    assert _listed_packages(extras, "all") == set().union(
        *(_listed_packages(extras, extra) for extra in EXTRA_MODULES)
    )
