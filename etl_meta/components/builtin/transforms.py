"""Transforms: reshape one table, join two, or query any number of them with SQL."""

from __future__ import annotations

import ast
import re
from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any, Literal

import pydantic

from etl_meta.components.base import ComponentContext, ComponentResult, ComponentType
from etl_meta.components.builtin._common import NonEmpty, frame_inputs, single_frame
from etl_meta.components.errors import ComponentFailed
from etl_meta.components.registry import register
from etl_meta.components.sandbox import SandboxError, refusals
from etl_meta.errors import FieldProblem

if TYPE_CHECKING:
    import sqlite3

    from etl_meta.config import Settings

# What a `transform` expression may be: column arithmetic, comparisons and pandas' math
# functions. No attribute access or method calls: `amount.to_csv('/anywhere')` would write a file.
_EXPRESSION_NODES = (
    ast.Expression, ast.Name, ast.Load, ast.Constant, ast.BinOp, ast.UnaryOp, ast.BoolOp,
    ast.Compare, ast.List, ast.Tuple, ast.operator, ast.unaryop, ast.boolop, ast.cmpop,
)  # fmt: skip
_MATH_WORDS = """
    sin cos tan exp log expm1 log1p sqrt sinh cosh tanh arcsin arccos arctan arccosh arcsinh
    arctanh abs log10 floor ceil arctan2
"""
_MATH_FUNCTIONS = frozenset(_MATH_WORDS.split())
_BACKTICKED = re.compile(r"`[^`]*`")


def check_expression(expression: str, *, field: str) -> None:
    """Refuse a pandas expression that is more than column arithmetic and comparisons."""
    # Backticked column names and `@` (refused later by the empty namespaces) are pandas syntax.
    text = _BACKTICKED.sub("_column", expression).replace("@", "")
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError:
        raise SandboxError(field, "not a single expression") from None
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            name = node.func.id if isinstance(node.func, ast.Name) else None
            if name not in _MATH_FUNCTIONS or node.keywords:
                raise SandboxError(field, "only pandas' math functions may be called")
        elif not isinstance(node, _EXPRESSION_NODES):
            raise SandboxError(
                field, f"{type(node).__name__} is not allowed (no attributes, methods, indexing)"
            )


def _expressions(config: Any) -> list[tuple[str, str]]:
    """``(expression, field)`` for every pandas expression of a ``transform`` configuration."""
    found = [(e, f"configuration.expressions.{c}") for c, e in config.expressions.items()]
    if config.filter is not None:
        found.append((config.filter, "configuration.filter"))
    return found


# Authorizer actions a query over the loaded tables needs; anything else (ATTACH, DETACH, PRAGMA,
# writes, transactions) is denied, so the query cannot open or create a file.
_QUERY_ACTIONS = frozenset({"SQLITE_SELECT", "SQLITE_READ", "SQLITE_FUNCTION", "SQLITE_RECURSIVE"})


def _deny_all_but_reads(connection: sqlite3.Connection) -> None:
    import sqlite3

    allowed = {getattr(sqlite3, name) for name in _QUERY_ACTIONS}

    def authorize(action: int, arg1: str | None, arg2: str | None, *_: object) -> int:
        if action not in allowed or (
            action == sqlite3.SQLITE_FUNCTION and arg2 == "load_extension"
        ):
            return sqlite3.SQLITE_DENY
        return sqlite3.SQLITE_OK

    connection.set_authorizer(authorize)
    # A second wall should the authorizer ever let one through: no database may be attached.
    connection.setlimit(sqlite3.SQLITE_LIMIT_ATTACHED, 0)


