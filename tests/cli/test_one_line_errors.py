"""Issue #18: every ``etl-meta`` command answers bad input with one ``error:`` line.

Each test runs every command of the app (plugins' included, found by walking it, so a new command
joins in by itself) with one family of bad input: a database URL etl-meta cannot use, a database
that is missing or was migrated by a newer etl-meta, bad option values. Whatever the command, the
answer is a documented exit code (docs/cli.md), no traceback, one line on stderr, and never the
password of the URL it was given.
"""

from __future__ import annotations

import enum
import os
import subprocess
import sys
import typing
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import typer.main
from typer.testing import CliRunner, Result

from etl_meta import schema
from etl_meta.cli import app
from etl_meta.cli._common import EXIT_ERROR, EXIT_UNEXPECTED, EXIT_USAGE
from etl_meta.config import get_settings
from etl_meta.db import create_engine
from tests.backends import PostgresServer, isolated_settings

#: In every URL these tests pass: it must never be printed.
PASSWORD = "Sup3r-s3cret-pw"
#: The exit codes docs/cli.md documents for a failure ("Errors and exit codes").
FAILURE_CODES = {EXIT_ERROR, EXIT_USAGE}

#: Commands that never open the store (no ``--database-url``).
NO_STORE = {"schema", "db history", "secrets generate-key", "secrets init", "airflow clean"}
NO_STORE |= {"dagster reload"}


def cli_commands() -> dict[str, Any]:
    """Every ``etl-meta`` command by name (``jobs show``), plugins' included."""

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
        if hasattr(command, "commands"):  # a group; the root loads plugins' groups on demand
            for name in command.list_commands(None):
                yield from walk(command.get_command(None, name), (*path, name))
        else:
            yield " ".join(path), command

    return dict(walk(typer.main.get_command(app), ()))


def required_arguments(name: str, tmp_path: Path) -> list[str]:
    """What ``name`` needs besides the database to get as far as opening it."""
    definitions = tmp_path / "definitions.yaml"
    definitions.write_text("jobs: []\n")
    unreachable = "http://127.0.0.1:9"  # nothing listens on the discard port
    return {
        "apply": ["--file", str(definitions)],
        "gc": ["--older-than", "90d"],
        "db downgrade": ["base"],
        "jobs show": ["nope"],
        "jobs archive": ["nope"],
        "jobs restore": ["nope"],
        "runs show": ["1"],
        "runs compare": ["1", "2"],
        "runs request": ["nope"],
        "metrics plot": ["--output", str(tmp_path / "plot.png")],
        "airflow export": ["--dags-folder", str(tmp_path / "dags")],
        "airflow status": ["--dags-folder", str(tmp_path / "dags")],
        "airflow reconcile": ["--url", unreachable],
        "dagster status": ["--url", unreachable],
        "dagster run": ["nope"],
    }.get(name, [])


def _confirmation(command: Any) -> list[str]:
    # Destructive commands ask first (db downgrade); --yes answers, so the database is reached.
    return ["--yes"] if any(param.name == "yes" for param in command.params) else []


