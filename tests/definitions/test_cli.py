"""``etl-meta apply``: the plan it prints, its exit codes and the store it leaves behind."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from etl_meta import MetadataStore
from etl_meta.cli import app
from tests.definitions.helpers import (
    EXAMPLE,
    EXAMPLE_SECRET,
    audit_count,
    component,
    dump,
    example,
    remove_component,
)

runner = CliRunner()


def run(*args: str | Path) -> object:
    return runner.invoke(app, [str(arg) for arg in args], catch_exceptions=False)


def apply_file(path: Path, store_url: str, *extra: str) -> object:
    return run("apply", "-f", path, "--database-url", store_url, *extra)


def lines_of(output: str) -> dict[str, str]:
    """``{name: rest of line}`` for the plan lines (kind, name, action...)."""
    found = {}
    for line in output.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[0] in ("dataclass", "job", "component"):
            found[parts[1]] = " ".join(parts[2:])
    return found


def write(tmp_path: Path, text: str, name: str = "pipeline.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_apply_creates_the_example_and_prints_one_line_per_entity(
    store: MetadataStore, store_url: str
) -> None:
    result = apply_file(EXAMPLE, store_url)

    assert result.exit_code == 0, result.output
    plan = lines_of(result.stdout)
    assert len(plan) == 20
    assert set(plan.values()) == {"created"}
    assert "daily_sales.join_customers" in plan
    assert result.stdout.splitlines()[-1] == (
        f"{EXAMPLE}: 20 created, 0 updated, 0 archived, 0 unchanged (applied)"
    )
    assert len(store.jobs.list()) == 3
    assert store.components.get("daily_sales", "join_customers").depends_on == [
        "extract_customers",
        "extract_orders",
    ]


def test_applying_the_example_twice_changes_nothing(store: MetadataStore, store_url: str) -> None:
    apply_file(EXAMPLE, store_url)
    events = audit_count(store)
    revision = store.jobs.get("daily_sales").revision

    result = apply_file(EXAMPLE, store_url)

    assert result.exit_code == 0, result.output
    assert set(lines_of(result.stdout).values()) == {"unchanged"}
    assert result.stdout.rstrip().endswith("20 unchanged (already up to date)")
    assert audit_count(store) == events
    assert store.jobs.get("daily_sales").revision == revision


def test_updates_name_the_changed_fields_and_archives_removed_steps(
    store: MetadataStore, store_url: str, tmp_path: Path
) -> None:
    apply_file(EXAMPLE, store_url)
    data = example()
    component(data, "daily_sales", "join_customers")["configuration"]["how"] = "inner"
    component(data, "daily_sales", "join_customers")["description"] = "Inner join now."
    remove_component(data, "inventory_snapshot", "save_snapshot")

    result = apply_file(write(tmp_path, dump(data)), store_url)

    assert result.exit_code == 0, result.output
    plan = lines_of(result.stdout)
    assert plan["daily_sales.join_customers"] == "updated (configuration, description)"
    assert plan["inventory_snapshot.save_snapshot"] == "archived"
    assert store.components.get("inventory_snapshot", "save_snapshot").status == "archived"


def test_dry_run_prints_the_plan_and_writes_nothing(store: MetadataStore, store_url: str) -> None:
    result = apply_file(EXAMPLE, store_url, "--dry-run")

    assert result.exit_code == 0, result.output
    assert set(lines_of(result.stdout).values()) == {"created"}
    assert result.stdout.rstrip().endswith("(dry run, nothing was written)")
    assert store.jobs.list(include_archived=True) == []
    assert store.dataclasses.list() == []
    assert audit_count(store) == 0


def test_json_format_lists_every_item(store_url: str) -> None:
    result = apply_file(EXAMPLE, store_url, "--format", "json", "--dry-run")

    assert result.exit_code == 0, result.output
    document = json.loads(result.stdout)
    assert document["source"] == str(EXAMPLE)
    assert document["dry_run"] is True
    assert document["counts"] == {"created": 20, "updated": 0, "archived": 0, "unchanged": 0}
    assert document["items"][0] == {
        "kind": "dataclass",
        "name": "orders",
        "action": "created",
        "changed_fields": [],
    }


def test_invalid_file_reports_line_and_column_and_writes_nothing(
    store: MetadataStore, store_url: str, tmp_path: Path
) -> None:
    text = EXAMPLE.read_text(encoding="utf-8").replace(
        "        depends_on: [join_customers]\n",
        "        depends_on: [join_customers]\n        retries: 3\n",
    )
    path = write(tmp_path, text)
    line = text.splitlines().index("        retries: 3") + 1

    result = apply_file(path, store_url)

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr.strip() == (
        f"{path}:{line}:9: jobs[0].components[3].retries: unknown key 'retries'"
    )
    assert store.jobs.list(include_archived=True) == []


def test_yaml_syntax_error_is_reported_with_its_position(store_url: str, tmp_path: Path) -> None:
    path = write(tmp_path, "jobs:\n  - name: j\n   components: []\n")

    result = apply_file(path, store_url)

    assert result.exit_code == 1
    assert result.stderr.startswith(f"{path}:3:")


def test_cycle_in_file_is_reported_with_position(
    store: MetadataStore, store_url: str, tmp_path: Path
) -> None:
    data = example()
    component(data, "daily_sales", "extract_orders")["depends_on"] = ["validate_sales"]
    text = dump(data)
    path = write(tmp_path, text)

    result = apply_file(path, store_url)

    assert result.exit_code == 1
    (message,) = result.stderr.strip().splitlines()
    location, field, reason = message.split(": ", 2)
    assert field == "jobs[0].components[0].depends_on[0]"
    assert reason == (
        "dependency cycle in job 'daily_sales': "
        "extract_orders -> validate_sales -> join_customers -> extract_orders"
    )
    line, column = map(int, location.rsplit(":", 2)[1:])
    assert text.splitlines()[line - 1][column - 1 :].startswith("validate_sales")
    assert store.jobs.list(include_archived=True) == []


def test_store_refusal_exits_1_with_position_and_writes_nothing(
    store: MetadataStore, store_url: str, tmp_path: Path
) -> None:
    data = example()
    component(data, "inventory_snapshot", "extract_inventory")["outputs"] = ["stock"]
    path = write(tmp_path, dump(data))

    result = apply_file(path, store_url)

    assert result.exit_code == 1
    assert "jobs[1].components[0].outputs[0]: unknown dataclass 'stock'" in result.stderr
    assert store.jobs.list(include_archived=True) == []
    assert store.dataclasses.list() == []


def test_a_missing_file_is_reported(store_url: str, tmp_path: Path) -> None:
    result = apply_file(tmp_path / "nope.yaml", store_url)

    assert result.exit_code == 1
    assert result.stderr.strip().endswith(
        "nope.yaml: cannot read the file: No such file or directory"
    )


def test_configuration_values_are_never_printed(
    store: MetadataStore, store_url: str, tmp_path: Path
) -> None:
    outputs = [apply_file(EXAMPLE, store_url, "--dry-run"), apply_file(EXAMPLE, store_url)]
    data = example()
    component(data, "daily_sales", "load_warehouse")["configuration"]["password"] = "rotated-pw"
    changed = write(tmp_path, dump(data))
    outputs += [apply_file(changed, store_url, "--format", "json"), apply_file(changed, store_url)]
    broken = write(tmp_path, dump(data).replace("load_warehouse", "2bad"), "broken.yaml")
    outputs.append(apply_file(broken, store_url))

    assert outputs[-1].exit_code == 1
    for result in outputs:
        for secret in (EXAMPLE_SECRET, "rotated-pw"):
            assert secret not in result.stdout
            assert secret not in result.stderr
    assert store.components.configuration("daily_sales", "load_warehouse")["password"] == (
        "rotated-pw"
    )


def test_apply_is_listed_in_the_help() -> None:
    result = run("apply", "--help")

    assert result.exit_code == 0
    for option in ("--file", "--dry-run", "--database-url", "--format"):
        assert option in result.stdout