@register
class Transform(ComponentType):
    """Derive, filter, select and rename the columns of the single input table.

    Configuration, applied in this order (each optional):

    - ``expressions``: ``{new_column: expression}`` evaluated with ``DataFrame.eval`` in the
      order given, so an expression may use a column defined before it
      (``stock_value: on_hand * unit_cost``);
    - ``filter``: a ``DataFrame.query`` condition; rows where it is false are dropped;
    - ``select``: the columns to keep, in this order;
    - ``rename``: ``{old: new}``.

    Input: exactly one DataFrame. Returns the new DataFrame; metrics ``rows_in``, ``rows_out``.
    """

    name = "transform"
    description = "Derive, filter, select and rename columns of one table."

    class Config(ComponentType.Config):
        expressions: dict[NonEmpty, NonEmpty] = {}
        filter: NonEmpty | None = None
        select: list[NonEmpty] | None = None
        rename: dict[NonEmpty, NonEmpty] = {}

    def check_definition(self, config: Any, settings: Settings) -> list[FieldProblem]:
        return refusals(*(partial(check_expression, e, field=f) for e, f in _expressions(config)))

    def run(
        self, context: ComponentContext, config: Config, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        for expression, field in _expressions(config):
            check_expression(expression, field=field)
        frame = single_frame(context, inputs)
        rows_in = len(frame)
        where = f"component {context.component!r}"
        frame = frame.copy()
        # Empty namespaces: `@name` in an expression must not reach into this module's variables.
        scope: dict[str, Any] = {"local_dict": {}, "global_dict": {}}
        for column, expression in config.expressions.items():
            try:
                frame[column] = frame.eval(expression, **scope)
            except Exception as exc:
                raise ComponentFailed(
                    f"{where}: expression for column {column!r} failed: {exc}",
                    component=context.component,
                ) from exc
        if config.filter is not None:
            try:
                frame = frame.query(config.filter, **scope)
            except Exception as exc:
                raise ComponentFailed(
                    f"{where}: filter failed: {exc}", component=context.component
                ) from exc
        if config.select is not None:
            missing = [c for c in config.select if c not in frame.columns]
            if missing:
                raise ComponentFailed(
                    f"{where}: cannot select missing column(s) {', '.join(map(repr, missing))}",
                    component=context.component,
                )
            frame = frame[config.select]
        if config.rename:
            frame = frame.rename(columns=config.rename)
        frame = frame.reset_index(drop=True)
        return ComponentResult(
            value=frame,
            metrics={"rows_in": rows_in, "rows_out": len(frame)},
            metadata={"columns": {c: str(t) for c, t in frame.dtypes.items()}},
        )


@register
class Join(ComponentType):
    """Join exactly two input tables (``pandas.merge``).

    ``left`` names the upstream component whose output is the left table; the other upstream is
    the right one. Without ``left``, the upstream whose name sorts first is the left table: the
    store keeps dependencies as a set, so declaration order is not preserved. Set ``left``
    whenever ``how`` is not symmetric.

    Configuration: ``on`` (a column or list of columns present in both, required); ``how``
    (``inner`` by default, ``left``, ``right`` or ``outer``); ``suffixes`` for clashing column
    names (default ``[_x, _y]``); ``cardinality`` (``one_to_one``, ``one_to_many``,
    ``many_to_one`` or ``many_to_many``, pandas' ``validate``) to fail when the keys are not as
    unique as expected, e.g. a duplicated customer multiplying orders.
    Returns the joined DataFrame; metrics ``rows``, ``rows_left``, ``rows_right``.
    """

    name = "join"
    description = "Join two tables on key columns."

    class Config(ComponentType.Config):
        on: NonEmpty | list[NonEmpty]
        left: NonEmpty | None = None
        how: Literal["inner", "left", "right", "outer"] = "inner"
        suffixes: tuple[str, str] = ("_x", "_y")
        cardinality: Literal["one_to_one", "one_to_many", "many_to_one", "many_to_many"] | None = (
            None
        )

    def run(
        self, context: ComponentContext, config: Config, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        frames = frame_inputs(context, inputs, count=2)
        if config.left is not None and config.left not in frames:
            raise ComponentFailed(
                f"component {context.component!r}: `left` names {config.left!r}, which is not "
                f"one of its upstream components ({', '.join(sorted(frames))})",
                component=context.component,
            )
        left_name = config.left or min(frames)
        (right_name,) = (name for name in frames if name != left_name)
        left, right = frames[left_name], frames[right_name]
        keys = [config.on] if isinstance(config.on, str) else config.on
        for side, frame in ((left_name, left), (right_name, right)):
            missing = [k for k in keys if k not in frame.columns]
            if missing:
                raise ComponentFailed(
                    f"component {context.component!r}: join key(s) "
                    f"{', '.join(map(repr, missing))} missing from the input of {side!r}",
                    component=context.component,
                )
        try:
            joined = left.merge(
                right,
                on=keys,
                how=config.how,
                suffixes=config.suffixes,
                validate=config.cardinality,
            )
        except Exception as exc:  # pandas' MergeError says which side broke `cardinality`
            raise ComponentFailed(
                f"component {context.component!r}: join of {left_name!r} with {right_name!r} "
                f"failed: {exc}",
                component=context.component,
            ) from exc
        return ComponentResult(
            value=joined,
            metrics={"rows": len(joined), "rows_left": len(left), "rows_right": len(right)},
            metadata={"left": left_name, "right": right_name},
        )


@register
class Sql(ComponentType):
    """Run a SQL query over the input tables in an in-memory SQLite database.

    Each input DataFrame becomes a table named after the upstream component that produced it;
    inputs that are ``None`` (from writers) are skipped. The database is switched to read-only
    before the query runs, so the query can only read. Configuration: ``query`` (required,
    SQLite dialect); ``params`` (bind parameters for ``:name`` or ``?`` placeholders);
    ``parse_dates`` (result columns to turn back into datetimes: SQLite stores them as text).
    Returns the result DataFrame; metric ``rows``.
    """

    name = "sql"
    description = "Query the input tables with SQL (SQLite, in memory)."

    class Config(ComponentType.Config):
        query: NonEmpty
        params: dict[str, Any] | list[Any] | None = None
        parse_dates: list[NonEmpty] = []

        @pydantic.field_validator("query")
        @classmethod
        def _not_blank(cls, value: str) -> str:
            if not value.strip():
                raise ValueError("the query is blank")
            return value

    def run(
        self, context: ComponentContext, config: Config, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        import sqlite3

        import pandas as pd

        frames = frame_inputs(context, inputs)
        connection = sqlite3.connect(":memory:")
        try:
            for table, frame in frames.items():
                frame.to_sql(table, connection, index=False)
            # The query is the user's and runs as written; query_only makes writes fail, and
            # the authorizer refuses anything but reading (ATTACH would open or create a file).
            connection.execute("PRAGMA query_only = ON")
            _deny_all_but_reads(connection)
            try:
                result = pd.read_sql_query(
                    config.query,
                    connection,
                    params=config.params,
                    parse_dates=config.parse_dates or None,
                )
            except Exception as exc:
                raise ComponentFailed(
                    f"component {context.component!r}: query failed: {exc}",
                    component=context.component,
                ) from exc
        finally:
            connection.close()
        return ComponentResult(
            value=result,
            metrics={"rows": len(result)},
            metadata={
                "tables": {name: len(frame) for name, frame in frames.items()},
                "columns": {c: str(t) for c, t in result.dtypes.items()},
            },
        )