class Cli:
    """Runs commands in-process and checks the one-line contract on each answer."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.runner = CliRunner()
        self.commands = cli_commands()

    def run(self, *args: str) -> Result:
        return self.runner.invoke(app, list(args))

    def every_command_with_url(
        self, url: str, *, skip: set[str] = frozenset(), allowed: set[int] = FAILURE_CODES
    ) -> list[str]:
        """Run every store command against ``url``; the contract violations found."""
        problems = []
        for name, command in sorted(self.commands.items()):
            if name in NO_STORE or name in skip:
                continue
            args = [*name.split(), *required_arguments(name, self.tmp_path)]
            result = self.run(*args, *_confirmation(command), "--database-url", url)
            problems += broken_promises(name, result, allowed)
        return problems


def broken_promises(name: str, result: Result, allowed: set[int] = FAILURE_CODES) -> list[str]:
    """How ``result`` breaks the one-line contract (empty when it keeps it)."""
    output = result.output  # stdout and stderr
    problems = []
    if result.exit_code not in allowed:
        problems.append(f"exit code {result.exit_code}, not one of {sorted(allowed)}")
    if "Traceback" in output or (
        result.exception is not None and not isinstance(result.exception, SystemExit)
    ):
        problems.append(f"a traceback ({type(result.exception).__name__})")
    lines = result.stderr.strip().splitlines()
    if result.exit_code != 0 and (len(lines) != 1 or not lines[0].startswith("error: ")):
        problems.append(f"{len(lines)} stderr lines, not one 'error: …' line")
    if PASSWORD in output:
        problems.append("the URL's password is printed")
    return [f"{name}: {problem}\n{output}" for problem in problems]


@pytest.fixture
def cli(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Cli]:
    monkeypatch.setenv("ETL_META_HOME", str(tmp_path / "home"))
    monkeypatch.delenv("ETL_META_DATABASE_URL", raising=False)
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    yield Cli(tmp_path)
    get_settings.cache_clear()


# --- URLs etl-meta cannot use (no database needed) -------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://etl:{PASSWORD}@db.example/etl",
        f"postgresql://etl:{PASSWORD}@db.example:notaport/etl",
        f"sqlite+nodriver:///{PASSWORD}.db",
        f"oracle+cx_oracle://etl:{PASSWORD}@db.example/etl",
        "not a url",
        "sqlite://",  # in-memory: every connection would see an empty database
    ],
    ids=[
        "unsupported-backend",
        "port-not-a-number",
        "unknown-driver",
        "no-driver",
        "not-a-url",
        "in-memory",
    ],
)
def test_a_url_etl_meta_cannot_use_is_one_line_from_every_command(cli: Cli, url: str) -> None:
    assert cli.every_command_with_url(url) == []


def test_an_unsupported_backend_is_named_and_the_password_is_not(cli: Cli) -> None:
    result = cli.run("jobs", "list", "--database-url", f"mysql://etl:{PASSWORD}@db.example/etl")
    assert result.exit_code == EXIT_ERROR
    assert result.stderr == (
        "error: database URL is invalid: database_url: unsupported backend 'mysql': "
        "use sqlite or postgresql\n"
    )


def test_a_port_that_is_not_a_number_is_named(cli: Cli) -> None:
    url = f"postgresql://etl:{PASSWORD}@db.example:notaport/etl"
    result = cli.run("db", "upgrade", "--database-url", url)
    assert result.exit_code == EXIT_ERROR
    assert result.stderr == (
        "error: database URL is invalid: database_url: the port is not a number\n"
    )


def test_the_url_from_the_environment_is_checked_the_same_way(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ETL_META_DATABASE_URL", f"mysql://etl:{PASSWORD}@db.example/etl")
    get_settings.cache_clear()
    result = cli.run("runs", "list")
    assert broken_promises("runs list", result) == []
    assert "unsupported backend 'mysql'" in result.stderr


#: Port 1: refused at once, no server needed.
REFUSED = f"postgresql://etl:{PASSWORD}@127.0.0.1:1/etl"


def test_an_unreachable_server_is_one_line_from_every_command(cli: Cli) -> None:
    assert cli.every_command_with_url(REFUSED, skip={"db roles"}) == []


def test_db_roles_on_an_unreachable_server_is_one_line(cli: Cli) -> None:
    result = cli.run("db", "roles", "--database-url", REFUSED)
    assert broken_promises("db roles", result) == []


def test_a_sqlite_file_that_cannot_be_created_is_one_line_from_every_command(cli: Cli) -> None:
    blocker = cli.tmp_path / "a-file"
    blocker.write_text("")
    assert cli.every_command_with_url(f"sqlite:///{blocker}/store.db") == []


# --- databases that are missing or too new, on each backend ---------------------------------


@pytest.fixture
def missing_database_url(
    backend: str, tmp_path: Path, postgres_server: PostgresServer | None
) -> str:
    """A database that does not exist (SQLite creates the file: it is then merely empty)."""
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'nowhere' / 'missing.db'}"
    assert postgres_server is not None
    missing = f"{postgres_server.prefix}_missing"
    url = postgres_server.admin_url.set(database=missing, password=PASSWORD)
    return url.render_as_string(hide_password=False)


def test_a_missing_database_is_one_line_from_every_command(
    cli: Cli, backend: str, missing_database_url: str
) -> None:
    # On SQLite the file is created empty: `db upgrade` may then succeed, `db roles` explains.
    allowed = FAILURE_CODES | {0} if backend == "sqlite" else FAILURE_CODES
    assert cli.every_command_with_url(missing_database_url, allowed=allowed) == []


@pytest.fixture
def too_new_url(empty_url: str, tmp_path: Path) -> Iterator[str]:
    """A database migrated by a newer etl-meta (a revision this one does not know)."""
    engine = create_engine(empty_url, settings=isolated_settings(tmp_path))
    try:
        schema.upgrade(engine)
        with engine.begin() as connection:
            connection.execute(sa.text(f"UPDATE {schema.VERSION_TABLE} SET version_num = 'f00d'"))
    finally:
        engine.dispose()
    yield empty_url


def test_a_schema_from_a_newer_etl_meta_is_one_line_from_every_command(
    cli: Cli, backend: str, too_new_url: str
) -> None:
    # `db current` reports it (0); `db roles` would create cluster-wide roles on PostgreSQL.
    skip = {"db roles"} if backend == "postgresql" else set()
    problems = cli.every_command_with_url(too_new_url, skip=skip, allowed=FAILURE_CODES | {0})
    assert problems == []


@pytest.mark.parametrize("command", ["db upgrade", "db downgrade"])
def test_migrating_a_schema_from_a_newer_etl_meta_names_the_cause(
    cli: Cli, too_new_url: str, command: str, tmp_path: Path
) -> None:
    args = [*command.split(), *required_arguments(command, tmp_path)]
    args += _confirmation(cli.commands[command])
    result = cli.run(*args, "--database-url", too_new_url)
    assert broken_promises(command, result) == []
    assert result.stderr.startswith("error: SchemaTooNewError: the database schema is at f00d")
    engine = create_engine(too_new_url, settings=isolated_settings(tmp_path))
    assert schema.current_revision(engine) == "f00d"
    engine.dispose()


def test_an_unknown_revision_is_one_line(cli: Cli, store_url: str) -> None:
    result = cli.run("db", "upgrade", "f00d", "--database-url", store_url)
    assert broken_promises("db upgrade", result) == []
    assert "migration refused: Can't locate revision identified by 'f00d'" in result.stderr


def test_a_failing_migration_is_one_line_and_leaves_nothing_behind(
    cli: Cli, empty_url: str, tmp_path: Path
) -> None:
    # A table etl-meta's first revision creates, already there: its CREATE TABLE fails.
    engine = create_engine(empty_url, settings=isolated_settings(tmp_path))
    with engine.begin() as connection:
        connection.execute(sa.text("CREATE TABLE job (id INTEGER)"))
    result = cli.run("db", "upgrade", "--database-url", empty_url)
    assert broken_promises("db upgrade", result) == []
    assert "job" in result.stderr and "already exists" in result.stderr
    assert schema.current_revision(engine) is None
    engine.dispose()


def test_two_concurrent_upgrades_each_end_in_success_or_one_line(
    pg_scratch_url: str, tmp_path: Path
) -> None:
    """PostgreSQL: the second migrator waits for the first (schema.py's lock) or, at worst,
    reports the first's win in one line, never as a traceback."""
    env = {**os.environ, "ETL_META_HOME": str(tmp_path), "ETL_META_DATABASE_URL": pg_scratch_url}
    command = [sys.executable, "-m", "etl_meta.cli", "db", "upgrade"]
    processes = [
        subprocess.Popen(
            command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    for process in processes:
        _stdout, stderr = process.communicate(timeout=120)
        assert process.returncode in {0, EXIT_ERROR}, stderr
        assert "Traceback" not in stderr
        assert len(stderr.strip().splitlines()) == (process.returncode != 0), stderr
    engine = create_engine(pg_scratch_url, settings=isolated_settings(tmp_path))
    assert schema.current_revision(engine) == schema.head_revision()
    engine.dispose()


# --- bad command lines (no database needed) ---------------------------------------------------


def _bad_values(command: Any) -> Iterator[tuple[str, str]]:
    """Each option of ``command`` that takes a number or a choice, with a value it refuses."""
    for param in command.params:
        annotation = getattr(getattr(param, "type_descriptor", None), "annotation", None)
        types = typing.get_args(annotation) or (annotation,)
        if not getattr(param, "opts", None) or getattr(param, "is_flag", False):
            continue
        if any(isinstance(t, type) and issubclass(t, int | float | enum.Enum) for t in types):
            yield param.opts[0], "not-a-value"


def test_bad_option_values_are_one_line_from_every_command(cli: Cli) -> None:
    problems = []
    checked = 0
    for name, command in sorted(cli.commands.items()):
        required = required_arguments(name, cli.tmp_path)
        for option, value in _bad_values(command):
            result = cli.run(*name.split(), *required, option, value)
            problems += broken_promises(f"{name} {option} {value}", result, {EXIT_USAGE})
            checked += 1
    assert checked > 20  # the walk found the typed options
    assert problems == []


@pytest.mark.parametrize(
    "mistake",
    [("--no-such-option",), ("--database-url",)],
    ids=["unknown-option", "option-without-value"],
)
def test_a_malformed_command_line_is_one_line_from_every_command(
    cli: Cli, mistake: tuple[str, ...]
) -> None:
    problems = []
    for name in sorted(cli.commands):
        if mistake == ("--database-url",) and name in NO_STORE:
            continue
        required = required_arguments(name, cli.tmp_path)
        result = cli.run(*name.split(), *required, *mistake)
        problems += broken_promises(name, result, {EXIT_USAGE})
    assert problems == []


def test_missing_arguments_are_one_line(cli: Cli) -> None:
    problems = []
    for name, command in sorted(cli.commands.items()):
        # A required option with its environment variable set is not missing (the Airflow
        # tests set AIRFLOW__CORE__DAGS_FOLDER for the whole process).
        missing = [
            param
            for param in command.params
            if param.required
            and not (getattr(param, "envvar", None) and os.environ.get(param.envvar))
        ]
        if missing:
            result = cli.run(*name.split())
            problems += broken_promises(name, result, {EXIT_USAGE})
    assert problems == []
    result = cli.run("jobs", "show")
    # Click spells the argument 'name' or 'NAME' depending on how Typer formats help in the
    # process (other tests change it); the line is what matters.
    expected = "error: missing argument 'name'. (see 'etl-meta jobs show --help')\n"
    assert result.stderr.lower() == expected


def test_an_unknown_command_is_one_line(cli: Cli) -> None:
    result = cli.run("jbos", "list")
    assert broken_promises("jbos", result, {EXIT_USAGE}) == []
    assert "No such command 'jbos'" in result.stderr


# --- what -v adds, and errors nobody foresaw -------------------------------------------------


#: ``db current`` never connects once :func:`_raise_unforeseen` replaces what it calls.
NEVER_CONNECTED = f"postgresql://etl:{PASSWORD}@127.0.0.1:1/etl"


def _raise_unforeseen(*_args: object, **_kwargs: object) -> None:
    raise RuntimeError(f"first line\nsecond line quoting {PASSWORD}")


def test_an_unforeseen_error_is_one_line_with_its_own_exit_code(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "schema_status", _raise_unforeseen)
    result = cli.run("db", "current", "--database-url", NEVER_CONNECTED)
    assert broken_promises("db current", result, {EXIT_UNEXPECTED}) == []
    assert result.stderr == (
        "error: unexpected RuntimeError: first line (a bug? `etl-meta -v …` shows the traceback)\n"
    )
    assert "second line" not in result.output


def test_verbose_adds_the_traceback_but_never_the_password(
    cli: Cli, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(schema, "schema_status", _raise_unforeseen)
    result = cli.run("-v", "db", "current", "--database-url", NEVER_CONNECTED)
    assert result.exit_code == EXIT_UNEXPECTED
    assert result.stderr.startswith("error: unexpected RuntimeError: first line")
    assert "Traceback" in result.stderr and "_raise_unforeseen" in result.stderr
    assert PASSWORD not in result.output and "second line quoting ***" in result.stderr


def test_every_exit_code_is_documented() -> None:
    text = (Path(__file__).parents[2] / "docs" / "cli.md").read_text()
    for code in (EXIT_ERROR, EXIT_USAGE, EXIT_UNEXPECTED):
        assert f"| {code} |" in text
