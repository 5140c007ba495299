"""Hostile definitions: a configuration cannot make a built-in type read the key file, write
outside the sandbox, run code of its choosing or write into the store's own database.

Every case is refused twice, on each backend: by the store (nothing written, no audit event) and
again by the running type (nothing read, written, imported or executed).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from sqlalchemy.engine import make_url

from etl_meta import MetadataStore
from etl_meta.components import ComponentFailed
from etl_meta.components.sandbox import Sandbox, SandboxError
from etl_meta.errors import ValidationError
from tests.backends import isolated_settings
from tests.components.helpers import run_component

KEY_TEXT = "not-a-real-key-but-a-sentinel-0123456789"


@dataclass
class Scene:
    """A store whose settings know its database, a key file and a base directory with files."""

    store: MetadataStore
    base: Path
    key: Path
    outside: Path
    marker: Path
    module: str  # an importable module, not allow-listed, that writes `marker` when imported

    @property
    def store_file(self) -> Path | None:
        url = make_url(self.store.settings.resolved_database_url())
        return Path(url.database) if url.get_backend_name() == "sqlite" else None

    def sandbox(self) -> Sandbox:
        """The sandbox ``run_component`` builds for this store."""
        return Sandbox.from_settings(self.store.settings, store_url=self.store.engine.url)


@pytest.fixture
def scene(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Scene]:
    base = tmp_path  # the store's SQLite file and the key file lie inside the root on purpose
    home = base / "home"
    home.mkdir()
    key = home / "secret.key"
    key.write_text(KEY_TEXT)
    outside = tmp_path.parent / f"{tmp_path.name}-outside"
    outside.mkdir()
    (outside / "data.csv").write_text("a\n1\n")
    (base / "data.csv").write_text("a\n1\n")
    marker = outside / "executed.marker"
    module = f"sandbox_probe_{uuid.uuid4().hex[:8]}"
    (outside / f"{module}.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('imported')\n"
        "def run():\n    return 1\n"
    )
    monkeypatch.syspath_prepend(str(outside))
    settings = isolated_settings(home, base_dir=base, database_url=store_url)
    with MetadataStore(store_url, settings=settings) as opened:
        yield Scene(opened, base, key, outside, marker, module)


def state(store: MetadataStore) -> tuple[int, int]:
    """(jobs, audit events): what a refused definition must leave as it was."""
    return len(store.jobs.list(include_archived=True)), len(store.audit.list(limit=100_000))


def refused_by_store(scene: Scene, component_type: str, configuration: dict[str, Any]) -> str:
    """Store a job holding the component; return the refused field after checking nothing
    was written."""
    before = state(scene.store)
    with pytest.raises(ValidationError) as caught:
        scene.store.jobs.create(
            {
                "name": "hostile",
                "components": [
                    {
                        "name": "step",
                        "component_type": component_type,
                        "configuration": configuration,
                    }
                ],
            }
        )
    assert state(scene.store) == before
    assert KEY_TEXT not in str(caught.value)
    return caught.value.field


def refused_at_run(
    scene: Scene, component_type: str, configuration: dict[str, Any], upstream: Any = None
) -> str:
    """Run the component under the store's sandbox; return the refused field."""
    with pytest.raises(SandboxError) as caught:
        run_component(
            component_type,
            configuration,
            upstream or {},
            base_dir=scene.base,
            sandbox=scene.sandbox(),
        )
    assert KEY_TEXT not in str(caught.value)
    return caught.value.field


def frame() -> dict[str, pd.DataFrame]:
    return {"upstream": pd.DataFrame({"a": [1, 2]})}


# -- files ---------------------------------------------------------------------------------------

Case = Callable[[Scene], str]

