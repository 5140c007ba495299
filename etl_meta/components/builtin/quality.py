"""Data quality: check a table against the schema and rules of its dataclass."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import pydantic

from etl_meta.components.base import ComponentContext, ComponentResult, ComponentType, DataclassInfo
from etl_meta.components.builtin._checks import Check, run_checks
from etl_meta.components.builtin._common import NonEmpty, single_frame
from etl_meta.components.errors import ComponentFailed
from etl_meta.components.registry import register


class _Strict(pydantic.BaseModel):
    model_config = pydantic.ConfigDict(extra="forbid", hide_input_in_errors=True)


class Bounds(_Strict):
    """Inclusive bounds of one column; either may be left out. Dates may be given as text."""

    # Strict: `true` is not a bound of 1, nor "3" a number (it stays text, e.g. a date).
    min: pydantic.StrictInt | pydantic.StrictFloat | pydantic.StrictStr | None = None
    max: pydantic.StrictInt | pydantic.StrictFloat | pydantic.StrictStr | None = None


class Rules(_Strict):
    """The ``validation_rules`` of a dataclass that ``validate`` understands (others are errors)."""

    not_null: list[NonEmpty] = []
    #: Each entry is a column that must be unique on its own, or a list of columns that must be
    #: unique together. Missing values are not compared (as in SQL).
    unique: list[NonEmpty | list[NonEmpty]] = []
    ranges: dict[NonEmpty, Bounds] = {}
    allowed_values: dict[NonEmpty, list[Any]] = {}
    min_rows: pydantic.StrictInt | None = pydantic.Field(default=None, ge=0)
    max_rows: pydantic.StrictInt | None = pydantic.Field(default=None, ge=0)


class Schema(pydantic.BaseModel):
    """The parts of a ``schema_definition`` that are checked; other keys are documentation."""

    model_config = pydantic.ConfigDict(extra="ignore", hide_input_in_errors=True)

    columns: dict[NonEmpty, NonEmpty] = {}
    primary_key: list[NonEmpty] = []


def _parse(
    model: type[pydantic.BaseModel], data: Mapping[str, Any], where: str, context: ComponentContext
) -> Any:
    """``data`` validated by ``model``; problems name the dataclass field, never its values."""
    try:
        return model.model_validate(dict(data))
    except pydantic.ValidationError as exc:
        problems = "; ".join(
            f"{where}.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors(include_input=False, include_url=False)
        )
        raise ComponentFailed(
            f"component {context.component!r}: cannot use the dataclass: {problems}",
            component=context.component,
        ) from None


@register
class Validate(ComponentType):
    """Check the single input table against a dataclass; pass it on unchanged when it conforms.

    Configuration: ``dataclass`` (the dataclass to check against; defaults to the component's
    only input dataclass); ``on_failure`` (``fail``, the default, raises
    :class:`~etl_meta.components.errors.ComponentFailed`; ``warn`` logs the failures and passes
    the table on); ``allow_extra_columns`` (default true: columns the schema does not list are
    fine).

    Checked: from ``schema_definition``, that each of ``columns`` exists with a compatible dtype
    (compared by kind, so ``int32`` fits ``int64`` and microsecond datetimes fit
    ``datetime64[ns]``; an integer column fits a float one; ``string`` accepts text in ``str``,
    ``string`` or ``object`` columns) and that ``primary_key`` is unique and never null; from
    ``validation_rules``: ``not_null``, ``unique``, ``ranges`` (inclusive ``min``/``max``),
    ``allowed_values``, ``min_rows`` and ``max_rows``.

    Metrics: ``rows``, ``checks_passed``, ``checks_failed`` and, per failed check,
    ``failed.<rule>.<column>`` (``failed.<rule>`` for table-wide rules): the number of offending
    rows, or 1 when the check is not about rows (a missing column, a dtype, the row count).
    When the step fails, the metrics are recorded through ``context.record_metrics`` before
    the error is raised. Metadata: ``dataclass``, ``columns`` (``{name: dtype}``),
    ``row_count`` and ``checks``
    (``rule``, ``column``, ``passed``, ``failing_rows``, ``detail`` each). Messages and metadata
    name columns and counts only, never values from the rows.
    """

    name = "validate"
    description = "Check a table against its dataclass' schema and validation rules."

    class Config(ComponentType.Config):
        dataclass: NonEmpty | None = None
        on_failure: Literal["fail", "warn"] = "fail"
        allow_extra_columns: pydantic.StrictBool = True

    def run(
        self, context: ComponentContext, config: Config, inputs: Mapping[str, Any]
    ) -> ComponentResult:
        frame = single_frame(context, inputs)
        info = self._dataclass(context, config)
        schema = _parse(Schema, info.schema_definition, "schema_definition", context)
        rules = _parse(Rules, info.validation_rules, "validation_rules", context)

        checks = run_checks(
            frame,
            columns=schema.columns,
            primary_key=schema.primary_key,
            rules=rules,
            allow_extra_columns=config.allow_extra_columns,
        )
        failed = [c for c in checks if not c.passed]
        metrics: dict[str, float] = {
            "rows": len(frame),
            "checks_passed": len(checks) - len(failed),
            "checks_failed": len(failed),
        }
        for check in failed:
            metrics[check.metric_name] = check.failing_rows if check.failing_rows is not None else 1
        result = ComponentResult(
            value=frame,
            metrics=metrics,
            metadata={
                "dataclass": info.name,
                "columns": {c: str(t) for c, t in frame.dtypes.items()},
                "row_count": len(frame),
                "checks": [c.as_dict() for c in checks],
            },
        )
        if not failed:
            context.log.info("%d rows passed %d checks of %r", len(frame), len(checks), info.name)
            return result
        message = _failure_message(context.component, info.name, checks, failed)
        if config.on_failure == "warn":
            context.log.warning("%s (on_failure=warn: passing the table on)", message)
            return result
        # A raised error carries no ComponentResult: record the metrics now, so the store shows
        # which checks failed and how badly. (On success the integration records the result's.)
        if context.record_metrics is not None:
            context.record_metrics(metrics)
        raise ComponentFailed(
            message, component=context.component, checks=[c.as_dict() for c in failed]
        )

    @staticmethod
    def _dataclass(context: ComponentContext, config: Config) -> DataclassInfo:
        name = config.dataclass
        if name is None:
            if len(context.reads) != 1:
                raise ComponentFailed(
                    f"component {context.component!r}: set `dataclass` in the configuration; "
                    f"it defaults to the input dataclass only when there is exactly one "
                    f"(found {len(context.reads)})",
                    component=context.component,
                )
            (name,) = context.reads
        try:
            return context.dataclass(name)
        except KeyError as exc:
            raise ComponentFailed(exc.args[0], component=context.component) from None


def _failure_message(
    component: str, dataclass: str, checks: list[Check], failed: list[Check]
) -> str:
    described = "; ".join(check.describe() for check in failed)
    return (
        f"component {component!r}: {len(failed)} of {len(checks)} checks failed against "
        f"dataclass {dataclass!r}: {described}"
    )
