"""The wheel is self-sufficient: `etl-meta db upgrade` works from it in a fresh venv."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
import venv
import zipfile
from pathlib import Path

import pytest

from etl_meta import schema

ROOT = Path(__file__).resolve().parents[1]
pytestmark = pytest.mark.slow


@pytest.fixture(scope="session")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(out),
            str(ROOT),
        ],
        check=True,
    )
    (built,) = out.glob("etl_meta-*.whl")
    return built


@pytest.fixture(scope="session")
def fresh_venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new venv holding only the wheel; dependencies come from this test run's environment.

    The dependency directory is added with a plain path line, so the ``.pth`` files inside it
    (among them the editable install pointing at this checkout) are not processed: the only
    etl_meta the venv can import is the wheel's.
    """
    home = tmp_path_factory.mktemp("venv")
    venv.create(home, with_pip=True)
    python = home / "bin" / "python"
    subprocess.run(
        [python, "-m", "pip", "install", "-q", "--no-deps", "--no-index", str(wheel)], check=True
    )
    site = Path(
        subprocess.run(
            [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    )
    (site / "_deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return home


def test_the_wheel_carries_the_migration_scripts(wheel):
    names = zipfile.ZipFile(wheel).namelist()
    assert "etl_meta/_migrations/env.py" in names
    assert "etl_meta/_migrations/script.py.mako" in names
    shipped = {Path(n).name for n in names if n.startswith("etl_meta/_migrations/versions/")}
    source = {p.name for p in (ROOT / "migrations" / "versions").glob("*.py")}
    assert source and source <= shipped


def test_db_upgrade_works_from_the_installed_wheel(fresh_venv, empty_url, tmp_path):
    python = str(fresh_venv / "bin" / "python")
    # Without PYTHONPATH too: a checkout on it would shadow the installed wheel.
    env = {
        k: v for k, v in os.environ.items() if not k.startswith("ETL_META_") and k != "PYTHONPATH"
    }
    env["ETL_META_HOME"] = str(tmp_path)
    located = subprocess.run(
        [
            python,
            "-c",
            "import etl_meta, etl_meta.schema as s; print(etl_meta.__file__);"
            "print(s.migrations_dir())",
        ],
        check=True,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    ).stdout.split()
    assert all(str(fresh_venv) in line for line in located), located
    cli = [str(fresh_venv / "bin" / "etl-meta")]  # the console script pip generated
    upgraded = subprocess.run(
        [*cli, "db", "upgrade", "--database-url", empty_url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert upgraded.returncode == 0, upgraded.stderr
    assert schema.head_revision() in upgraded.stdout
    checked = subprocess.run(
        [*cli, "db", "check", "--database-url", empty_url],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
