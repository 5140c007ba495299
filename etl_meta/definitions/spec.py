"""The definitions file format: dataclasses and jobs with their components.

Field types and limits are the store's own (``Identifier``, ``JSONObject``, case-insensitive
enums, …), so a file that validates here is refused by the store only for reasons that need the
database (an unknown dataclass, a settings-specific size limit). Unknown keys are errors at every
level. Cross-references inside a job (duplicate names, ``depends_on`` targets, cycles) are checked
here too, before anything touches the store.
"""

from __future__ import annotations

from graphlib import CycleError, TopologicalSorter
from typing import Annotated, Any, ClassVar

import pydantic
from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    StrictBool,
    StrictInt,
    StringConstraints,
)

from etl_meta.definitions.errors import TEXT_SOURCE, DefinitionProblem, DefinitionsError, DocPath
from etl_meta.definitions.errors import format_path as _format
from etl_meta.definitions.loader import SourceMap
from etl_meta.masking import mask_value
from etl_meta.models.component import ComponentStatusField
from etl_meta.models.enums import ComponentStatus, StrategyType
from etl_meta.models.job import MAX_RETRIES, StrategyTypeField
from etl_meta.models.retention import (
    HoldReason,
    RetentionDays,
    RollupDays,
    check_hold_reason,
)
from etl_meta.validation import (
    STRICT_TYPE_MESSAGES,
    TAG_KEY_RE,
    Identifier,
    JSONObject,
    TypeName,
    check_text,
)

#: The only file format version this code reads.
FORMAT_VERSION = 1

TagKey = Annotated[str, StringConstraints(max_length=63, pattern=TAG_KEY_RE.pattern)]
TagValue = Annotated[str, StringConstraints(max_length=255), AfterValidator(check_text)]
# Length before the text check, so pydantic reports "characters" rather than generic "items".
Description = Annotated[str, StringConstraints(max_length=4000), AfterValidator(check_text)] | None


class _Spec(BaseModel):
    # Pydantic quotes offending input in its messages by default; input may hold secrets.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    #: Fields whose secret values ``repr`` masks (as the store's models do).
    _masked_fields: ClassVar[tuple[str, ...]] = ()

    def __repr_args__(self) -> Any:
        for name, value in super().__repr_args__():
            if name in self._masked_fields:
                value = mask_value(value, component_type=getattr(self, "component_type", None))
            yield name, value

    @pydantic.field_validator("*", mode="before")
    @classmethod
    def _empty_is_default(cls, value: Any, info: pydantic.ValidationInfo) -> Any:
        # `components:` with nothing after it is YAML null; mean "none" rather than an error.
        if value is None and info.field_name in _EMPTY_MEANS_NONE:
            factory = cls.model_fields[info.field_name].default_factory
            return factory() if factory is not None else value  # type: ignore[call-arg]
        return value


_EMPTY_MEANS_NONE = frozenset(
    {"dataclasses", "jobs", "components", "depends_on", "inputs", "outputs", "tags"}
)


class DataclassSpec(_Spec):
    """A dataclass: a named schema with validation rules."""

    name: Identifier
    dataclass_type: TypeName = Field(default="table", max_length=100)
    schema_definition: JSONObject = Field(default_factory=dict)
    validation_rules: JSONObject = Field(default_factory=dict)
    description: Description = None


class ComponentSpec(_Spec):
    """One step of a job. ``depends_on`` names steps of the same job declared in the file."""

    _masked_fields: ClassVar[tuple[str, ...]] = ("configuration",)

    name: Identifier
    component_type: TypeName = Field(max_length=100)
    configuration: JSONObject = Field(default_factory=dict)
    status: ComponentStatusField = ComponentStatus.ACTIVE
    description: Description = None
    depends_on: list[Identifier] = Field(default_factory=list)
    inputs: list[Identifier] = Field(default_factory=list)
    outputs: list[Identifier] = Field(default_factory=list)
    #: The component's previous name: apply renames the stored component in place (same id and
    #: history) when ``renamed_from`` exists and ``name`` does not; otherwise it is ignored.
    renamed_from: Identifier | None = None


