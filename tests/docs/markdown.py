"""The code blocks of the README and docs/, and how each kind is checked.

Conventions the documentation follows:

- ```` ```python ```` blocks of one file run in document order in one namespace, from the
  repository root, against a fresh migrated store that ``MetadataStore()`` opens
  (``ETL_META_DATABASE_URL`` and ``ETL_META_HOME`` point at the test's scratch store).
- A statement ending in ``# -> VALUE`` (or followed by a ``# -> VALUE`` line) is checked:
  ``VALUE`` is the value's ``repr``, its ``str``, its type's name, or a Python literal equal to
  it; for ``print(x)``, what is printed.
- ``<!-- setup: NAME -->`` on the line before a fence empties the store and seeds it with
  ``NAME`` from ``tests/docs/setups.py`` before that block runs (the data the prose takes as
  given: a job with runs and metrics, an open ``store``).
- ``<!-- not-run: REASON -->`` on the line before a fence skips a block (a signature, an
  excerpt, a call that needs a live Airflow or a PostgreSQL superuser); the reason says why.
- ```` ```yaml ```` blocks with ``jobs:`` or ``dataclasses:`` at the top level must load as a
  definitions file; ```` ```bash ````/```` ```console ````/```` ```sh ```` lines that run
  ``etl-meta``, and the ``etl-meta …`` synopses of ```` ```text ```` blocks, must name existing
  commands and options.
"""

from __future__ import annotations

import ast
import re
import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
FENCE = re.compile(r"^(?P<indent>\s*)```(?P<lang>[\w+-]*)\s*$")
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>not-run|setup):\s*(?P<value>.*?)\s*-->\s*$")
EXPECTED = re.compile(r"#\s*->\s*(?P<value>.+?)\s*$")
ENV_ASSIGNMENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
COMMAND_LINE = re.compile(r"^(?:[A-Za-z_][A-Za-z0-9_]*=\S*\s+)*etl-meta\s")
SHELL_LANGS = {"bash", "console", "sh", "shell"}


@dataclass(frozen=True)
class Block:
    path: Path  # relative to the repository root
    line: int  # the fence's line, 1-based
    lang: str
    code: str
    not_run: str | None = None
    setup: str | None = None

    @property
    def where(self) -> str:
        return f"{self.path}:{self.line}"


def documents() -> list[Path]:
    """README.md and docs/*.md (docs/internals/ describes tests, not usage)."""
    return [Path("README.md"), *sorted(p.relative_to(ROOT) for p in (ROOT / "docs").glob("*.md"))]


def blocks(path: Path) -> list[Block]:
    """Every fenced block of one markdown file, with the marker on the line before it."""
    lines = (ROOT / path).read_text(encoding="utf-8").splitlines()
    found: list[Block] = []
    i = 0
    while i < len(lines):
        opening = FENCE.match(lines[i])
        if not opening or not opening["lang"]:
            i += 1
            continue
        indent = len(opening["indent"])
        end = i + 1
        while end < len(lines) and lines[end].strip() != "```":
            end += 1
        code = "\n".join(line[indent:] for line in lines[i + 1 : end]) + "\n"
        previous = next((lines[j] for j in range(i - 1, -1, -1) if lines[j].strip()), "")
        marker = MARKER.match(previous)
        kind, value = (marker["kind"], marker["value"]) if marker else (None, None)
        found.append(
            Block(
                path,
                i + 1,
                opening["lang"],
                code,
                not_run=value if kind == "not-run" else None,
                setup=value if kind == "setup" else None,
            )
        )
        i = end + 1
    return found


def run_python(block: Block, namespace: dict[str, Any]) -> None:
    """Run one block statement by statement, checking every ``# -> VALUE``.

    The code is compiled at its own line numbers in the markdown file, so a traceback points
    at the documentation line that failed.
    """
    source = "\n" * block.line + block.code
    source_lines = source.splitlines()
    filename = str(block.path)  # relative to the working directory, the repository root
    for statement in ast.parse(source, filename).body:
        expected = _shown_value(source_lines, statement.end_lineno)
        if isinstance(statement, ast.Expr) and expected is not None:
            _check_expression(statement.value, expected, filename, namespace)
            continue
        module = ast.Module(body=[statement], type_ignores=[])
        exec(compile(module, filename, "exec", dont_inherit=True), namespace)


