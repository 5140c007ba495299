"""``import etl_meta`` stays light: no orchestrator, pandas or alembic at module top."""

import subprocess
import sys

import pytest


def test_importing_etl_meta_loads_neither_dagster_airflow_nor_pandas():
    code = (
        "import sys, etl_meta, etl_meta.cli;"
        "heavy = [m for m in ('dagster', 'airflow', 'pandas') if m in sys.modules];"
        "print(','.join(heavy))"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert result.stdout.strip() == ""


#: What a command that does not need them must not load (issue 19: `etl-meta --help` took 1.2 s).
HEAVY = ("alembic", "pandas", "pyarrow", "dagster", "airflow", "matplotlib", "adbc_driver_manager")


def test_etl_meta_help_loads_no_heavy_library():
    code = (
        "import sys\n"
        "from etl_meta.cli import app\n"
        "try:\n"
        "    app(['--help'], prog_name='etl-meta')\n"
        "except SystemExit:\n"
        "    pass\n"
        f"loaded = sorted({{m.split('.')[0] for m in sys.modules}} & set({HEAVY!r}))\n"
        "print('loaded:', ','.join(loaded), file=sys.stderr)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert "Usage" in result.stdout
    assert result.stderr.strip().splitlines()[-1] == "loaded:"


@pytest.mark.extra("all")
@pytest.mark.parametrize(
    ("module", "group"), [("dagster_defs.cli", "dagster"), ("etl_meta.airflow.cli", "airflow")]
)
def test_a_cli_plugin_imported_before_the_command_line_still_plugs_in(module, group):
    """A plugin module imports etl_meta.cli; importing the plugin first (a tool, a test, a
    code location) must neither find it half-initialised nor leave its group out."""
    code = (
        f"import {module}\n"
        "from etl_meta.cli import app\n"
        "try:\n"
        f"    app(['{group}', '--help'], prog_name='etl-meta')\n"
        "except SystemExit as exit:\n"
        "    assert exit.code == 0, exit.code\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stderr
    assert f"Usage: etl-meta {group}" in result.stdout


def test_public_contract_names_are_exported():
    import etl_meta

    for name in ("JobBase", "ComponentBase", "DataclassesBase", "StrategyType", "MetadataStore"):
        assert hasattr(etl_meta, name)
    assert set(etl_meta.JobBase.model_fields) >= {
        "name",
        "num_of_retries",
        "file_logging",
        "strategy_type",
        "created_at",
        "updated_at",
    }
    assert set(etl_meta.ComponentBase.model_fields) >= {
        "name",
        "component_type",
        "configuration",
        "status",
        "created_at",
        "updated_at",
    }
    assert set(etl_meta.DataclassesBase.model_fields) >= {
        "name",
        "dataclass_type",
        "schema_definition",
        "validation_rules",
        "created_at",
        "updated_at",
    }