READS: dict[str, Case] = {
    "key file, absolute": lambda s: str(s.key),
    "key file, relative": lambda s: "home/secret.key",
    "key file through ..": lambda s: "home/../home/./secret.key",
    "outside, absolute": lambda s: str(s.outside / "data.csv"),
    "outside through ..": lambda s: f"../{s.outside.name}/data.csv",
    "symlink pointing out": lambda s: _link(s.base / "link.csv", s.outside / "data.csv"),
    "symlink to the key": lambda s: _link(s.base / "key.csv", s.key),
    "hard link to the key": lambda s: _hard_link(s.base / "copy.csv", s.key),
    "hidden file": lambda s: ".env",
    "home directory": lambda s: "~/.ssh/id_rsa",
}


def _link(link: Path, target: Path) -> str:
    link.symlink_to(target)
    return link.name


def _hard_link(link: Path, target: Path) -> str:
    os.link(target, link)
    return link.name


@pytest.mark.parametrize("case", READS.values(), ids=READS.keys())
@pytest.mark.parametrize("component_type", ["read_csv", "read_parquet"])
def test_readers_refuse_paths_outside_the_sandbox(
    scene: Scene, component_type: str, case: Case
) -> None:
    configuration = {"path": case(scene)}

    assert refused_by_store(scene, component_type, configuration).endswith("configuration.path")
    assert refused_at_run(scene, component_type, configuration) == "configuration.path"


WRITES: dict[str, Case] = {
    "key file": lambda s: str(s.key),
    "outside, absolute": lambda s: str(s.outside / "stolen.csv"),
    "outside through ..": lambda s: f"../{s.outside.name}/stolen.csv",
    "through a symlinked directory": lambda s: _link(s.base / "out", s.outside) + "/stolen.csv",
    "python source": lambda s: "functions.py",
    "a .pth file": lambda s: "lib/evil.pth",
    ".env": lambda s: ".env",
    "inside .git": lambda s: ".git/hooks/pre-commit",
}


@pytest.mark.parametrize("case", WRITES.values(), ids=WRITES.keys())
@pytest.mark.parametrize("component_type", ["write_csv", "write_parquet"])
def test_writers_refuse_paths_outside_the_sandbox_and_write_nothing(
    scene: Scene, component_type: str, case: Case
) -> None:
    path = case(scene)
    before = sorted(p.name for p in scene.outside.iterdir())

    assert refused_by_store(scene, component_type, {"path": path}).endswith("configuration.path")
    assert refused_at_run(scene, component_type, {"path": path}, frame()) == "configuration.path"

    assert scene.key.read_text() == KEY_TEXT
    assert sorted(p.name for p in scene.outside.iterdir()) == before
    assert not (scene.base / "functions.py").exists() and not (scene.base / ".env").exists()


def test_a_symlink_re_pointed_after_apply_is_refused_when_the_step_runs(scene: Scene) -> None:
    link = scene.base / "orders.csv"
    link.symlink_to(scene.base / "data.csv")
    scene.store.jobs.create(
        {"name": "ok", "components": [{"name": "read", "component_type": "read_csv",
                                        "configuration": {"path": "orders.csv"}}]}
    )  # fmt: skip
    link.unlink()
    link.symlink_to(scene.key)

    assert refused_at_run(scene, "read_csv", {"path": "orders.csv"}) == "configuration.path"


def test_a_directory_read_refuses_symlinks_inside_it_that_point_out(scene: Scene) -> None:
    directory = scene.base / "parts"
    directory.mkdir()
    pd.DataFrame({"a": [1]}).to_parquet(scene.outside / "part.parquet")
    (directory / "part.parquet").symlink_to(scene.outside / "part.parquet")

    assert refused_at_run(scene, "read_parquet", {"path": "parts"}) == "configuration.path"


# -- the store's own database --------------------------------------------------------------------


