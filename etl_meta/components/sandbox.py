"""The sandbox of the built-in component types: what a definitions file may make a worker touch.

A definitions file carries no code, yet its configuration names files, functions and databases.
:class:`Sandbox` answers, for the operator's settings (``ETL_META_SANDBOX_*``), whether a path may
be read or written, a ``python`` callable imported, and a ``write_table`` database written to.
Every refusal is a :class:`SandboxError` (a :class:`~etl_meta.errors.ValidationError`) naming the
configuration field, never quoting the value. The built-in types ask at apply/store time
(``check_definition``) and again when they run (settings, files and symlinks may have changed)::

    sandbox = Sandbox.from_settings(settings)
    path = sandbox.file("data/orders.csv", field="configuration.path")  # the real path to open
    problems = refusals(lambda: sandbox.callable("os:system", field="configuration.callable"))
"""

from __future__ import annotations

import getpass
import ipaddress
import os
import re
import socket
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from etl_meta.errors import FieldProblem, ValidationError

if TYPE_CHECKING:
    from sqlalchemy.engine import URL

    from etl_meta.components.base import ComponentContext
    from etl_meta.config import Settings

#: Modules no ``python`` component may call into, whatever ``sandbox_callable_modules`` says:
#: they run commands, load code, open files or sockets, or reach the store itself. A floor, not
#: a fence: the allow-list (empty by default) is what keeps everything else out.
_DENIED_WORDS = """
    os posix nt sys builtins importlib imp subprocess shutil socket socketserver ssl ctypes cffi
    pickle marshal shelve dbm copyreg runpy code codeop pty tty termios fcntl resource mmap
    signal select selectors multiprocessing concurrent threading asyncio pdb bdb trace timeit
    profile cProfile doctest pydoc webbrowser tempfile pathlib io glob fileinput zipimport
    pkgutil site sysconfig compileall py_compile zipfile tarfile gzip bz2 lzma types gc inspect
    logging http urllib ftplib smtplib telnetlib xmlrpc sqlite3 sqlalchemy psycopg psycopg2
    cryptography venv ensurepip pip setuptools distutils etl_meta dagster_defs dagster airflow
"""
DENIED_MODULES = frozenset(_DENIED_WORDS.split())
#: Names Python would import or run if a writer put them inside the roots (``file.py:f``, ``.pth``).
_CODE_SUFFIXES = frozenset({".py", ".pyw", ".pyc", ".pyo", ".pyd", ".pth", ".so", ".dll", ".dylib"})
#: Files SQLite keeps next to a database, which hold its pages too.
_SQLITE_SIBLINGS = ("", "-wal", "-shm", "-journal")
_MODULE_RE = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*$")
_LOCAL = "<this machine>"


class SandboxError(ValidationError):
    """A configuration asks for something outside the operator's sandbox; nothing was run."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__([FieldProblem(field, message)], entity="component configuration")


def refusals(*checks: Callable[[], object]) -> list[FieldProblem]:
    """Run each check and collect the problems of those the sandbox refuses (for
    ``check_definition``, which lists problems rather than raising)."""
    problems: list[FieldProblem] = []
    for check in checks:
        try:
            check()
        except ValidationError as exc:
            problems.extend(exc.problems)
    return problems


def _real(path: Path) -> Path:
    # realpath, not Path.resolve(strict=True): a file a writer will create does not exist yet,
    # and every existing component (symlinks included) is still resolved.
    return Path(os.path.realpath(path))


def _identity(path: Path) -> tuple[int, int] | None:
    try:
        stat = os.stat(path)
    except (OSError, ValueError):
        return None
    return stat.st_dev, stat.st_ino


@dataclass(frozen=True)
class _Server:
    """Where a server database is, as comparable as a URL allows (hosts as addresses)."""

    backend: str
    hosts: frozenset[str]
    port: int | None
    databases: frozenset[str]

    def same_server(self, other: _Server) -> bool:
        return (
            self.backend == other.backend
            and bool(self.hosts & other.hosts)
            and self.port == other.port
        )


def _host_keys(host: str) -> set[str]:
    """``host`` as the set of names and addresses that reach it; every spelling of this machine
    (``localhost``, ``127.0.0.1``, ``::1``, a socket directory) becomes one key."""
    host = host.strip().strip("[]").rstrip(".").lower()
    if not host or host.startswith("/") or host == "localhost":
        return {_LOCAL}
    keys = {host}
    try:
        infos = socket.getaddrinfo(host, None)
    except (OSError, UnicodeError):
        infos = []
    for info in infos:
        try:
            address = ipaddress.ip_address(str(info[4][0]).split("%")[0])
        except ValueError:  # not an IP family we know: the name alone identifies it
            continue
        keys.add(_LOCAL if address.is_loopback or address.is_unspecified else str(address))
    return keys


def _query_values(url: URL, key: str) -> list[str]:
    value = url.query.get(key)
    if value is None:
        return []
    values = [value] if isinstance(value, str) else list(value)
    return [part for item in values for part in item.split(",")]


def _server(url: URL) -> _Server:
    """The server and database ``url`` connects to, filling in libpq's defaults (``PG*``)."""
    backend = url.get_backend_name()
    backend = "postgresql" if backend == "postgres" else backend
    if backend != "postgresql":
        hosts = {key for h in [url.host or ""] for key in _host_keys(h)}
        return _Server(backend, frozenset(hosts), url.port, frozenset({url.database or ""}))
    if "service" in url.query or "hostaddr" in url.query:
        raise ValueError("a service or hostaddr parameter hides which server this is")
    names = [url.host] if url.host else []
    names += _query_values(url, "host") or ([] if names else [os.environ.get("PGHOST", "")])
    texts = {str(p) for p in [url.port, *_query_values(url, "port")] if p}
    texts = texts or {os.environ.get("PGPORT") or "5432"}
    if len(texts) > 1 or not next(iter(texts)).isdigit():
        raise ValueError("the URL names no single, numeric port")
    port = int(texts.pop())
    databases = {d for d in [url.database, *_query_values(url, "dbname")] if d}
    if not databases:  # libpq's default: PGDATABASE, else the user name
        user = url.username or os.environ.get("PGUSER") or getpass.getuser()
        databases = {os.environ.get("PGDATABASE") or user}
    hosts = {key for name in names or [""] for key in _host_keys(name)}
    return _Server(backend, frozenset(hosts), port, frozenset(databases))


