"""The ``etl_meta`` code location loads from ``workspace.yaml`` with the store's jobs in it.

``dagster definitions validate -w workspace.yaml`` is run once as the real command; the other
tests load the workspace in-process the way that command does (``WorkspaceProcessContext`` over
the workspace file's load target), which takes under a second instead of a few.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import pytest
from dagster._cli.workspace.cli_target import WorkspaceOpts, workspace_opts_to_load_target
from dagster._core.remote_representation.external import RemoteRepository
from dagster._core.workspace.context import WorkspaceProcessContext
from dagster._core.workspace.load_target import InProcessWorkspaceLoadTarget

from dagster_defs.maintenance import RETENTION_JOB
from etl_meta import MetadataStore
from etl_meta.definitions import apply_definitions
from etl_meta.models import ComponentStatus
from tests.dagster._server import (
    DAGSTER,
    LOCATION,
    REPO_ROOT,
    REPOSITORY,
    WORKSPACE,
    server_env,
    write_dagster_home,
)
from tests.dagster.conftest import copy_examples, example_definitions
from tests.plugins import declaring_worker_types

NOT_LOADED_KEY = "etl_meta/jobs_not_loaded"

# Known and harmless: the state-backed loader and sensor owners are preview/beta APIs.
pytestmark = [
    pytest.mark.filterwarnings("ignore::dagster.PreviewWarning"),
    pytest.mark.filterwarnings("ignore::dagster.BetaWarning"),
]


@pytest.fixture
def example_store(store: MetadataStore) -> MetadataStore:
    apply_definitions(store, example_definitions())
    return store


@pytest.fixture
def location_env(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """The environment the code location reads: this test's store, nothing of the developer's."""
    env = server_env(
        store_url=store_url,
        home=tmp_path / "home",
        base_dir=copy_examples(tmp_path / "project"),
        dagster_home=write_dagster_home(tmp_path / "dagster_home"),
    )
    ours = ("ETL_META_", "DAGSTER_")
    for key in [k for k in os.environ if k.startswith(ours) and not k.startswith("ETL_META_TEST_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        if key.startswith(ours):
            monkeypatch.setenv(key, value)
    return env


@contextmanager
def load_repository() -> Iterator[RemoteRepository]:
    """Load ``workspace.yaml`` in-process as ``dagster definitions validate`` does."""
    target = workspace_opts_to_load_target(
        WorkspaceOpts(workspace=[str(WORKSPACE)]), allow_in_process=True
    )
    assert isinstance(target, InProcessWorkspaceLoadTarget)
    with (
        dg.DagsterInstance.from_config(os.environ["DAGSTER_HOME"]) as instance,
        WorkspaceProcessContext(
            instance=instance, version=dg.__version__, read_only=True, workspace_load_target=target
        ) as context,
    ):
        entries = context.create_request_context().get_code_location_entries()
        assert list(entries) == [LOCATION]
        entry = entries[LOCATION]
        assert entry.load_error is None, entry.load_error.to_string()
        assert entry.code_location is not None
        yield entry.code_location.get_repository(REPOSITORY)


def add_broken_job(store: MetadataStore) -> None:
    """A job whose second component has a type no code knows.

    The store accepts it only because the operator declares the type installed on workers
    (where the code location, which lacks it, must still load).
    """
    with declaring_worker_types(store, "no_such_type") as declaring:
        _create_broken_job(declaring)


def _create_broken_job(store: MetadataStore) -> None:
    store.jobs.create(
        {
            "name": "broken_job",
            "components": [
                {
                    "name": "extract",
                    "component_type": "read_csv",
                    "configuration": {"path": "data/orders.csv"},
                },
                {
                    "name": "mystery_step",
                    "component_type": "no_such_type",
                    "depends_on": ["extract"],
                },
            ],
        }
    )


def jobs_not_loaded(repository: RemoteRepository) -> list[str]:
    metadata = repository.repository_snap.metadata or {}
    return list(metadata[NOT_LOADED_KEY].value)


@pytest.mark.slow
def test_dagster_definitions_validate_passes_and_names_the_job_left_out(
    example_store: MetadataStore, location_env: dict[str, str]
) -> None:
    add_broken_job(example_store)
    result = subprocess.run(
        [str(DAGSTER), "definitions", "validate", "-w", str(WORKSPACE)],
        cwd=REPO_ROOT,
        env=location_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 0, output
    assert f"Validation successful for code location {LOCATION}" in output
    # It read this test's store (ETL_META_DATABASE_URL), and says which job it left out and why.
    assert "etl-meta job not loaded: broken_job.mystery_step: " in output, output
    assert "unknown component type 'no_such_type'" in output, output


def test_location_serves_one_job_per_stored_job(
    example_store: MetadataStore, location_env: dict[str, str]
) -> None:
    stored = {job.name: job for job in example_store.jobs.list()}
    assert set(stored) == {job.name for job in example_definitions().jobs}

    with load_repository() as repository:
        jobs = {job.name: job for job in repository.get_all_jobs()}
        # Besides the stored jobs: the maintenance job of the retention schedule.
        assert jobs.pop(RETENTION_JOB).tags["etl_meta/maintenance"] == "retention"
        assert set(jobs) == set(stored)
        assert jobs_not_loaded(repository) == []
        for name, job in jobs.items():
            assert job.tags["etl_meta/job"] == name
            assert job.tags["etl_meta/revision"] == str(stored[name].revision)
            steps = job.job_snapshot.dep_structure_snapshot.node_invocation_snaps
            components = example_store.jobs.get(name, with_components=True).components or []
            active = {c.name for c in components if c.status == ComponentStatus.ACTIVE}
            assert {step.node_name for step in steps} == active


def test_unknown_component_type_does_not_break_the_location(
    example_store: MetadataStore, location_env: dict[str, str]
) -> None:
    add_broken_job(example_store)

    with load_repository() as repository:
        loaded = {job.name for job in repository.get_all_jobs()}
        not_loaded = jobs_not_loaded(repository)

    assert loaded == {job.name for job in example_definitions().jobs} | {RETENTION_JOB}
    assert len(not_loaded) == 1, not_loaded
    (reason,) = not_loaded
    assert reason.startswith("broken_job.mystery_step: "), reason
    assert "no_such_type" in reason


def test_the_example_dagster_yaml_turns_run_monitoring_on(tmp_path):
    import shutil

    examples = Path(__file__).resolve().parents[2] / "examples"
    shutil.copy(examples / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert instance.run_monitoring_max_resume_run_attempts == 0