def _store_spellings(scene: Scene) -> list[str]:
    store_file = scene.store_file
    if store_file is not None:
        alias = scene.base / "alias.db"
        alias.symlink_to(store_file)
        return [
            f"sqlite:///{store_file}",
            f"sqlite+pysqlite:///{store_file}",
            f"sqlite:///{os.path.relpath(store_file, scene.base)}",
            f"sqlite:///{scene.base}/sub/../{store_file.name}",
            f"sqlite:///{store_file}-wal",
            f"sqlite:///{store_file}-journal",
            "sqlite:///alias.db",
            f"sqlite:///file:{store_file}?uri=true",
            f"sqlite:///{store_file}?timeout=5",
        ]
    url = make_url(scene.store.settings.resolved_database_url())
    database, host = url.database, url.host or "127.0.0.1"
    other_host = "localhost" if host in ("127.0.0.1", "::1") else "127.0.0.1"
    return [
        f"postgresql://postgres@{host}/{database}",
        f"postgres://postgres@{host}:5432/{database}",
        f"postgresql+psycopg://postgres@{host.upper()}:5432/{database}",
        f"postgresql://postgres@{other_host.upper()}/{database}?connect_timeout=3",
        f"postgresql://postgres@/{database}?host={other_host}",
        f"postgresql://postgres@{host}/?dbname={database}",
        f"postgresql://{database}@{host}",  # no database: libpq takes the user name
        f"postgresql://postgres@[::1]/{database}",
        f"postgresql://postgres@127.1/{database}",
    ]


def test_write_table_refuses_the_stores_own_database_however_spelled(scene: Scene) -> None:
    for url in _store_spellings(scene):
        configuration = {"table": "audit_event", "connection_url": url, "if_exists": "replace"}
        field = refused_by_store(scene, "write_table", configuration)
        assert field.endswith("configuration.connection_url"), url
        before = state(scene.store)
        assert refused_at_run(scene, "write_table", configuration, frame()).endswith("url"), url
        assert state(scene.store) == before  # audit_event was not replaced


def test_the_user_override_cannot_name_the_stores_database(scene: Scene) -> None:
    if scene.store_file is not None:
        pytest.skip("SQLite has no users")
    url = make_url(scene.store.settings.resolved_database_url())
    configuration = {
        "table": "t",
        "connection_url": f"postgresql://{url.host}:{url.port or 5432}",
        "user": url.database,
    }
    assert refused_by_store(scene, "write_table", configuration).endswith("connection_url")
    assert refused_at_run(scene, "write_table", configuration, frame()).endswith("connection_url")


def test_write_table_refuses_sqlite_files_outside_the_roots(scene: Scene) -> None:
    configuration = {"table": "t", "connection_url": f"sqlite:///{scene.outside}/w.db"}
    assert refused_by_store(scene, "write_table", configuration).endswith("connection_url")
    assert refused_at_run(scene, "write_table", configuration, frame()).endswith("connection_url")
    assert not (scene.outside / "w.db").exists()


# -- python callables -----------------------------------------------------------------------------

CALLABLES: dict[str, Case] = {
    "os:system": lambda s: "os:system",
    "subprocess:getoutput": lambda s: "subprocess:getoutput",
    "builtins:eval": lambda s: "builtins:eval",
    "importlib:import_module": lambda s: "importlib:import_module",
    "os.path:join": lambda s: "os.path:join",
    "a private module": lambda s: "_posixsubprocess:fork_exec",
    "__main__": lambda s: "__main__:main",
    "etl_meta itself": lambda s: "etl_meta.store:MetadataStore",
    "a module not allow-listed": lambda s: f"{s.module}:run",
    "a file outside the roots": lambda s: f"{s.outside}/{s.module}.py:run",
    "a file reached through ..": lambda s: f"../{s.outside.name}/{s.module}.py:run",
    "a dunder attribute": lambda s: "data.py:__builtins__.eval",
}


@pytest.mark.parametrize("case", CALLABLES.values(), ids=CALLABLES.keys())
def test_python_refuses_callables_outside_the_sandbox_before_importing(
    scene: Scene, case: Case
) -> None:
    configuration = {"callable": case(scene), "kwargs": {}}

    assert refused_by_store(scene, "python", configuration).endswith("configuration.callable")
    assert refused_at_run(scene, "python", configuration) == "configuration.callable"

    assert scene.module not in sys.modules
    assert not scene.marker.exists()


