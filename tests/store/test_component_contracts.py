"""The store keeps only components whose type accepts their configuration (both backends)."""

from __future__ import annotations

from typing import Any

import pytest

from etl_meta import MetadataStore
from etl_meta.errors import ValidationError
from tests.plugins import STEP, declaring_worker_types

#: A minimal configuration each built-in type accepts.
VALID: dict[str, dict[str, Any]] = {
    "read_csv": {"path": "in.csv"},
    "read_parquet": {"path": "in.parquet"},
    "transform": {"filter": "amount > 0"},
    "join": {"on": "id"},
    "sql": {"query": "SELECT 1"},
    "validate": {"on_failure": "warn"},
    "write_csv": {"path": "out.csv"},
    "write_parquet": {"path": "out.parquet"},
    "write_table": {"table": "t", "connection_url": "sqlite:///out.db"},
    "python": {"callable": "functions.py:add_totals"},
}


def _nothing_written(store: MetadataStore, events_before: int) -> None:
    assert len(store.audit.list(limit=1000)) == events_before


def test_every_builtin_type_is_stored_with_a_valid_configuration(store, factory):
    job = factory.job(components=[])
    for index, (component_type, configuration) in enumerate(sorted(VALID.items())):
        created = store.components.create(
            job.name,
            {"name": f"c{index}", "component_type": component_type, "configuration": configuration},
        )
        assert created.component_type == component_type


@pytest.mark.parametrize(
    ("component_type", "configuration", "problems"),
    [
        (
            "read_csv",
            {"pth": "in.csv"},
            {
                "configuration.path": "required",
                "configuration.pth": "unknown key (did you mean 'path'?)",
            },
        ),
        ("read_csv", {"path": "in.csv", "seperator": ";"}, {"configuration.seperator": "unknown"}),
        ("join", {}, {"configuration.on": "required"}),
        ("write_table", {"table": "t"}, {"configuration.connection_url": "required"}),
        (
            "write_table",
            {"table": "t", "connection_url": "sqlite:///o.db", "if_exist": "append"},
            {"configuration.if_exist": "did you mean 'if_exists'?"},
        ),
    ],
)
def test_a_configuration_that_breaks_its_contract_is_refused_with_every_problem(
    store, factory, component_type, configuration, problems
):
    job = factory.job(components=[])
    before = len(store.audit.list(limit=1000))
    with pytest.raises(ValidationError) as caught:
        store.components.create(
            job.name,
            {"name": "c", "component_type": component_type, "configuration": configuration},
        )
    found = {problem.field: problem.message for problem in caught.value.problems}
    assert found.keys() == problems.keys()
    for field, expected in problems.items():
        assert expected in found[field]
    assert store.components.list(job.name, include_archived=True) == []
    _nothing_written(store, before)


def test_an_unknown_type_is_refused_with_a_hint_unless_declared_for_workers(store, factory):
    job = factory.job(components=[])
    with pytest.raises(ValidationError) as caught:
        store.components.create(job.name, {"name": "c", "component_type": "read_cvs"})
    assert caught.value.field == "component_type"
    assert "did you mean 'read_csv'?" in str(caught.value)
    assert "ETL_META_WORKER_COMPONENT_TYPES" in str(caught.value)

    with declaring_worker_types(store, "acme.*", "lonely") as declaring:
        for name, component_type in [("a", "acme.loader"), ("b", "lonely")]:
            stored = declaring.components.create(
                job.name,
                {"name": name, "component_type": component_type, "configuration": {"any": 1}},
            )
            assert stored.component_type == component_type
        with pytest.raises(ValidationError):  # a prefix pattern covers only its family
            declaring.components.create(job.name, {"name": "c", "component_type": "acmex"})
        # A declared type never hides the contract of a type this process does know.
        with pytest.raises(ValidationError, match=r"configuration\.path"):
            declaring.components.create(job.name, {"name": "d", "component_type": "read_csv"})


def test_a_job_with_components_lists_every_problem_and_writes_nothing(store):
    before = len(store.audit.list(limit=1000))
    with pytest.raises(ValidationError) as caught:
        store.jobs.create(
            {
                "name": "j",
                "components": [
                    {"name": "a", "component_type": "read_csv", "configuration": VALID["read_csv"]},
                    {"name": "b", "component_type": "read_csv"},
                    {"name": "c", "component_type": "no_such_type"},
                ],
            }
        )
    assert [p.field for p in caught.value.problems] == [
        "components.1.configuration.path",
        "components.2.component_type",
    ]
    assert not store.jobs.exists("j")
    _nothing_written(store, before)


def test_an_update_is_checked_against_the_type_it_leaves_the_component_with(store, factory):
    job = factory.job()  # extract: read_csv {path: in.csv}
    with pytest.raises(ValidationError, match=r"configuration\.path: required"):
        store.components.update(job.name, "extract", {"configuration": {"sep": ";"}})
    # A new type must accept the stored configuration (its plaintext, checked inside the store).
    with pytest.raises(ValidationError, match=r"configuration\.path: unknown key"):
        store.components.update(job.name, "extract", {"component_type": "join"})
    unchanged = store.components.get(job.name, "extract")
    assert (unchanged.component_type, unchanged.config_version) == ("read_csv", 1)

    changed = store.components.update(
        job.name, "extract", {"component_type": "read_parquet", "configuration": {"path": "p"}}
    )
    assert (changed.component_type, changed.config_version) == ("read_parquet", 2)


def test_an_open_contract_stores_any_keys(store, factory):
    # A plugin may declare extra keys allowed; the store follows the contract, not a list.
    job = factory.job(components=[])
    stored = store.components.create(
        job.name, {"name": "c", "component_type": STEP, "configuration": {"anything": [1, 2]}}
    )
    assert stored.configuration == {"anything": [1, 2]}


def test_a_run_requests_overrides_are_checked_against_the_contract(store, factory):
    job = factory.job()  # extract: read_csv; load: write_table with a connection URL
    before = len(store.audit.list(limit=1000))
    with pytest.raises(ValidationError) as caught:
        store.run_requests.create(
            {
                "job": job.name,
                "run_config": {"extract": {"pth": "other.csv"}, "load": {"chunksize": "9"}},
            }
        )
    found = {problem.field: problem.message for problem in caught.value.problems}
    assert found["run_config.extract.pth"] == "unknown key (did you mean 'path'?)"
    assert set(found) == {"run_config.extract.pth", "run_config.load.chunksize"}
    assert store.run_requests.list() == []
    _nothing_written(store, before)

    accepted = store.run_requests.create(
        {"job": job.name, "run_config": {"extract": {"path": "other.csv", "sep": ";"}}}
    )
    assert store.run_requests.list()[0].id == accepted.id
