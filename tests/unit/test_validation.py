"""Input rules applied identically on every backend (no database needed)."""

import math
from datetime import UTC, datetime

import pytest

from etl_meta.validation import (
    check_aware,
    check_finite,
    check_identifier,
    check_json_document,
    check_text,
)


@pytest.mark.parametrize("name", ["extract", "_private", "Load2", "a" * 63])
def test_identifier_safe_names_are_accepted(name):
    assert check_identifier(name) == name


@pytest.mark.parametrize(
    "name", ["", "2fast", "has space", "dotted.name", "dash-ed", "a" * 64, "naïve", "tab\t", "ａ"]
)
def test_names_unusable_as_op_or_task_ids_are_rejected(name):
    with pytest.raises(ValueError):
        check_identifier(name)


def test_nul_bytes_and_control_characters_are_rejected_in_text():
    assert check_text("line one\nline two\ttabbed") == "line one\nline two\ttabbed"
    for bad in ("nul\x00byte", "bell\x07", "esc\x1b[31m"):
        with pytest.raises(ValueError):
            check_text(bad)


def test_naive_datetimes_are_rejected():
    assert check_aware(datetime(2026, 1, 1, tzinfo=UTC))
    with pytest.raises(ValueError, match="timezone-aware"):
        check_aware(datetime(2026, 1, 1))


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_non_finite_numbers_are_rejected(value):
    with pytest.raises(ValueError, match="finite"):
        check_finite(value)


def test_json_documents_must_be_plain_json():
    assert check_json_document({"a": [1, 2.5, None, True, {"b": "c"}]})
    with pytest.raises(ValueError, match="non-finite"):
        check_json_document({"a": {"b": [math.nan]}})
    with pytest.raises(ValueError, match="NUL"):
        check_json_document({"a": "x\x00y"})
    with pytest.raises(ValueError, match="NUL"):
        check_json_document({"k\x00": 1})
    with pytest.raises(ValueError, match="non-string key"):
        check_json_document({1: "a"})
    with pytest.raises(ValueError, match="not JSON"):
        check_json_document({"a": {1, 2}})


def test_json_size_and_depth_are_bounded():
    deep: dict = {}
    cursor = deep
    for _ in range(40):
        cursor["n"] = {}
        cursor = cursor["n"]
    with pytest.raises(ValueError, match="deeper than 32"):
        check_json_document(deep)
    with pytest.raises(ValueError, match="bytes serialized"):
        check_json_document({"blob": "x" * 2000}, max_bytes=1024)


def test_clean_text_removes_what_check_text_refuses_and_keeps_the_message():
    from etl_meta.validation import check_text, clean_text

    raw = "\x1b[31mValueError\x1b[0m: bad\x00 row \u202eevil\x1b]0;title\x07 \ud800done\x9b"
    cleaned = clean_text(raw)
    assert cleaned == "ValueError: bad row evil done"
    assert check_text(cleaned) == cleaned
    assert clean_text("x" * 50, max_chars=10) == "x" * 9 + "…"
    assert clean_text("  tab\tand\nnewline kept  ") == "tab\tand\nnewline kept"
