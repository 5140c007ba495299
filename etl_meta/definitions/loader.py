"""Safe YAML loading that remembers where every value came from.

PyYAML's ``safe_load`` forgets positions, silently keeps the last of two equal keys and happily
builds documents whose aliases expand exponentially ("billion laughs"). This loader composes the
node graph with a :class:`yaml.SafeLoader`, walks it once (following aliases) to record a
``{path: (line, column)}`` map, reject duplicate keys and count alias-expanded nodes, and only then
constructs Python values from the same nodes.

Scalars follow YAML 1.2's core schema where YAML 1.1 surprises configuration authors: only
``true``/``false`` are booleans (so a ``join`` step's ``on:`` key stays the string ``"on"``),
dates stay strings (configuration is JSON, which has no date type), and so do base-60 numbers
such as ``1:30`` (YAML 1.1 reads 90; building a long one costs quadratic time).

Hostile files fail fast with a positioned :class:`DefinitionsError`: nesting is bounded while
scanning (PyYAML's scanner is quadratic in flow depth, its composer recursive), tags that build
non-JSON values (``!!binary``, ``!!set``, ``!!timestamp``…) and non-string keys are refused, and
a scalar an explicit tag cannot convert (``!!int abc``, an integer of more than 4300 digits) is an
error at its position rather than a ``ValueError``. The pure-Python parser is used on purpose:
libyaml's composer recurses in C and crashes the process on deeply nested input.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.constructor import ConstructorError
from yaml.events import AliasEvent
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode
from yaml.scanner import ScannerError

from etl_meta.definitions.errors import DefinitionsError, DocPath

#: Files (and texts) larger than this are refused before parsing.
MAX_FILE_BYTES = 5 * 1024 * 1024
#: Nodes reachable only by following aliases; more than this is an alias bomb.
MAX_ALIAS_NODES = 10_000
#: Deeper nesting than this is refused (PyYAML and pydantic both recurse).
MAX_DEPTH = 100

_YAML_TAG = "tag:yaml.org,2002:"
_BOOL_TAG = _YAML_TAG + "bool"
_INT_TAG = _YAML_TAG + "int"
_FLOAT_TAG = _YAML_TAG + "float"
_TIMESTAMP_TAG = _YAML_TAG + "timestamp"
_MERGE_TAG = _YAML_TAG + "merge"
#: Tags the safe loader knows that build values JSON cannot hold (bytes, sets, dates, pairs).
_NON_JSON_TAGS = frozenset(_YAML_TAG + name for name in ("binary", "set", "omap", "pairs"))
_NON_JSON_TAGS |= {_TIMESTAMP_TAG}


class _Loader(yaml.SafeLoader):
    """SafeLoader with YAML 1.2 booleans, no implicit timestamps or base-60, bounded nesting."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._aliases = 0

    def _check_depth(self) -> None:
        # Checked as the scanner opens each level, before PyYAML's per-level costs pile up: with
        # 10,000 unclosed "[" its scanner alone takes seconds and its composer hits the recursion
        # limit. Flow and block levels add up, as they do in the composed document.
        if self.flow_level + len(self.indents) >= MAX_DEPTH:
            raise ScannerError(
                None, None, f"nested deeper than {MAX_DEPTH} levels", self.get_mark()
            )

    def fetch_flow_collection_start(self, TokenClass: Any) -> None:
        """Open a ``[`` or ``{`` level, refusing one level too many."""
        self._check_depth()
        super().fetch_flow_collection_start(TokenClass)

    def add_indent(self, column: int) -> bool:
        """Open a block level, refusing one level too many."""
        added = super().add_indent(column)
        if added:
            self._check_depth()
        return added

    def construct_object(self, node: Node, deep: bool = False) -> Any:
        """Build one value; a scalar its explicit tag cannot convert is a positioned error.

        ``!!int abc``, ``!!bool maybe`` or an integer over Python's 4300-digit conversion limit
        raise ``ValueError``/``KeyError`` inside PyYAML's constructors, not a YAML error.
        """
        try:
            return super().construct_object(node, deep=deep)
        except (ValueError, KeyError, TypeError, AttributeError, OverflowError):
            # Never the value itself in the message: it may be a secret.
            name = node.tag.removeprefix(_YAML_TAG)
            message = f"the value cannot be read as !!{name}"
            if node.tag == _INT_TAG:
                message += f" (at most {sys.get_int_max_str_digits()} digits)"
            raise ConstructorError(None, None, message, node.start_mark) from None

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        """Compose one node, refusing an alias bomb as soon as it has too many aliases.

        Each alias expands to at least one node, so more aliases than :data:`MAX_ALIAS_NODES`
        is a bomb whatever they point at; stopping here saves parsing the rest of the file.
        """
        if self.check_event(AliasEvent):
            self._aliases += 1
            if self._aliases > MAX_ALIAS_NODES:
                raise ComposerError(
                    None,
                    None,
                    f"aliases expand to more than {MAX_ALIAS_NODES} nodes",
                    self.peek_event().start_mark,
                )
        return super().compose_node(parent, index)

    def construct_yaml_int(self, node: ScalarNode) -> int:
        """Integers, but not base-60 ones: ``!!int 1:00:00:...`` is quadratic to build."""
        if ":" in str(node.value):
            raise ConstructorError(
                None, None, "base-60 integers (1:30) are not supported", node.start_mark
            )
        return super().construct_yaml_int(node)