class JobSpec(_Spec):
    """A job, its tags and the complete list of its components."""

    name: Identifier
    # Strict, as in the store: `num_of_retries: "3"` or `file_logging: yes` (a string in YAML
    # 1.2) is a mistake to report, not a value to guess.
    num_of_retries: StrictInt = Field(default=0, ge=0, le=MAX_RETRIES)
    file_logging: StrictBool = False
    strategy_type: StrategyTypeField = StrategyType.SEQUENTIAL
    description: Description = None
    max_concurrency: StrictInt | None = Field(default=None, ge=1, le=64)
    tags: dict[TagKey, TagValue] = Field(default_factory=dict)
    components: list[ComponentSpec] = Field(default_factory=list)


class RetentionDefaultSpec(_Spec):
    """The policy of every job without an override (``docs/retention.md``)."""

    raw_days: RetentionDays
    rollup_days: RollupDays
    archive: StrictBool = False


class RetentionJobSpec(_Spec):
    """One job's override: an unset field inherits the default; a legal hold needs a reason."""

    raw_days: RetentionDays | None = None
    rollup_days: RollupDays | None = None
    archive: StrictBool | None = None
    legal_hold: StrictBool = False
    hold_reason: HoldReason | None = Field(default=None, validate_default=True)

    _reason_with_hold = pydantic.field_validator("hold_reason")(check_hold_reason)


class RetentionSpec(_Spec):
    """The ``retention:`` section: when present, the complete set of stored policies."""

    default: RetentionDefaultSpec | None = None
    jobs: dict[Identifier, RetentionJobSpec] = Field(default_factory=dict)


class DefinitionsFile(_Spec):
    """A whole definitions file. ``source_map`` says where each part came from (may be empty)."""

    version: StrictInt = FORMAT_VERSION
    dataclasses: list[DataclassSpec] = Field(default_factory=list)
    jobs: list[JobSpec] = Field(default_factory=list)
    #: ``None`` (no ``retention:`` key) leaves the stored policies alone.
    retention: RetentionSpec | None = Field(default=None)

    _source_map: SourceMap = PrivateAttr(default_factory=lambda: SourceMap(TEXT_SOURCE))

    @pydantic.field_validator("retention", mode="before")
    @classmethod
    def _empty_retention(cls, value: Any) -> Any:
        # `retention:` with nothing under it is a section with no policies, as `components:`
        # with nothing under it is an empty list; only a file without the key leaves them alone.
        return {} if value is None else value

    @pydantic.field_validator("version")
    @classmethod
    def _supported_version(cls, value: int) -> int:
        if value != FORMAT_VERSION:
            raise ValueError(f"unsupported version {value}; this etl-meta reads version 1")
        return value

    @property
    def source_map(self) -> SourceMap:
        """Positions of the file's values (empty for definitions built in code)."""
        return self._source_map


def _pydantic_problems(
    error: pydantic.ValidationError, source_map: SourceMap
) -> list[DefinitionProblem]:
    problems = []
    for item in error.errors(include_input=False, include_url=False, include_context=False):
        loc = tuple(item["loc"])
        about_key = item["type"] in ("extra_forbidden",) or loc[-1:] == ("[key]",)
        path = loc[:-1] if loc[-1:] == ("[key]",) else loc
        message = STRICT_TYPE_MESSAGES.get(item["type"], item["msg"].removeprefix("Value error, "))
        if item["type"] == "extra_forbidden":
            message = f"unknown key {path[-1]!r}"
        elif about_key:
            message = f"invalid key: {message}"
        position = source_map.locate(path, key=about_key)
        line, column = position if position else (None, None)
        problems.append(DefinitionProblem(_format(path), message, source_map.source, line, column))
    return problems


def _problem(source_map: SourceMap, path: DocPath, message: str) -> DefinitionProblem:
    position = source_map.locate(path)
    line, column = position if position else (None, None)
    return DefinitionProblem(_format(path), message, source_map.source, line, column)


def _duplicates(
    source_map: SourceMap, prefix: DocPath, names: list[str], what: str
) -> list[DefinitionProblem]:
    first: dict[str, int] = {}
    problems = []
    for index, name in enumerate(names):
        if name in first:
            earlier = _format((*prefix, first[name]))
            message = f"{what} {name!r} is declared twice (first as {earlier})"
            problems.append(_problem(source_map, (*prefix, index, "name"), message))
        else:
            first[name] = index
    return problems


