"""``apply`` checks every component against its contract first, positioned, writing nothing."""

from __future__ import annotations

import pytest

from etl_meta.definitions import apply_definitions, load_definitions
from etl_meta.definitions.errors import DefinitionsError

FILE = """\
version: 1
jobs:
  - name: sales
    num_of_retries: 2
    components:
      - name: extract
        component_type: read_csv
        configuration:
          retires: 3
      - name: clean
        component_type: transfrom
        depends_on: [extract]
      - name: load
        component_type: write_table
        depends_on: [clean]
        configuration:
          table: sales
          connection_url: sqlite:///out.db
          if_exist: append
"""


def test_apply_lists_every_contract_error_with_its_position_and_writes_nothing(store, tmp_path):
    path = tmp_path / "pipeline.yaml"
    path.write_text(FILE)
    before = len(store.audit.list(limit=1000))

    with pytest.raises(DefinitionsError) as caught:
        apply_definitions(store, load_definitions(path))

    where = {(p.field, p.line, p.column): p.message for p in caught.value.problems}
    assert where == {
        ("jobs[0].components[0].configuration.path", 9, 11): "required",
        ("jobs[0].components[0].configuration.retires", 9, 11): "unknown key",
        ("jobs[0].components[1].component_type", 11, 25): where[
            ("jobs[0].components[1].component_type", 11, 25)
        ],
        (
            "jobs[0].components[2].configuration.if_exist",
            19,
            11,
        ): "unknown key (did you mean 'if_exists'?)",
    }
    assert "did you mean 'transform'?" in where[("jobs[0].components[1].component_type", 11, 25)]
    assert f"{path}:19:11: jobs[0].components[2].configuration.if_exist" in str(caught.value)
    assert not store.jobs.exists("sales")
    assert len(store.audit.list(limit=1000)) == before


def test_a_dry_run_reports_the_same_errors(store):
    with pytest.raises(DefinitionsError) as caught:
        apply_definitions(store, load_definitions(FILE), dry_run=True)
    assert len(caught.value.problems) == 4


def test_a_type_declared_for_workers_is_applied_unchecked(store, settings):
    from tests.plugins import declaring_worker_types

    text = FILE.replace("transfrom", "acme.clean").replace("retires: 3", "path: in.csv")
    text = text.replace("          if_exist: append\n", "")
    with declaring_worker_types(store, "acme.*") as declaring:
        plan = apply_definitions(declaring, load_definitions(text))
    assert [(c.component_type) for c in store.components.list("sales")] == [
        "read_csv",
        "acme.clean",
        "write_table",
    ]
    assert plan.changed