_Loader.add_constructor(_INT_TAG, _Loader.construct_yaml_int)

# YAML 1.1's int and float patterns (PyYAML's resolver) without their base-60 branches.
_INT_RE = re.compile(
    r"""^(?:[-+]?0b[0-1_]+
    |[-+]?0[0-7_]+
    |[-+]?(?:0|[1-9][0-9_]*)
    |[-+]?0x[0-9a-fA-F_]+)$""",
    re.X,
)
_FLOAT_RE = re.compile(
    r"""^(?:[-+]?(?:[0-9][0-9_]*)\.[0-9_]*(?:[eE][-+][0-9]+)?
    |\.[0-9][0-9_]*(?:[eE][-+][0-9]+)?
    |[-+]?\.(?:inf|Inf|INF)
    |\.(?:nan|NaN|NAN))$""",
    re.X,
)
_REPLACED = (_BOOL_TAG, _TIMESTAMP_TAG, _INT_TAG, _FLOAT_TAG)
# Own copy of the resolver table: never mutate SafeLoader's, which other code shares.
_Loader.yaml_implicit_resolvers = {
    first: [(tag, regexp) for tag, regexp in resolvers if tag not in _REPLACED]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
_Loader.add_implicit_resolver(
    _BOOL_TAG, re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)
_Loader.add_implicit_resolver(_INT_TAG, _INT_RE, list("-+0123456789"))
_Loader.add_implicit_resolver(_FLOAT_TAG, _FLOAT_RE, list("-+0123456789."))


@dataclass
class SourceMap:
    """Where each value (and each mapping key) of a loaded document is, 1-based."""

    source: str
    values: dict[DocPath, tuple[int, int]] = field(default_factory=dict)
    keys: dict[DocPath, tuple[int, int]] = field(default_factory=dict)

    def locate(self, path: DocPath, *, key: bool = False) -> tuple[int, int] | None:
        """The position of ``path``, or of its nearest recorded ancestor.

        ``key=True`` prefers the position of the mapping key itself (for unknown or duplicate
        keys) over that of its value.
        """
        path = tuple(path)
        if key and path in self.keys:
            return self.keys[path]
        while path not in self.values:
            if not path:
                return None
            path = path[:-1]
        return self.values[path]

    def error(self, message: str, path: DocPath = (), *, key: bool = False) -> DefinitionsError:
        """A :class:`DefinitionsError` at ``path``, positioned from this map."""
        return DefinitionsError.at(
            self.source, message, path=path, position=self.locate(path, key=key)
        )


def _position(node: Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


class _Walker:
    """One pass over the composed node graph, aliases followed, before anything is built."""

    def __init__(self, loader: _Loader, source_map: SourceMap) -> None:
        self.loader = loader
        self.map = source_map
        self.seen: set[int] = set()
        self.active: set[int] = set()
        self.expanded = 0

    def fail(self, node: Node, path: DocPath, message: str) -> DefinitionsError:
        return DefinitionsError.at(self.map.source, message, path=path, position=_position(node))

    def walk(
        self, node: Node, path: DocPath, depth: int = 0, alias_at: DocPath | None = None
    ) -> None:
        """Record ``node`` at ``path`` and walk its children.

        ``alias_at`` is the path where the walk entered an alias (``None`` outside aliases).
        """
        node_id = id(node)
        if node_id in self.active:
            raise self.fail(node, path, "an alias refers to a node that contains it (recursion)")
        # An alias is the very node object of its anchor: meeting one again means an alias.
        if alias_at is None and node_id in self.seen:
            alias_at = path
        self.seen.add(node_id)
        if alias_at is not None:
            self.expanded += 1
            if self.expanded > MAX_ALIAS_NODES:
                raise self._bomb(alias_at)
        if depth > MAX_DEPTH:
            raise self.fail(node, path, f"nested deeper than {MAX_DEPTH} levels")
        if node.tag in _NON_JSON_TAGS:
            # Refused here, with the path, rather than as "not JSON" deep in a configuration, or
            # not at all: pydantic would quietly turn !!binary bytes into a description.
            name = node.tag.removeprefix(_YAML_TAG)
            raise self.fail(node, path, f"the tag !!{name} is not allowed (definitions are JSON)")
        self.map.values.setdefault(path, _position(node))
        if isinstance(node, ScalarNode):
            return
        self.active.add(node_id)
        try:
            if isinstance(node, SequenceNode):
                for index, item in enumerate(node.value):
                    self.walk(item, (*path, index), depth + 1, alias_at)
            elif isinstance(node, MappingNode):
                self._walk_mapping(node, path, depth, alias_at)
        finally:
            self.active.discard(node_id)

    def _bomb(self, alias_at: DocPath) -> DefinitionsError:
        # The aliased node's own marks are its anchor's; point at the container using the alias.
        position = self.map.keys.get(alias_at) or self.map.locate(alias_at[:-1])
        return DefinitionsError.at(
            self.map.source,
            f"aliases expand to more than {MAX_ALIAS_NODES} nodes",
            path=alias_at,
            position=position,
        )

    def _walk_mapping(
        self, node: MappingNode, path: DocPath, depth: int, alias_at: DocPath | None
    ) -> None:
        first_seen: dict[Any, tuple[int, int]] = {}
        merged: list[Node] = []
        for key_node, value_node in node.value:
            if key_node.tag == _MERGE_TAG:
                merged.append(value_node)
                continue
            key = self._key(key_node, path)
            key_path = (*path, key)
            if key in first_seen:
                line, _ = first_seen[key]
                raise self.fail(key_node, key_path, f"duplicate key {key!r} (first at line {line})")
            first_seen[key] = _position(key_node)
            self.map.keys.setdefault(key_path, _position(key_node))
            self.walk(value_node, key_path, depth + 1, alias_at)
        # Merged ("<<: *base") entries land in this mapping; explicit keys above win.
        for value_node in merged:
            sources = value_node.value if isinstance(value_node, SequenceNode) else [value_node]
            for source in sources:
                self.walk(source, path, depth + 1, alias_at)

    def _key(self, key_node: Node, path: DocPath) -> Any:
        if not isinstance(key_node, ScalarNode):
            raise self.fail(key_node, path, "mapping keys must be plain scalars")
        key = self.loader.construct_object(key_node)
        if not isinstance(key, str):
            # JSON keys are strings. Said here, at the key: pydantic would report "1" and "True"
            # as the same key, and only for some fields.
            raise self.fail(
                key_node, path, "mapping keys must be strings (quote keys such as '200' or 'null')"
            )
        return key


def _yaml_error(exc: yaml.YAMLError, source: str, text: str) -> DefinitionsError:
    # Only the problem and context phrases: str(exc) quotes a snippet of the file, and that line
    # may hold a secret.
    if isinstance(exc, yaml.MarkedYAMLError):
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or "invalid YAML"
        if exc.context:
            message = f"{message} ({exc.context})"
        position = (mark.line + 1, mark.column + 1) if mark else None
        return DefinitionsError.at(source, message, position=position)
    if isinstance(exc, yaml.reader.ReaderError):
        before = text[: exc.position]
        position = (before.count("\n") + 1, len(before) - before.rfind("\n"))
        return DefinitionsError.at(
            source, "the file holds a non-printable character", position=position
        )
    return DefinitionsError.at(source, "not valid YAML")


def load_yaml(text: str, source: str) -> tuple[Any, SourceMap]:
    """Parse one YAML document safely; return its value and where each part of it came from.

    Raises:
        DefinitionsError: too large, not YAML, more than one document, duplicate keys, recursive
            or exploding aliases, or nesting deeper than :data:`MAX_DEPTH`.
    """
    size = len(text.encode("utf-8", errors="surrogatepass"))
    if size > MAX_FILE_BYTES:
        raise DefinitionsError.at(
            source, f"the file is {size} bytes; the limit is {MAX_FILE_BYTES} (5 MiB)"
        )
    source_map = SourceMap(source)
    loader: _Loader | None = None
    try:
        loader = _Loader(text)
        node = loader.get_single_node()
        if node is None:
            raise DefinitionsError.at(source, "the file is empty", position=(1, 1))
        _Walker(loader, source_map).walk(node, ())
        data = loader.construct_document(node)
    except yaml.YAMLError as exc:
        raise _yaml_error(exc, source, text) from None
    except RecursionError:
        raise DefinitionsError.at(source, "the document is nested too deeply") from None
    finally:
        if loader is not None:
            loader.dispose()
    return data, source_map