def _check_job(source_map: SourceMap, index: int, job: JobSpec) -> list[DefinitionProblem]:
    prefix: DocPath = ("jobs", index, "components")
    problems = _duplicates(source_map, prefix, [c.name for c in job.components], "component")
    declared = {c.name: c for c in job.components}
    graph: dict[str, set[str]] = {}
    for c_index, component in enumerate(job.components):
        graph.setdefault(component.name, set())
        for d_index, upstream in enumerate(component.depends_on):
            path = (*prefix, c_index, "depends_on", d_index)
            target = declared.get(upstream)
            if upstream == component.name:
                problems.append(_problem(source_map, path, "a component cannot depend on itself"))
            elif target is None:
                problems.append(
                    _problem(
                        source_map,
                        path,
                        f"no component {upstream!r} in job {job.name!r} "
                        "(dependencies stay within one job and must be declared in the file)",
                    )
                )
            elif target.status == ComponentStatus.ARCHIVED:
                problems.append(
                    _problem(
                        source_map, path, f"{upstream!r} is archived; nothing may depend on it"
                    )
                )
            else:
                graph[component.name].add(upstream)
    try:
        TopologicalSorter(graph).prepare()
    except CycleError as exc:
        # Each node in exc.args[1] is a dependency of the next: reversed, each depends on the next.
        cycle = list(reversed(exc.args[1]))
        positions = {c.name: i for i, c in enumerate(job.components)}
        c_index = positions[cycle[0]]
        d_index = job.components[c_index].depends_on.index(cycle[1])
        problems.append(
            _problem(
                source_map,
                (*prefix, c_index, "depends_on", d_index),
                f"dependency cycle in job {job.name!r}: {' -> '.join(cycle)}",
            )
        )
    return problems


def _check_renames(source_map: SourceMap, index: int, job: JobSpec) -> list[DefinitionProblem]:
    # A name still declared cannot also be the old name of another component: apply would not
    # know which of the two the stored component (and its history) belongs to.
    prefix: DocPath = ("jobs", index, "components")
    declared = {c.name for c in job.components}
    first: dict[str, int] = {}
    problems = []
    for c_index, component in enumerate(job.components):
        old = component.renamed_from
        if old is None:
            continue
        path = (*prefix, c_index, "renamed_from")
        if old == component.name:
            message = "a component cannot be renamed from its own name"
        elif old in declared:
            message = (
                f"{old!r} is still declared in job {job.name!r}; a component renamed from it "
                "cannot also be declared"
            )
        elif old in first:
            earlier = _format((*prefix, first[old]))
            message = f"two components are renamed from {old!r} (first {earlier})"
        else:
            first[old] = c_index
            continue
        problems.append(_problem(source_map, path, message))
    return problems


def check_references(definitions: DefinitionsFile) -> list[DefinitionProblem]:
    """Problems with names inside the file: duplicates, unknown or archived upstreams, cycles,
    and ``renamed_from`` naming a declared component or claimed by two components.

    Dataclass names in ``inputs``/``outputs`` are not checked here: they may name dataclasses
    that already exist in the store.
    """
    source_map = definitions.source_map
    problems = _duplicates(
        source_map, ("dataclasses",), [d.name for d in definitions.dataclasses], "dataclass"
    )
    problems += _duplicates(source_map, ("jobs",), [j.name for j in definitions.jobs], "job")
    for index, job in enumerate(definitions.jobs):
        problems += _check_job(source_map, index, job)
        problems += _check_renames(source_map, index, job)
    return problems


def validate_definitions(data: Any, source_map: SourceMap | None = None) -> DefinitionsFile:
    """Validate loaded YAML (or any plain data) as a :class:`DefinitionsFile`.

    Raises:
        DefinitionsError: every problem found, each with its position when ``source_map`` has it.
    """
    source_map = source_map or SourceMap(TEXT_SOURCE)
    if not isinstance(data, dict):
        raise source_map.error("the file must be a mapping with 'dataclasses' and/or 'jobs'")
    try:
        definitions = DefinitionsFile.model_validate(data)
    except pydantic.ValidationError as exc:
        problems = _pydantic_problems(exc, source_map)
        raise DefinitionsError(problems, source=source_map.source) from None
    definitions._source_map = source_map
    problems = check_references(definitions)
    if problems:
        raise DefinitionsError(problems, source=source_map.source)
    return definitions