def _parse_url(text: str) -> URL:
    from sqlalchemy.engine import make_url

    return make_url(text.strip())


@dataclass(frozen=True)
class Sandbox:
    """The roots, callables and databases the built-in types may use (see the module doc).

    Build one with :meth:`from_settings`; ``base_dir`` anchors relative paths.
    """

    base_dir: Path
    roots: tuple[Path, ...]
    protected_files: tuple[Path, ...]
    callable_modules: tuple[str, ...] = ()
    databases: tuple[str, ...] = ()
    store_servers: tuple[_Server, ...] = ()

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        *,
        base_dir: Path | None = None,
        store_url: str | URL | None = None,
    ) -> Sandbox:
        """The sandbox ``settings`` describe. ``base_dir`` replaces ``settings.base_dir``;
        ``store_url`` is the store's database when the store was opened with a URL of its own
        (it is protected like the settings' one)."""
        base = (base_dir or settings.base_dir).expanduser()
        roots = tuple(_real(base / root.expanduser()) for root in settings.sandbox_roots)
        protected = [settings.resolved_secret_key_file, settings.sqlite_path]
        servers: list[_Server] = []
        for text in (settings.resolved_database_url(), store_url):
            if text is None:
                continue
            try:
                url = _parse_url(str(text)) if isinstance(text, str) else text
                if url.get_backend_name() == "sqlite":
                    if url.database and url.database != ":memory:":
                        # SQLAlchemy opens a relative SQLite path from the working directory.
                        protected.append(Path(os.path.abspath(url.database.removeprefix("file:"))))
                else:
                    servers.append(_server(url))
            except Exception:  # an unparsable store URL cannot be connected to anyway
                continue
        files = {
            _real(Path(f"{path}{suffix}")) for path in protected for suffix in _SQLITE_SIBLINGS
        }
        return cls(
            base_dir=base,
            roots=roots or (_real(base),),
            protected_files=tuple(sorted(files)),
            callable_modules=tuple(settings.sandbox_callable_modules),
            databases=tuple(settings.sandbox_databases),
            store_servers=tuple(servers),
        )

    # -- files -------------------------------------------------------------------------------

    def file(self, value: str | Path, *, field: str, write: bool = False) -> Path:
        """The real path of ``value`` (relative to ``base_dir``) if the sandbox allows it.

        Refused: the store's key file and database (with its -wal/-shm/-journal files, also
        through symlinks and hard links), anything outside the roots once symlinks and ``..``
        are resolved, hidden files and directories under a root (``.env``, ``.git``,
        ``.venv``), and, for writing, names Python would import (``.py``, ``.pth``, ...).
        """
        text = str(value)
        if "\0" in text or not text.strip():
            raise SandboxError(field, "not a usable path")
        candidate = Path(text).expanduser()
        real = _real(candidate if candidate.is_absolute() else self.base_dir / candidate)
        if self._is_protected(real):
            raise SandboxError(field, "the store's own database and key file are off limits")
        root = next((r for r in self.roots if real.is_relative_to(r)), None)
        if root is None:
            raise SandboxError(
                field, "the path is outside the sandbox roots (ETL_META_SANDBOX_ROOTS)"
            )
        if any(part.startswith(".") for part in real.relative_to(root).parts):
            raise SandboxError(field, "hidden files and directories are off limits")
        if write and real.suffix.lower() in _CODE_SUFFIXES:
            raise SandboxError(field, "writing files Python would import or run is not allowed")
        return real

    def tree(self, directory: Path, *, field: str) -> None:
        """Check every entry under ``directory`` (a reader of a whole directory follows its
        symlinks, so each must stay inside the sandbox too)."""
        for current, directories, files in os.walk(directory):
            for name in (*directories, *files):
                self.file(Path(current) / name, field=field)

    def _is_protected(self, real: Path) -> bool:
        if real in self.protected_files:
            return True
        identity = _identity(real)
        return identity is not None and any(
            _identity(path) == identity for path in self.protected_files
        )

    # -- callables ---------------------------------------------------------------------------

    def callable(self, reference: str, *, field: str) -> Path | None:
        """Check a ``python`` callable before anything is imported; the real path of a
        ``file.py:function`` reference, ``None`` for ``module:function``."""
        target, _, attribute = reference.strip().rpartition(":")
        if any(part.startswith("__") for part in attribute.split(".")):
            raise SandboxError(field, "dunder attributes cannot be called")
        if target.endswith(".py") or "/" in target or "\\" in target:
            if not target.endswith(".py"):
                raise SandboxError(field, "only .py files can be loaded")
            return self.file(target, field=field)
        if not _MODULE_RE.match(target):
            raise SandboxError(field, "not a module name")
        self.module(target, field=field)
        if not any(
            target == prefix or target.startswith(prefix + ".") for prefix in self.callable_modules
        ):
            raise SandboxError(
                field,
                "the module is not allow-listed (ETL_META_SANDBOX_CALLABLE_MODULES); use "
                "'path/file.py:function' for a file inside the sandbox roots",
            )
        return None

    def module(self, name: str, *, field: str) -> None:
        """Refuse a module on the hard deny-list (or private: ``_posixsubprocess``,
        ``__main__``), whatever the allow-list says."""
        parts = name.split(".")
        if any(part.startswith("_") for part in parts) or any(
            ".".join(parts[:i]) in DENIED_MODULES for i in range(1, len(parts) + 1)
        ):
            raise SandboxError(field, "the module is on the sandbox's deny-list")

    def loaded(self, found: Any, *, field: str) -> None:
        """Check the object a callable reference resolved to: a function re-exported from a
        denied module (``from subprocess import getoutput``) is refused too."""
        module = getattr(found, "__module__", None)
        if isinstance(module, str) and module:
            self.module(module, field=field)

    # -- databases ---------------------------------------------------------------------------

    def database(self, url_text: str | URL, *, field: str) -> Path | None:
        """Check a ``write_table`` target; the real path of a SQLite file, ``None`` otherwise.

        Refused: the store's own database however it is spelled (driver names, relative or
        absolute paths, symlinks, host name case, ``localhost`` for ``127.0.0.1``, default
        ports, ``host``/``dbname`` query parameters), SQLite URI filenames (``file:``,
        ``uri=true``), SQLite files outside the roots, and databases not in
        ``sandbox_databases`` when it is set.
        """
        try:
            url = _parse_url(url_text) if isinstance(url_text, str) else url_text
            backend = url.get_backend_name()
        except Exception:  # the parser's message may quote the URL
            raise SandboxError(field, "not a valid SQLAlchemy URL") from None
        if backend == "sqlite":
            return self._sqlite(url, field=field)
        try:
            server = _server(url)
        except ValueError as exc:
            raise SandboxError(field, str(exc)) from None
        if any(
            server.same_server(s) and server.databases & s.databases for s in self.store_servers
        ):
            raise SandboxError(field, "the store's own database is off limits")
        if self.databases and not any(self._allows(entry, server) for entry in self.databases):
            raise SandboxError(
                field, "the database is not allow-listed (ETL_META_SANDBOX_DATABASES)"
            )
        return None

    def _sqlite(self, url: URL, *, field: str) -> Path | None:
        database = url.database or ""
        if "uri" in url.query or database.startswith("file:"):
            raise SandboxError(field, "SQLite URI filenames are not allowed; use a plain path")
        if database in ("", ":memory:"):
            return None
        real = self.file(database, field=field, write=True)
        if self.databases and not any(
            entry.strip() == "sqlite" or self._same_sqlite(entry, real) for entry in self.databases
        ):
            raise SandboxError(
                field, "the database is not allow-listed (ETL_META_SANDBOX_DATABASES)"
            )
        return real

    def _same_sqlite(self, entry: str, real: Path) -> bool:
        try:
            url = _parse_url(entry)
        except Exception:
            return False
        if url.get_backend_name() != "sqlite" or not url.database:
            return False
        return _real(self.base_dir / Path(url.database).expanduser()) == real

    @staticmethod
    def _allows(entry: str, server: _Server) -> bool:
        try:
            allowed = _server(_parse_url(entry))
        except Exception:  # a malformed entry allows nothing
            return False
        return allowed.same_server(server) and (
            "*" in allowed.databases or server.databases <= allowed.databases
        )


def sandbox_of(context: ComponentContext) -> Sandbox:
    """The sandbox a running component answers to: the one its integration put in
    ``context.sandbox``, or else this process's settings with ``context.base_dir`` as base."""
    if context.sandbox is not None:
        return context.sandbox
    from etl_meta.config import get_settings

    return Sandbox.from_settings(get_settings(), base_dir=context.base_dir)
