"""transform, join and sql over small real tables."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from etl_meta.components.errors import ComponentFailed, ComponentInputError
from tests.components.helpers import run_component

# -- transform ----------------------------------------------------------------------------------


def test_transform_derives_filters_selects_and_renames_in_that_order(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    config = {
        "expressions": {"net": "amount / 1.2", "big": "net > 20"},  # `big` uses `net`
        "filter": "status != 'cancelled' and big",
        "select": ["order_id", "net", "big"],
        "rename": {"net": "net_amount"},
    }

    result = run_component("transform", config, {"extract": orders}, base_dir=tmp_path)

    frame = result.value
    assert list(frame.columns) == ["order_id", "net_amount", "big"]
    assert frame["order_id"].tolist() == [2]
    assert frame["net_amount"].tolist() == pytest.approx([80.0 / 1.2])
    assert list(frame.index) == [0]
    assert result.metrics == {"rows_in": 4, "rows_out": 1}
    assert "net" not in orders.columns  # the input is not modified


def test_transform_with_no_options_passes_the_table_through(
    tmp_path: Path, orders: pd.DataFrame
) -> None:
    result = run_component("transform", {}, {"extract": orders}, base_dir=tmp_path)
    pd.testing.assert_frame_equal(result.value, orders)


@pytest.mark.parametrize("upstreams", [{}, {"a": "frame", "b": "frame"}])
def test_transform_needs_exactly_one_input(
    tmp_path: Path, orders: pd.DataFrame, upstreams: dict
) -> None:
    inputs = {name: orders for name in upstreams}

    with pytest.raises(ComponentInputError) as caught:
        run_component("transform", {}, inputs, base_dir=tmp_path, name="flag_reorders")

    assert "component 'flag_reorders' (transform) needs exactly 1 DataFrame input" in str(
        caught.value
    )
    assert caught.value.component == "flag_reorders"


def test_a_writer_upstream_only_orders_the_step(tmp_path: Path, orders: pd.DataFrame) -> None:
    result = run_component(
        "transform", {}, {"save_copy": None, "extract": orders}, base_dir=tmp_path
    )
    assert len(result.value) == 4


def test_an_input_that_is_not_a_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ComponentInputError, match="input from 'fetch' is a dict"):
        run_component("transform", {}, {"fetch": {"a": 1}}, base_dir=tmp_path)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        ({"expressions": {"x": "no_such_column * 2"}}, "expression for column 'x' failed"),
        ({"filter": "no_such_column > 1"}, "filter failed"),
        # `@name` must not reach the component's own variables (its config, its inputs).
        ({"expressions": {"x": "@config"}}, "expression for column 'x' failed"),
        ({"filter": "@inputs"}, "filter failed"),
        ({"select": ["order_id", "nope", "also_nope"]}, "missing column(s) 'nope', 'also_nope'"),
    ],
)
def test_transform_errors_name_what_failed(
    tmp_path: Path, orders: pd.DataFrame, config: dict, message: str
) -> None:
    with pytest.raises(ComponentFailed) as caught:
        run_component("transform", config, {"extract": orders}, base_dir=tmp_path, name="t")
    assert message in str(caught.value)
    assert str(caught.value).startswith("component 't': ")


# -- join ---------------------------------------------------------------------------------------


def test_join_takes_the_left_table_from_the_upstream_named_left(
    tmp_path: Path, orders: pd.DataFrame, customers: pd.DataFrame
) -> None:
    # Upstreams arrive in the store's order (by name), not declaration order: `left` decides.
    result = run_component(
        "join",
        {"on": "customer_id", "how": "left", "left": "extract_orders"},
        {"extract_customers": customers, "extract_orders": orders},
        base_dir=tmp_path,
    )

    frame = result.value
    assert frame["order_id"].tolist() == [1, 2, 3, 4]
    assert frame["name"].tolist()[:3] == ["Ada", "Grace", "Ada"]
    assert pd.isna(frame["name"].iloc[3])  # customer 30 is unknown
    assert result.metrics == {"rows": 4, "rows_left": 4, "rows_right": 3}
    assert result.metadata == {"left": "extract_orders", "right": "extract_customers"}


def test_join_without_left_uses_the_upstream_whose_name_sorts_first(
    tmp_path: Path, orders: pd.DataFrame, customers: pd.DataFrame
) -> None:
    result = run_component(
        "join",
        {"on": "customer_id", "how": "inner"},
        {"z_orders": orders, "a_customers": customers},
        base_dir=tmp_path,
    )
    assert result.metadata == {"left": "a_customers", "right": "z_orders"}
    with pytest.raises(ComponentFailed, match="not one of its upstream"):
        run_component(
            "join",
            {"on": "customer_id", "left": "nope"},
            {"z_orders": orders, "a_customers": customers},
            base_dir=tmp_path,
        )


def test_join_how_and_multiple_keys(tmp_path: Path) -> None:
    left = pd.DataFrame({"sku": ["a", "a", "b"], "site": ["AMS", "LON", "AMS"], "qty": [1, 2, 3]})
    right = pd.DataFrame({"sku": ["a", "b"], "site": ["LON", "LON"], "price": [9.0, 4.0]})

    inner = run_component(
        "join", {"on": ["sku", "site"]}, {"stock": left, "prices": right}, base_dir=tmp_path
    )
    outer = run_component(
        "join",
        {"on": ["sku", "site"], "how": "outer"},
        {"stock": left, "prices": right},
        base_dir=tmp_path,
    )

    assert inner.value[["sku", "site", "qty", "price"]].values.tolist() == [["a", "LON", 2, 9.0]]
    assert outer.metrics["rows"] == 4


def test_join_cardinality_catches_duplicated_keys(
    tmp_path: Path, orders: pd.DataFrame, customers: pd.DataFrame
) -> None:
    doubled = pd.concat([customers, customers.head(1)])

    with pytest.raises(ComponentFailed, match="join of 'orders' with 'customers' failed"):
        run_component(
            "join",
            {"on": "customer_id", "cardinality": "many_to_one", "left": "orders"},
            {"orders": orders, "customers": doubled},
            base_dir=tmp_path,
        )


def test_join_needs_exactly_two_inputs(tmp_path: Path, orders: pd.DataFrame) -> None:
    with pytest.raises(ComponentInputError, match=r"needs exactly 2 DataFrame inputs .* got 1"):
        run_component("join", {"on": "customer_id"}, {"orders": orders}, base_dir=tmp_path)


def test_join_names_the_side_missing_a_key(
    tmp_path: Path, orders: pd.DataFrame, customers: pd.DataFrame
) -> None:
    with pytest.raises(ComponentFailed, match="'order_id' missing from the input of 'customers'"):
        run_component(
            "join",
            {"on": ["customer_id", "order_id"]},
            {"orders": orders, "customers": customers},
            base_dir=tmp_path,
        )


# -- sql ----------------------------------------------------------------------------------------


def test_sql_sees_each_input_as_a_table_named_after_its_upstream(
    tmp_path: Path, orders: pd.DataFrame, customers: pd.DataFrame
) -> None:
    query = """
        SELECT c.name, COUNT(*) AS orders, SUM(o.amount) AS revenue
        FROM read_orders AS o JOIN read_customers AS c USING (customer_id)
        WHERE o.status != :excluded
        GROUP BY c.name ORDER BY revenue DESC
    """

    result = run_component(
        "sql",
        {"query": query, "params": {"excluded": "cancelled"}},
        {"read_orders": orders, "read_customers": customers, "save": None},
        base_dir=tmp_path,
    )

    assert result.value.values.tolist() == [["Grace", 1, 80.0], ["Ada", 2, 19.75]]
    assert result.metrics == {"rows": 2}
    assert result.metadata["tables"] == {"read_orders": 4, "read_customers": 3}


def test_sql_turns_named_columns_back_into_dates(tmp_path: Path) -> None:
    events = pd.DataFrame({"day": pd.to_datetime(["2026-01-01", "2026-01-03"])})

    result = run_component(
        "sql",
        {"query": "SELECT MAX(day) AS last_day FROM events", "parse_dates": ["last_day"]},
        {"events": events},
        base_dir=tmp_path,
    )

    assert result.value["last_day"].tolist() == [pd.Timestamp("2026-01-03")]


def test_sql_is_read_only(tmp_path: Path, orders: pd.DataFrame) -> None:
    with pytest.raises(ComponentFailed, match="query failed"):
        run_component(
            "sql",
            {"query": "DELETE FROM orders"},
            {"orders": orders},
            base_dir=tmp_path,
        )


def test_sql_errors_name_the_component(tmp_path: Path, orders: pd.DataFrame) -> None:
    with pytest.raises(ComponentFailed, match=r"component 'stats': query failed: .*no such table"):
        run_component(
            "sql",
            {"query": "SELECT * FROM other"},
            {"orders": orders},
            base_dir=tmp_path,
            name="stats",
        )