def test_a_module_prefix_on_the_hard_deny_list_cannot_be_allowed(tmp_path: Path) -> None:
    settings = isolated_settings(tmp_path, base_dir=tmp_path, sandbox_callable_modules="os,sys")
    sandbox = Sandbox.from_settings(settings)
    with pytest.raises(SandboxError, match="deny-list"):
        sandbox.callable("os:system", field="configuration.callable")


# -- sql and transform -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "ATTACH DATABASE '{store}' AS store",
        "ATTACH DATABASE '{new}' AS created",
        "VACUUM INTO '{new}'",
        "PRAGMA query_only = OFF",
        "SELECT * FROM pragma_database_list",
    ],
)
def test_sql_cannot_attach_or_create_files(scene: Scene, query: str) -> None:
    target = scene.outside / "created.db"
    store = scene.store_file or scene.key
    configuration = {"query": query.format(store=store, new=target)}

    with pytest.raises(
        ComponentFailed, match=r"not authorized|authorization denied|too many attached"
    ):
        run_component("sql", configuration, frame(), base_dir=scene.base, sandbox=scene.sandbox())

    assert not target.exists()


@pytest.mark.parametrize(
    "configuration",
    [
        {"expressions": {"x": "a.to_csv('{target}')"}},
        {"filter": "a.values.tofile('{target}') == 0"},
        {"expressions": {"x": "a.__class__"}},
        {"expressions": {"x": "a[0]"}},
    ],
)
def test_transform_expressions_are_column_arithmetic_only(
    scene: Scene, configuration: dict[str, Any]
) -> None:
    target = scene.outside / "stolen.csv"
    configuration = {
        key: (
            {k: v.format(target=target) for k, v in value.items()}
            if isinstance(value, dict)
            else value.format(target=target)
        )
        for key, value in configuration.items()
    }

    assert "configuration." in refused_by_store(scene, "transform", configuration)
    assert refused_at_run(scene, "transform", configuration, frame()).startswith("configuration.")
    assert not target.exists()


def test_transform_still_accepts_arithmetic_comparisons_and_math(scene: Scene) -> None:
    configuration = {
        "expressions": {"b": "abs(a - 3) * 2", "c d": "b > 1 and a in [1, 2]"},
        "filter": "`c d` or not (a >= sqrt(4))",
    }
    result = run_component("transform", configuration, frame(), base_dir=scene.base)
    assert list(result.value.columns) == ["a", "b", "c d"]


# -- what the operator allows ---------------------------------------------------------------------


def operator_sandbox(scene: Scene, **settings: Any) -> Sandbox:
    """The scene's store sandbox with the operator's ``settings`` added."""
    configured = scene.store.settings.model_copy(update=settings)
    return Sandbox.from_settings(configured, store_url=scene.store.engine.url)


def test_a_second_root_lets_readers_and_writers_use_it(scene: Scene) -> None:
    sandbox = operator_sandbox(scene, sandbox_roots=[scene.base, scene.outside])
    source, target = str(scene.outside / "data.csv"), str(scene.outside / "copy.csv")

    read = run_component("read_csv", {"path": source}, base_dir=scene.base, sandbox=sandbox)
    run_component(
        "write_csv", {"path": target}, {"r": read.value}, base_dir=scene.base, sandbox=sandbox
    )

    assert Path(target).read_text() == "a\n1\n"
    with pytest.raises(SandboxError):  # the key file stays off limits in every root
        sandbox.file(scene.key, field="configuration.path")


def test_an_allow_listed_module_prefix_can_be_called_and_nothing_around_it(scene: Scene) -> None:
    package = f"shop_{uuid.uuid4().hex[:8]}"
    (scene.outside / package).mkdir()
    (scene.outside / package / "__init__.py").write_text("")
    (scene.outside / package / "steps.py").write_text(
        "import os\nfrom subprocess import getoutput\ndef count():\n    return 3\n"
    )
    sandbox = operator_sandbox(scene, sandbox_callable_modules=[package])

    def call(reference: str) -> Any:
        return run_component(
            "python", {"callable": reference}, base_dir=scene.base, sandbox=sandbox
        ).value

    assert call(f"{package}.steps:count") == 3
    for reach_around in (f"{package}.steps:os.system", f"{package}.steps:getoutput"):
        with pytest.raises(SandboxError) as caught:
            call(reach_around)
        assert caught.value.field == "configuration.callable"
    with pytest.raises(SandboxError):
        call(f"{package}x.steps:count")  # a prefix is a package, not a string prefix


