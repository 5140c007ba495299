"""How a component's configuration is resolved from the store and the orchestrator."""

import pytest

from etl_meta.components.overrides import resolve_configuration


def test_overrides_merge_in_depth_and_masked_values_mean_the_stored_one():
    stored = {"path": "a.csv", "target": {"host": "db", "password": "pw"}, "password": "top"}
    overrides = {"path": "b.csv", "target": {"password": "***", "port": 5433}, "extra": 1}
    assert resolve_configuration(stored, overrides) == {
        "path": "b.csv",
        "target": {"host": "db", "password": "pw", "port": 5433},
        "password": "top",
        "extra": 1,
    }


def test_a_masked_value_with_nothing_stored_is_dropped_not_passed_literally():
    assert resolve_configuration({"n": 1}, {"token": "***", "n": 2}) == {"n": 2}


@pytest.mark.extra("dagster")
def test_dagster_error_text_names_the_class_once():
    from types import SimpleNamespace

    from dagster_defs.recording import _error_text

    qualified = SimpleNamespace(
        cls_name="ComponentFailed",
        message="etl_meta.components.errors.ComponentFailed: 2 check(s) failed\n",
        cause=None,
    )
    plain = SimpleNamespace(cls_name="KeyError", message="KeyError: 'x'\n", cause=None)
    bare = SimpleNamespace(cls_name="Boom", message="went wrong", cause=None)
    wrapped = SimpleNamespace(
        cls_name="RetryRequestedFromPolicy", message="retry requested", cause=plain
    )
    assert _error_text(qualified) == "ComponentFailed: 2 check(s) failed"
    assert _error_text(plain) == "KeyError: 'x'"
    assert _error_text(bare) == "Boom: went wrong"
    assert _error_text(wrapped) == "KeyError: 'x'"
