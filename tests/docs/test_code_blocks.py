"""The README's and docs' examples run, so they cannot drift from the code.

The conventions (document order, ``# -> VALUE``, ``<!-- setup: … -->`` and ``<!-- not-run: … -->``
markers) are described in ``tests/docs/markdown.py``.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from etl_meta import MetadataStore
from etl_meta.components import known_component_types, registry
from etl_meta.config import get_settings
from tests.backends import MigratedDatabase
from tests.docs.markdown import (
    ROOT,
    SHELL_LANGS,
    Block,
    blocks,
    check_command,
    command_lines,
    documents,
    looks_like_definitions,
    run_python,
    usage_lines,
)
from tests.docs.setups import SETUPS

ALL_BLOCKS = [block for path in documents() for block in blocks(path)]
PYTHON_DOCS = sorted({b.path for b in ALL_BLOCKS if b.lang == "python" and not b.not_run})


def _opens_a_store(path: Path) -> bool:
    return any(
        b.setup or "MetadataStore" in b.code
        for b in ALL_BLOCKS
        if b.path == path and b.lang == "python" and not b.not_run
    )


STORE_DOCS = [path for path in PYTHON_DOCS if _opens_a_store(path)]
PLAIN_DOCS = [path for path in PYTHON_DOCS if not _opens_a_store(path)]


class DocumentRun:
    """One file's examples: one namespace, the file's store, setups between blocks."""

    def __init__(
        self,
        monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path,
        database: MigratedDatabase | None,
    ) -> None:
        self.monkeypatch = monkeypatch
        self.tmp_path = tmp_path
        self.database = database
        self.namespace: dict[str, Any] = {"__name__": "__docs__"}
        self.opened: list[MetadataStore] = []
        self.setups = 0

    def use_database(self, url: str) -> None:
        self.monkeypatch.setenv("ETL_META_DATABASE_URL", url)
        get_settings.cache_clear()

    def setup(self, name: str) -> None:
        assert self.database is not None, "a setup needs a store: give the doc a MetadataStore"
        self.close_stores()
        self.setups += 1
        scratch = self.tmp_path / f"setup_{self.setups}"
        scratch.mkdir()
        self.use_database(self.database.fresh_url(scratch))
        store = MetadataStore()
        self.opened.append(store)
        SETUPS[name](store, self.namespace)

    def run(self, path: Path) -> None:
        for block in blocks(path):
            if block.lang != "python" or block.not_run:
                continue
            if block.setup:
                self.setup(block.setup)
            try:
                run_python(block, self.namespace)
            except Exception as exc:
                exc.add_note(f"in the example at {block.where}")
                raise

    def close_stores(self) -> None:
        stores = self.opened + [v for v in self.namespace.values() if isinstance(v, MetadataStore)]
        for store in {id(s): s for s in stores}.values():
            store.close()
        self.opened.clear()


@pytest.fixture
def document_run(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[DocumentRun]:
    """The examples' world: the repository as working directory, no ETL_META_* of the caller's,
    this test's home and key, and a component registry that forgets what the examples register.
    """
    if "AIRFLOW_HOME" not in os.environ:  # tests/airflow/conftest.py not collected: Airflow
        # reads its home when first imported, and would create ~/airflow
        airflow_home = tmp_path_factory.getbasetemp() / "airflow_home"
        monkeypatch.setenv("AIRFLOW_HOME", str(airflow_home))
        monkeypatch.setenv("AIRFLOW__CORE__LOAD_EXAMPLES", "False")
    for name in list(os.environ):
        if name.startswith("ETL_META_") and name not in {
            "ETL_META_TEST_POSTGRES_URL",
            "ETL_META_SECRET_KEYS",
        }:
            monkeypatch.delenv(name)
    monkeypatch.setenv("ETL_META_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("ETL_META_ACTOR", "docs@test")
    monkeypatch.chdir(ROOT)
    known_component_types()  # load the built-ins and plugins before taking a copy
    monkeypatch.setattr(registry, "_types", dict(registry._types))
    get_settings.cache_clear()
    run = DocumentRun(monkeypatch, tmp_path, None)
    try:
        yield run
    finally:
        run.close_stores()
        get_settings.cache_clear()


@pytest.mark.parametrize("path", STORE_DOCS, ids=str)
def test_the_python_examples_run_on_each_backend(
    path: Path,
    document_run: DocumentRun,
    migrated_database: MigratedDatabase,
    store_url: str,
) -> None:
    document_run.database = migrated_database
    document_run.use_database(store_url)
    document_run.run(path)


@pytest.mark.parametrize("path", PLAIN_DOCS, ids=str)
def test_the_python_examples_run(path: Path, document_run: DocumentRun) -> None:
    document_run.run(path)


@pytest.mark.parametrize(
    "block", [b for b in ALL_BLOCKS if looks_like_definitions(b)], ids=lambda b: b.where
)
def test_the_definitions_examples_load(block: Block, document_run: DocumentRun) -> None:
    from etl_meta.definitions import load_definitions

    load_definitions(block.code, name=block.where)


def test_the_command_lines_and_synopses_name_real_commands_and_options() -> None:
    import typer.main

    from etl_meta.cli import app

    root = typer.main.get_command(app)
    commands = [(b, args) for b in ALL_BLOCKS if b.lang in SHELL_LANGS for args in command_lines(b)]
    synopses = [(b, args) for b in ALL_BLOCKS if b.lang == "text" for args in usage_lines(b)]
    problems = [
        f"{block.where}: {problem}"
        for block, args in commands + synopses
        if (problem := check_command(root, args))
    ]
    assert len(commands) > 10 and len(synopses) > 10
    assert problems == []


def test_every_marker_is_justified_and_known() -> None:
    markers = [b for b in ALL_BLOCKS if b.not_run is not None or b.setup is not None]
    assert [b.where for b in markers if b.setup and b.setup not in SETUPS] == []
    assert [b.where for b in markers if b.not_run is not None and not b.not_run] == []
    python = [b for b in ALL_BLOCKS if b.lang == "python"]
    skipped = [b for b in python if b.not_run]
    assert len(skipped) * 3 < len(python), "skipping should stay the exception"


def test_a_shown_value_that_is_wrong_fails() -> None:
    block = Block(Path("README.md"), 1, "python", "1 + 1  # -> 3\n")
    with pytest.raises(AssertionError, match=re.escape("shows 3, but the value is 2")):
        run_python(block, {})