def test_a_database_allow_list_admits_only_the_databases_it_names(
    scene: Scene, warehouse_url: str
) -> None:
    other = scene.base / "other.db"
    if warehouse_url.startswith("sqlite"):
        allowed, refused = warehouse_url, f"sqlite:///{other}"
    else:
        allowed = warehouse_url
        refused = make_url(warehouse_url).set(database="postgres").render_as_string(False)
    entry = make_url(allowed).set(username=None, password=None).render_as_string(False)
    sandbox = operator_sandbox(scene, sandbox_databases=[entry])

    run_component(
        "write_table",
        {"table": "t", "connection_url": allowed},
        frame(),
        base_dir=scene.base,
        sandbox=sandbox,
    )
    with pytest.raises(SandboxError, match="not allow-listed"):
        sandbox.database(refused, field="configuration.connection_url")
    store_url = scene.store.settings.resolved_database_url()
    everything = operator_sandbox(scene, sandbox_databases=["sqlite", _server_wildcard(store_url)])
    with pytest.raises(SandboxError, match="store's own"):
        everything.database(store_url, field="configuration.connection_url")
    assert not other.exists()


def _server_wildcard(url: str) -> str:
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        return "sqlite"
    return parsed.set(username=None, password=None, database="*").render_as_string(False)


def test_the_workers_settings_decide_at_run_time(scene: Scene, store_url: str) -> None:
    """Stored under a permissive store, refused by a worker whose settings are stricter."""
    from etl_meta.catalog import take_snapshot
    from etl_meta.runtime import RunIdentity
    from etl_meta.runtime import run_component as run_for_orchestrator

    lenient = scene.store.settings.model_copy(update={"sandbox_callable_modules": [scene.module]})
    with MetadataStore(store_url, settings=lenient) as operator:
        operator.jobs.create(
            {
                "name": "probe",
                "components": [
                    {
                        "name": "call",
                        "component_type": "python",
                        "configuration": {"callable": f"{scene.module}:run"},
                    }
                ],
            }
        )
    worker_settings = scene.store.settings.model_copy(update={"database_url": None})
    with MetadataStore(store_url, settings=worker_settings, role="writer") as worker:
        job = take_snapshot(worker).job("probe")
        with pytest.raises(SandboxError) as caught:
            run_for_orchestrator(
                worker,
                job=job,
                component=job.components[0],
                run=RunIdentity("manual", "run-1"),
                inputs={},
            )
    assert caught.value.field == "configuration.callable"
    assert scene.module not in sys.modules
    assert not scene.marker.exists()


# -- strict contracts -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("component_type", "configuration", "field"),
    [
        ("write_csv", {"path": "x.csv", "index": "yes"}, "configuration.index"),
        ("write_csv", {"path": "x.csv", "index": 1}, "configuration.index"),
        (
            "write_table",
            {"table": "t", "connection_url": "sqlite://", "chunksize": True},
            "chunksize",
        ),
        (
            "write_table",
            {"table": "t", "connection_url": "sqlite://", "chunksize": "3"},
            "chunksize",
        ),
        ("validate", {"allow_extra_columns": "no"}, "configuration.allow_extra_columns"),
        ("validate", {"allow_extra_columns": 0}, "configuration.allow_extra_columns"),
    ],
)
def test_integers_and_booleans_are_not_coerced(
    component_type: str, configuration: dict[str, Any], field: str
) -> None:
    from etl_meta.components import get_component_type

    with pytest.raises(ValidationError) as caught:
        get_component_type(component_type).parse_config(configuration)
    assert caught.value.field.endswith(field)
