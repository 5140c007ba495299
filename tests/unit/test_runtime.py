"""How a component's configuration is resolved from the store and the orchestrator."""

from etl_meta.components.runtime import resolve_configuration


def test_overrides_merge_in_depth_and_masked_values_mean_the_stored_one():
    stored = {"path": "a.csv", "conn": {"host": "db", "password": "pw"}, "password": "top"}
    overrides = {"path": "b.csv", "conn": {"password": "***", "port": 5433}, "extra": 1}
    assert resolve_configuration(stored, overrides) == {
        "path": "b.csv",
        "conn": {"host": "db", "password": "pw", "port": 5433},
        "password": "top",
        "extra": 1,
    }


def test_a_masked_value_with_nothing_stored_is_dropped_not_passed_literally():
    assert resolve_configuration({"n": 1}, {"token": "***", "n": 2}) == {"n": 2}