def _shown_value(lines: list[str], end: int) -> str | None:
    """``VALUE`` of ``# -> VALUE`` at the end of a statement's last line, or alone on the next."""
    shown = EXPECTED.search(lines[end - 1])
    if shown is None and end < len(lines) and lines[end].lstrip().startswith("#"):
        shown = EXPECTED.match(lines[end].lstrip())
    return shown["value"] if shown else None


def _check_expression(
    expression: ast.expr, shown: str, filename: str, namespace: dict[str, Any]
) -> None:
    printed = (
        isinstance(expression, ast.Call)
        and isinstance(expression.func, ast.Name)
        and expression.func.id == "print"
        and len(expression.args) == 1
    )
    target = expression.args[0] if printed else expression
    code = compile(ast.Expression(target), filename, "eval", dont_inherit=True)
    value = eval(code, namespace)
    if printed:
        print(value)
        actual = {str(value)}
    else:
        actual = {repr(value), str(value), type(value).__name__}
    try:  # a literal shown compares by value: PostgreSQL's JSONB does not keep key order
        matches = ast.literal_eval(shown) == value
    except (ValueError, SyntaxError):
        matches = False
    where = f"{filename}:{expression.lineno}"
    assert matches or shown in actual, f"{where} shows {shown}, but the value is {value!r}"


def looks_like_definitions(block: Block) -> bool:
    return block.lang == "yaml" and bool(
        re.search(r"^(jobs|dataclasses):", block.code, flags=re.MULTILINE)
    )


def command_lines(block: Block) -> list[list[str]]:
    """The ``etl-meta`` command lines of a shell block, as argument lists (without etl-meta)."""
    commands = []
    for raw in block.code.replace("\\\n", " ").splitlines():  # join continued lines
        line = raw.strip().removeprefix("$ ")
        if not COMMAND_LINE.match(line):
            continue
        words = shlex.split(line.split(" | ")[0], comments=True)
        while words and ENV_ASSIGNMENT.match(words[0]):  # ETL_META_ROLE=writer etl-meta …
            words.pop(0)
        if words and words[0] == "etl-meta":
            commands.append(words[1:])
    return commands


def usage_lines(block: Block) -> list[list[str]]:
    """The command synopses of a ``text`` block (``etl-meta jobs list|show NAME [--format F]``),
    one argument list per alternative command, with only words a check can use: command names
    and options (indented lines continue the synopsis above them)."""
    synopses: list[str] = []
    for line in block.code.splitlines():
        if line.startswith("etl-meta "):
            synopses.append(line)
        elif synopses and line.startswith(" ") and line.strip():
            synopses[-1] += " " + line
    expanded = []
    for synopsis in synopses:
        words = [w.strip("[]") for w in synopsis.split()[1:]]
        path = []
        while words and re.fullmatch(r"[a-z][a-z-]*(\|[a-z][a-z-]*)*", words[0]):
            path.append(words.pop(0).split("|"))
            if len(path) == 2:  # etl-meta GROUP COMMAND: what follows is arguments or prose
                break
        options = [w for w in words if re.fullmatch(r"--?[a-z][a-z0-9-]*", w)]
        alternatives: list[list[str]] = [[]]
        for choices in path:
            alternatives = [[*a, c] for a in alternatives for c in choices]
        expanded.extend([*a, *options] for a in alternatives)
    return expanded


def check_command(root: Any, args: list[str]) -> str | None:
    """``None`` when ``etl-meta ARGS`` names a command and only options it has, else why not.

    ``root`` is the click command Typer builds (Typer vendors its own click, so groups are
    told by their ``commands``, not by class). Sub-commands are looked up through
    ``get_command``, as click does: the root loads the integrations' groups only then.
    """
    command, path = root, ["etl-meta"]
    rest = list(args)
    while hasattr(command, "commands") and rest and not rest[0].startswith("-"):
        name = rest.pop(0)
        sub = command.get_command(None, name)  # no context: every group here ignores it
        if sub is None:
            return f"{' '.join(path)} has no command {name!r}"
        command, path = sub, [*path, name]
    if hasattr(command, "commands"):
        return f"{' '.join(path)} needs a subcommand"
    options = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    options.add("--help")
    for word in rest:
        if word.startswith("-") and word != "-":
            option = word.split("=", 1)[0]
            if option not in options:
                return f"{' '.join(path)} has no option {option!r}"
    return None
