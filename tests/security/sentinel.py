"""The sentinel kit: a unique secret, a corpus of everything etl-meta emitted, and a probe.

Not collected as tests. The sentinel suites store configuration whose secret positions hold a
value derived from one random ``core``, gather every output into a :class:`Corpus` and assert the
core appears nowhere in it, in any of the encodings a leak could take (case changed, JSON- or
URL-escaped, base64, hex). Only the :class:`SentinelProbe` component, running, sees the values; it
records their sha256 in :data:`PROOF` so tests can prove it got the real ones.
"""

from __future__ import annotations

import base64
import gzip
import hashlib
import logging
import re
import sqlite3
import traceback
import uuid
import zlib
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pydantic

from etl_meta.components import ComponentContext, ComponentResult, ComponentType, register
from etl_meta.components.contracts import SecretText

#: ``"<orchestrator>:<job>.<component>" -> {field: sha256 of the value the component received}``.
PROOF: dict[str, dict[str, str]] = {}


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Sentinel:
    """A unique secret family: every value shares ``core`` (32 random hex characters).

    Searching for the core, case-insensitively, finds a value however it was quoted: the quote
    and the non-ASCII letter at the end of each value change under JSON, ``repr`` or URL
    escaping, the core never does.
    """

    core: str = field(default_factory=lambda: uuid.uuid4().hex)

    def value(self, position: str) -> str:
        """The secret stored at ``position`` (the suffix says where a leaked value came from)."""
        return f'Sntl{self.core}-{position}-\u00e9"'

    @property
    def marker(self) -> str:
        """A *plain* value stored beside the secrets: outputs showing configuration must show it."""
        return f"plain-{self.core[:8][::-1]}-marker"

    def needles(self) -> dict[str, re.Pattern[str]]:
        """What a leak looks like: the core in any case, base64 at any alignment, hex."""
        patterns = {"plain (any case)": re.compile(re.escape(self.core), re.IGNORECASE)}
        raw = self.core.encode("ascii")
        for offset in range(3):
            # base64 of the core inside longer text depends on where it starts: encode it at
            # each of the three alignments and keep only the characters that never change.
            encoded = base64.b64encode(b"\0" * offset + raw).decode("ascii")
            first_full_group = 1 if offset else 0
            stable = encoded[4 * first_full_group : 4 * ((offset + len(raw)) // 3)]
            for label, text in (
                ("base64", stable),
                ("urlsafe base64", stable.replace("+", "-").replace("/", "_")),
            ):
                patterns[f"{label} (offset {offset})"] = re.compile(re.escape(text))
        patterns["hex"] = re.compile(re.escape(raw.hex()), re.IGNORECASE)
        return patterns


@dataclass
class Leak:
    where: str
    encoding: str
    context: str

    def __str__(self) -> str:
        return f"{self.where} [{self.encoding}]: ...{self.context}..."


@dataclass
class Corpus:
    """Everything the code under test emitted, by where it came from."""

    sentinel: Sentinel
    items: list[tuple[str, str]] = field(default_factory=list)

    def add(self, where: str, value: Any) -> None:
        """Add ``value`` as text: bytes are decoded (and decompressed when they are zlib/gzip)."""
        if isinstance(value, bytes | bytearray | memoryview):
            data = bytes(value)
            self.items.append((where, data.decode("utf-8", errors="replace")))
            expanded = _decompressed(data)
            if expanded is not None:
                self.items.append((f"{where} (decompressed)", expanded.decode("utf-8", "replace")))
            return
        self.items.append((where, value if isinstance(value, str) else repr(value)))

    def add_exception(self, where: str, exc: BaseException) -> None:
        """The message, the repr and the full formatted traceback (every cause and context)."""
        self.add(f"{where}: str", str(exc))
        self.add(f"{where}: repr", repr(exc))
        self.add(f"{where}: traceback", "".join(traceback.format_exception(exc)))
        self.add(f"{where}: args", repr(getattr(exc, "args", ())))
        self.add(f"{where}: attributes", repr(vars(exc)) if hasattr(exc, "__dict__") else "")

    def add_file(self, where: str, path: Path) -> None:
        self.add(f"{where} {path.name}", path.read_bytes())

    def add_tree(self, where: str, root: Path) -> int:
        """Every file under ``root`` (SQLite databases row by row too); returns how many."""
        count = 0
        for path in sorted(p for p in root.rglob("*") if p.is_file()):
            relative = path.relative_to(root)
            self.add(f"{where}/{relative}", path.read_bytes())
            if path.suffix in {".db", ".sqlite", ".sqlite3"} and not path.name.endswith("-wal"):
                self.add_sqlite(f"{where}/{relative}", path)
            count += 1
        return count

    def add_sqlite(self, where: str, path: Path) -> None:
        """Every row of every table, blobs decompressed: some stores zlib their snapshots."""
        try:
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error:
            return
        try:
            tables = [
                row[0]
                for row in connection.execute("SELECT name FROM sqlite_master WHERE type='table'")
            ]
            for table in tables:
                try:
                    rows = connection.execute(f'SELECT * FROM "{table}"').fetchall()
                except sqlite3.Error:
                    continue
                for number, row in enumerate(rows):
                    for cell in row:
                        if isinstance(cell, bytes):
                            self.add(f"{where}:{table}[{number}]", cell)
                    self.add(f"{where}:{table}[{number}]", repr(row))
        finally:
            connection.close()

    @property
    def size(self) -> int:
        return sum(len(text) for _, text in self.items)

    def wheres(self) -> list[str]:
        return [where for where, _ in self.items]

    def text(self, prefix: str) -> str:
        """All text added under names starting with ``prefix`` (for positive checks)."""
        return "\n".join(text for where, text in self.items if where.startswith(prefix))

    def leaks(self) -> list[Leak]:
        found = []
        redact = re.compile(re.escape(self.sentinel.core), re.IGNORECASE)
        for where, text in self.items:
            for encoding, pattern in self.sentinel.needles().items():
                for match in pattern.finditer(text):
                    before = text[max(match.start() - 70, 0) : match.start()]
                    after = text[match.end() : match.end() + 70]
                    context = "<SENTINEL>".join(
                        redact.sub("<SENTINEL>", part) for part in (before, after)
                    ).replace("\n", "\\n")
                    found.append(Leak(where, encoding, context))
                    break
        return found

    def assert_clean(self, *, min_items: int = 1, min_chars: int = 1) -> None:
        """Fail naming every place the sentinel showed up; refuse a corpus too small to mean it."""
        leaks = self.leaks()
        if leaks:
            shown = "\n  ".join(str(leak) for leak in leaks[:40])
            more = f"\n  ... and {len(leaks) - 40} more" if len(leaks) > 40 else ""
            raise AssertionError(f"secret leaked in {len(leaks)} place(s):\n  {shown}{more}")
        assert len(self.items) >= min_items, f"only {len(self.items)} outputs collected"
        assert self.size >= min_chars, f"only {self.size} characters collected"


def _decompressed(data: bytes) -> bytes | None:
    if data[:2] == b"\x1f\x8b":
        try:
            return gzip.decompress(data)
        except (OSError, EOFError):
            return None
    if data[:1] == b"\x78":
        try:
            return zlib.decompress(data)
        except zlib.error:
            return None
    return None


# -- logging ---------------------------------------------------------------------------------


class _Collector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(name)s %(levelname)s %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.format(record)  # includes the formatted traceback of exc_info
        except Exception as exc:  # a record that cannot format must still be searched
            text = f"<unformattable: {exc!r}> {record.msg!r} % {record.args!r}"
        # Everything on the record, extras included, not only what the format shows.
        self.lines.append(f"{text} | {record.__dict__!r}")


@contextmanager
def all_logs_at_debug() -> Iterator[list[str]]:
    """Every log record of every logger, at DEBUG, while the block runs (restored after)."""
    collector = _Collector()
    root = logging.getLogger()
    saved: list[tuple[logging.Logger, int]] = [(root, root.level)]
    attached: list[logging.Logger] = [root]
    root.addHandler(collector)
    root.setLevel(logging.DEBUG)
    for logger in list(logging.root.manager.loggerDict.values()):
        if not isinstance(logger, logging.Logger):
            continue
        if logger.level > logging.DEBUG:
            saved.append((logger, logger.level))
            logger.setLevel(logging.DEBUG)
        if not logger.propagate:  # its records never reach the root handler
            logger.addHandler(collector)
            attached.append(logger)
    logging.disable(logging.NOTSET)
    try:
        yield collector.lines
    finally:
        for logger in attached:
            logger.removeHandler(collector)
        for logger, level in saved:
            logger.setLevel(level)


# -- the component that is allowed to see the secrets ----------------------------------------


@register
class SentinelProbe(ComponentType):
    """Receives the secrets at every secret position; records their sha256, emits nothing of them.

    ``conn`` is declared secret by this type's contract only: its name is on no sensitive-key
    list.
    """

    name = "test.sentinel_probe"
    description = "Sentinel probe (tests): proves it received the real secrets."

    class Config(ComponentType.Config):
        password: str
        connection: dict[str, Any] = {}
        targets: list[dict[str, Any]] = []
        conn: SecretText = pydantic.SecretStr("")
        region: str = ""

    def run(
        self, context: ComponentContext, config: Any, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        received = {
            "password": config.password,
            "token": config.connection["credentials"]["token"],
            "api_key": config.targets[0]["api_key"],
            "conn": config.conn.get_secret_value(),
        }
        PROOF[f"{context.orchestrator}:{context.job}.{context.component}"] = {
            key: sha256(value) for key, value in received.items()
        }
        context.log.info("probe %s ran in region %s", context.component, config.region)
        if context.record_metrics is not None:
            context.record_metrics({"probe.secrets_seen": float(len(received))})
        return ComponentResult(
            value={"region": config.region, "secrets_seen": len(received)},
            metrics={"probe.rows": 1.0},
            metadata={"row_count": 1, "columns": {"region": "string"}},
        )


def probe_function(context: ComponentContext, password: str, region: str = "") -> dict[str, Any]:
    """Called by a ``python`` component: ``password`` comes from its (encrypted) ``kwargs``."""
    PROOF[f"{context.orchestrator}:{context.job}.{context.component}"] = {
        "password": sha256(password)
    }
    context.log.info("python probe ran in region %s", region)
    return {"region": region}


def probe_configuration(sentinel: Sentinel, tag: str) -> dict[str, Any]:
    """A probe configuration with the sentinel at every kind of secret position."""
    return {
        "password": sentinel.value(f"{tag}-password"),
        "connection": {
            "host": "db.internal",
            "credentials": {"user": "etl", "token": sentinel.value(f"{tag}-token")},
        },
        "targets": [{"api_key": sentinel.value(f"{tag}-api_key"), "name": "t1"}],
        "conn": sentinel.value(f"{tag}-conn"),
        "region": sentinel.marker,
    }


def expected_proof(configuration: Mapping[str, Any]) -> dict[str, str]:
    """The sha256 a probe records when it receives ``configuration`` intact."""
    return {
        "password": sha256(configuration["password"]),
        "token": sha256(configuration["connection"]["credentials"]["token"]),
        "api_key": sha256(configuration["targets"][0]["api_key"]),
        "conn": sha256(configuration["conn"]),
    }
