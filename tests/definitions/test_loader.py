"""Loading definitions files: format, positions and safety. No database needed."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from etl_meta.definitions import (
    MAX_ALIAS_NODES,
    MAX_FILE_BYTES,
    DefinitionsError,
    DefinitionsFile,
    load_definitions,
)
from etl_meta.errors import ValidationError
from etl_meta.models import ComponentStatus, StrategyType
from tests.definitions.helpers import EXAMPLE, EXAMPLE_SECRET


def load(text: str) -> DefinitionsFile:
    return load_definitions(textwrap.dedent(text), name="pipeline.yaml")


def problems(text: str) -> list[str]:
    """Every problem reported for ``text``, formatted as the CLI prints them."""
    with pytest.raises(DefinitionsError) as caught:
        load(text)
    return [str(problem) for problem in caught.value.problems]


def only_problem(text: str) -> str:
    found = problems(text)
    assert len(found) == 1, found
    return found[0]


MINIMAL = """\
    jobs:
      - name: daily_sales
        components:
          - name: extract
            component_type: read_csv
            configuration: {path: data/orders.csv}
          - name: load
            component_type: write_table
            depends_on: [extract]
"""


# -- the format ---------------------------------------------------------------------------------


def test_the_example_pipeline_is_a_valid_definitions_file() -> None:
    definitions = load_definitions(EXAMPLE)

    assert [j.name for j in definitions.jobs] == [
        "daily_sales",
        "inventory_snapshot",
        "customer_quality_report",
    ]
    assert {d.name for d in definitions.dataclasses} == {
        "orders",
        "customers",
        "sales",
        "inventory",
    }
    assert sum(len(j.components) for j in definitions.jobs) == 13
    daily = definitions.jobs[0]
    join = next(c for c in daily.components if c.name == "join_customers")
    assert join.depends_on == ["extract_orders", "extract_customers"]  # the fan-in
    assert join.configuration == {"on": "customer_id", "how": "left", "left": "extract_orders"}
    writer = next(c for c in daily.components if c.name == "load_warehouse")
    assert writer.configuration["password"] == EXAMPLE_SECRET
    orders = definitions.dataclasses[0]
    assert orders.schema_definition["columns"]["order_date"] == "datetime64[ns]"
    assert orders.validation_rules["ranges"] == {
        "quantity": {"min": 1},
        "unit_price": {"min": 0},
        "amount": {"min": 0},
    }


def test_example_data_files_exist_for_every_read_path() -> None:
    definitions = load_definitions(EXAMPLE)
    reads = [
        c.configuration["path"]
        for j in definitions.jobs
        for c in j.components
        if c.component_type == "read_csv"
    ]
    assert reads
    for relative in reads:
        assert (EXAMPLE.parent / relative).is_file(), relative


def test_fields_left_out_take_the_stores_defaults() -> None:
    definitions = load(MINIMAL)

    assert definitions.version == 1
    assert definitions.dataclasses == []
    job = definitions.jobs[0]
    assert (job.num_of_retries, job.file_logging, job.strategy_type) == (0, False, "sequential")
    assert job.tags == {}
    assert job.components[0].status is ComponentStatus.ACTIVE
    assert job.components[1].configuration == {}


def test_definitions_load_from_a_path_a_path_string_or_text(tmp_path: Path) -> None:
    file = tmp_path / "pipeline.yaml"
    file.write_text(textwrap.dedent(MINIMAL), encoding="utf-8")

    from_path = load_definitions(file)
    from_string = load_definitions(str(file))
    from_text = load_definitions(textwrap.dedent(MINIMAL))

    assert from_path.model_dump() == from_string.model_dump() == from_text.model_dump()
    assert from_path.source_map.source == str(file)
    assert from_text.source_map.source == "<definitions>"


def test_status_and_strategy_are_case_insensitive() -> None:
    definitions = load(
        """\
        jobs:
          - name: j
            strategy_type: PARALLEL
            components:
              - {name: a, component_type: x, status: Disabled}
        """
    )
    assert definitions.jobs[0].strategy_type is StrategyType.PARALLEL
    assert definitions.jobs[0].components[0].status is ComponentStatus.DISABLED


def test_yaml_1_1_surprises_stay_strings() -> None:
    # `on:` is a join key, not the boolean True; dates are JSON strings; yes/no are words.
    definitions = load(
        """\
        jobs:
          - name: j
            components:
              - name: a
                component_type: join
                configuration: {on: id, since: 2026-01-01, confirm: yes, strict: true}
        """
    )
    assert definitions.jobs[0].components[0].configuration == {
        "on": "id",
        "since": "2026-01-01",
        "confirm": "yes",
        "strict": True,
    }


def test_empty_lists_may_be_left_blank() -> None:
    definitions = load(
        """\
        dataclasses:
        jobs:
          - name: j
            tags:
            components:
        """
    )
    assert definitions.dataclasses == []
    assert definitions.jobs[0].components == []
    assert definitions.jobs[0].tags == {}


def test_only_version_1_is_accepted() -> None:
    assert load("version: 1\n").version == 1
    assert only_problem("version: 2\n") == (
        "pipeline.yaml:1:10: version: unsupported version 2; this etl-meta reads version 1"
    )


# -- positions ----------------------------------------------------------------------------------


def test_yaml_syntax_error_reports_line_and_column() -> None:
    problem = only_problem(
        """\
        jobs:
          - name: j
            components: [
              {name: a, component_type: x}
        """
    )
    assert problem.startswith("pipeline.yaml:5:1: ")
    assert "expected ',' or ']'" in problem


def test_unknown_key_is_reported_at_the_key() -> None:
    problem = only_problem(MINIMAL + "            retries: 3\n")
    assert problem == "pipeline.yaml:10:9: jobs[0].components[1].retries: unknown key 'retries'"


def test_wrong_value_is_reported_at_the_value() -> None:
    problem = only_problem(MINIMAL.replace("name: extract", "name: 2extract"))
    assert problem.startswith("pipeline.yaml:4:15: jobs[0].components[0].name: must start with")


def test_missing_field_is_reported_at_its_mapping() -> None:
    problem = only_problem(MINIMAL.replace("            component_type: write_table\n", ""))
    assert problem == "pipeline.yaml:7:9: jobs[0].components[1].component_type: Field required"


def test_every_schema_problem_is_reported_in_file_order() -> None:
    found = problems(
        """\
        jobs:
          - name: j
            num_of_retries: -1
            strategy_type: sideways
            tags: {"bad key": x}
        """
    )
    assert [p.split(": ", 2)[:2] for p in found] == [
        ["pipeline.yaml:3:21", "jobs[0].num_of_retries"],
        ["pipeline.yaml:4:20", "jobs[0].strategy_type"],
        ["pipeline.yaml:5:12", "jobs[0].tags.bad key"],
    ]


def test_a_definitions_error_is_a_validation_error() -> None:
    with pytest.raises(ValidationError) as caught:
        load("version: 2\n")
    assert caught.value.entity == "definitions"
    assert caught.value.field == "version"


# -- names and dependencies ---------------------------------------------------------------------


def test_duplicate_names_are_rejected() -> None:
    problem = only_problem(
        MINIMAL.replace("- name: load", "- name: extract").replace("[extract]", "[]")
    )
    assert problem == (
        "pipeline.yaml:7:15: jobs[0].components[1].name: component 'extract' is declared twice "
        "(first as jobs[0].components[0])"
    )


def test_unknown_dependency_is_reported_with_position() -> None:
    problem = only_problem(MINIMAL.replace("[extract]", "[extract, nope]"))
    assert problem.startswith(
        "pipeline.yaml:9:31: jobs[0].components[1].depends_on[1]: no component 'nope' in job "
        "'daily_sales'"
    )


def test_cycle_in_file_is_reported_with_position() -> None:
    problem = only_problem(
        MINIMAL.replace("configuration: {path: data/orders.csv}", "depends_on: [load]")
    )
    assert problem == (
        "pipeline.yaml:6:22: jobs[0].components[0].depends_on[0]: dependency cycle in job "
        "'daily_sales': extract -> load -> extract"
    )


def test_depending_on_a_component_declared_archived_is_rejected() -> None:
    problem = only_problem(
        MINIMAL.replace("configuration: {path: data/orders.csv}", "status: archived")
    )
    assert problem.startswith(
        "pipeline.yaml:9:22: jobs[0].components[1].depends_on[0]: 'extract' is archived"
    )


# -- safety -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "jobs: []\njobs: []\n",
            "pipeline.yaml:2:1: jobs: duplicate key 'jobs' (first at line 1)",
        ),
        (
            MINIMAL + "            component_type: write_csv\n",
            "pipeline.yaml:10:9: jobs[0].components[1].component_type: duplicate key "
            "'component_type' (first at line 8)",
        ),
        (
            MINIMAL.replace("{path: data/orders.csv}", "{path: a.csv, path: b.csv}"),
            "pipeline.yaml:6:38: jobs[0].components[0].configuration.path: duplicate key 'path' "
            "(first at line 6)",
        ),
    ],
    ids=["top-level", "component field", "inside configuration"],
)
def test_duplicate_keys_are_rejected(text: str, expected: str) -> None:
    assert only_problem(text) == expected


def _alias_bomb(levels: int) -> str:
    lines = ['a0: &a0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    for level in range(1, levels):
        refs = ", ".join([f"*a{level - 1}"] * 10)
        lines.append(f"a{level}: &a{level} [{refs}]")
    return "\n".join(lines) + "\n"


def test_alias_bomb_is_rejected() -> None:
    # Nine levels of ten-fold aliases: a billion strings if anything expanded it.
    problem = only_problem(_alias_bomb(9))
    assert f"aliases expand to more than {MAX_ALIAS_NODES} nodes" in problem
    # Reported at the sequence whose aliases crossed the limit, not at the anchor they name.
    assert problem.startswith("pipeline.yaml:4:5: a3[7]: ")


def test_recursive_alias_is_rejected() -> None:
    problem = only_problem("jobs: &loop [*loop]\n")
    assert problem == (
        "pipeline.yaml:1:7: jobs[0]: an alias refers to a node that contains it (recursion)"
    )


def test_modest_aliases_and_merge_keys_are_allowed() -> None:
    definitions = load(
        """\
        jobs:
          - name: j
            tags: &tags {team: finance}
            components:
              - &reader
                name: a
                component_type: read_csv
                configuration: {path: a.csv, sep: ";"}
              - <<: *reader
                name: b
                configuration: {path: b.csv}
          - name: k
            tags: *tags
        """
    )
    _, b = definitions.jobs[0].components
    assert b.component_type == "read_csv"
    assert b.configuration == {"path": "b.csv"}
    assert definitions.jobs[1].tags == {"team": "finance"}
    # Merged keys are positioned where they were written.
    assert definitions.source_map.locate(("jobs", 0, "components", 1, "component_type")) == (7, 25)


def test_files_over_5_mib_are_rejected(tmp_path: Path) -> None:
    big = "# " + "x" * MAX_FILE_BYTES + "\n"
    file = tmp_path / "big.yaml"
    file.write_text(big, encoding="utf-8")

    with pytest.raises(DefinitionsError, match="5 MiB"):
        load_definitions(file)
    with pytest.raises(DefinitionsError, match="5 MiB"):
        load_definitions(big)


def test_python_tags_are_refused() -> None:
    problem = only_problem("jobs: !!python/object/apply:os.system [echo hacked]\n")
    assert problem.startswith("pipeline.yaml:1:7: could not determine a constructor")


def test_only_one_document_is_read() -> None:
    assert "expected a single document" in only_problem("jobs: []\n---\njobs: []\n")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", "pipeline.yaml:1:1: the file is empty"),
        ("- a\n", "pipeline.yaml:1:1: the file must be a mapping with 'dataclasses' and/or 'jobs'"),
    ],
)
def test_a_file_must_be_a_mapping(text: str, expected: str) -> None:
    assert only_problem(text) == expected


def test_deep_nesting_is_refused() -> None:
    assert "nested" in only_problem("jobs: " + "[" * 5000 + "]" * 5000 + "\n")


def test_unreadable_and_non_utf8_files_are_reported(tmp_path: Path) -> None:
    with pytest.raises(DefinitionsError) as missing:
        load_definitions(tmp_path / "missing.yaml")
    assert str(missing.value.problems[0]).endswith(
        "missing.yaml: cannot read the file: No such file or directory"
    )

    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes(b"jobs: []\n# caf\xe9\n")
    with pytest.raises(DefinitionsError) as not_utf8:
        load_definitions(latin1)
    assert str(not_utf8.value.problems[0]) == f"{latin1}:2:6: the file is not UTF-8"


def test_errors_never_quote_configuration_values() -> None:
    secret = "hunter2-secret"
    broken = [
        # A syntax error on the very line holding the secret.
        f"jobs:\n  - {{name: j, components: [{{name: a, configuration: {{password: {secret}\n",
        # A value of the wrong type.
        f"jobs:\n  - name: j\n    components:\n      - {{name: a, component_type: '{secret}!'}}\n",
        # A value that is not JSON.
        "jobs:\n  - name: j\n    components:\n      - name: a\n        component_type: x\n"
        f"        configuration: {{password: !!binary {secret}=}}\n",
    ]
    for text in broken:
        with pytest.raises(DefinitionsError) as caught:
            load(text)
        assert secret not in str(caught.value)
        assert secret not in repr(caught.value.problems)


def test_spec_repr_masks_configuration() -> None:
    definitions = load_definitions(EXAMPLE)
    assert EXAMPLE_SECRET not in repr(definitions)
    assert EXAMPLE_SECRET not in str(definitions)


def test_non_printable_characters_are_reported_with_position() -> None:
    assert only_problem("jobs:\n  - name: j\x07\n") == (
        "pipeline.yaml:2:12: the file holds a non-printable character"
    )


def test_invalid_mapping_keys_say_the_key_is_at_fault() -> None:
    problem = only_problem("jobs:\n  - {name: j, tags: {'Bad Key': x}}\n")
    assert problem.startswith("pipeline.yaml:2:22: jobs[0].tags.Bad Key: invalid key: ")
