"""Definitions files are as strict as the store: integers and booleans are never converted, and
unknown keys are errors, each reported at its position. No database needed."""

from __future__ import annotations

import textwrap

import pytest

from etl_meta.definitions import DefinitionsError, DefinitionsFile, load_definitions


def load(text: str) -> DefinitionsFile:
    return load_definitions(textwrap.dedent(text), name="pipeline.yaml")


def only_problem(text: str) -> tuple[str, str, int | None]:
    """``(field, message, line)`` of the one problem reported for ``text``."""
    with pytest.raises(DefinitionsError) as caught:
        load(text)
    problems = caught.value.problems
    assert len(problems) == 1, [str(p) for p in problems]
    return problems[0].field, problems[0].message, problems[0].line


def job(field: str, value: str) -> str:
    return f"""\
        jobs:
          - name: daily_sales
            {field}: {value}
        """


@pytest.mark.parametrize("value", ["true", '"3"', "3.0", "'2'"])
def test_a_retry_count_that_is_not_an_integer_is_refused(value: str) -> None:
    field, message, line = only_problem(job("num_of_retries", value))
    assert field == "jobs[0].num_of_retries"
    assert message == "must be an integer (booleans, strings and floats are not converted)"
    assert line == 3


@pytest.mark.parametrize("value", ["true", '"4"', "4.0"])
def test_a_concurrency_that_is_not_an_integer_is_refused(value: str) -> None:
    field, _message, _line = only_problem(job("max_concurrency", value))
    assert field == "jobs[0].max_concurrency"


@pytest.mark.parametrize("value", ["1", "0", '"true"', "yes", "on"])
def test_file_logging_that_is_not_a_boolean_is_refused(value: str) -> None:
    # `yes` and `on` are words in YAML 1.2 (the loader's schema), not booleans.
    field, message, _line = only_problem(job("file_logging", value))
    assert field == "jobs[0].file_logging"
    assert message == "must be true or false (numbers and strings are not converted)"


@pytest.mark.parametrize("value", ['"1"', "1.0", "true"])
def test_a_format_version_that_is_not_an_integer_is_refused(value: str) -> None:
    field, _message, line = only_problem(f"version: {value}\n")
    assert (field, line) == ("version", 1)


def test_an_unknown_job_key_is_refused_at_its_position() -> None:
    field, message, line = only_problem(job("retries", "3"))
    assert (field, message, line) == ("jobs[0].retries", "unknown key 'retries'", 3)


def test_valid_integers_booleans_and_case_insensitive_enums_still_load() -> None:
    definitions = load(
        """\
        version: 1
        jobs:
          - name: daily_sales
            num_of_retries: 3
            file_logging: true
            strategy_type: PARALLEL
            max_concurrency: 4
        """
    )
    job_spec = definitions.jobs[0]
    assert (job_spec.num_of_retries, job_spec.file_logging, job_spec.max_concurrency) == (
        3,
        True,
        4,
    )
    assert job_spec.strategy_type.value == "parallel"
