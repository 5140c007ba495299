"""Hostile input through the real store, on every backend.

Every name, text, tag, JSON document, metric and filter either is refused with a
:class:`~etl_meta.errors.ValidationError` naming the field before anything is written (no row, no
audit event: :func:`snapshot` counts every table), or is stored as inert data and read back exactly
as given, with every table still there. Nothing fails with anything but an etl-meta error.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from etl_meta import MetadataStore
from etl_meta.analytics import metrics_frame
from etl_meta.cli import app
from etl_meta.errors import AlreadyExistsError, EtlMetaError, ValidationError
from etl_meta.masking import MASK, mask_value
from etl_meta.models import metadata
from etl_meta.secrets import PREFIX
from etl_meta.validation import TAG_KEY_RE
from tests.backends import isolated_settings
from tests.factories import Factory, unique
from tests.plugins import STEP

SQL_PAYLOADS = [
    "'; DROP TABLE job; --",
    '" OR 1=1 --',
    "' OR '1'='1",
    "$$; DROP TABLE job; $$",
    "\\'; DROP TABLE job; --",
    "\\",
    "\\\\'",
    "%",
    "_",
    "%_%",
    "/* */ DROP TABLE job /* */",
    ";",
    "' UNION SELECT name, 1 FROM job --",
    "1; SELECT pg_sleep(10)",
    "'||(SELECT sqlite_version())||'",
    "E'\\x41'",
    "\\x00",
    "$1",
    "%(name)s",
    ":name",
    "?",
    "`job`",
    "'); DELETE FROM audit_event; --",
]
#: Characters no stored text may hold: NUL, an ANSI escape, a C1 control (CSI), a lone surrogate.
BAD_TEXT = ["\x00", "\x1b[2J", "\x9b", "\ud800"]
#: What JSON (keys or values, at any depth) may not hold: PostgreSQL cannot store either.
BAD_JSON = ["\x00", "\udfff"]
SECRET = "hostile-s3cret-4e1d"


def snapshot(store: MetadataStore) -> dict[str, int]:
    """Row count of every etl-meta table, the audit trail included, in one query.

    Counting a table that was dropped fails, so an equal snapshot also means every table is there.
    """
    tables = metadata.sorted_tables
    query = sa.select(
        *(sa.select(sa.func.count()).select_from(t).scalar_subquery() for t in tables)
    )
    with store.engine.connect() as connection:
        row = connection.execute(query).one()
    return {table.name: count for table, count in zip(tables, row, strict=True)}


def refused(store: MetadataStore, call: Callable[[], Any], field: str) -> ValidationError:
    """Run ``call``; it must raise a ValidationError naming ``field`` and write nothing."""
    before = snapshot(store)
    with pytest.raises(ValidationError) as caught:
        call()
    assert caught.value.field == field, str(caught.value)
    assert snapshot(store) == before
    return caught.value


def raw(store: MetadataStore, table: str) -> str:
    """Every row of ``table`` as the database returns it, as text."""
    with store.engine.connect() as connection:
        rows = connection.execute(sa.text(f"SELECT * FROM {table}")).all()
    return repr([tuple(row) for row in rows])


def quote(text: str) -> str:
    """A filter string literal ('' escapes a quote)."""
    return "'" + text.replace("'", "''") + "'"


def tag_label(key: str) -> str:
    """How an error's field path shows a tag key: as is when valid, else quoted and escaped."""
    return key if TAG_KEY_RE.fullmatch(key) else json.dumps(key)


def tag_key_field(key: str) -> str:
    return f"tags.{tag_label(key)}.key"


@pytest.fixture
def base(store: MetadataStore, factory: Factory) -> int:
    """A job ``base`` (steps ``extract``, ``load``) with one run; returns the run's id."""
    # An open contract: these tests store arbitrary JSON, whatever a real type would accept.
    factory.job(
        name="base",
        components=[
            {"name": "extract", "component_type": STEP},
            {"name": "load", "component_type": STEP, "depends_on": ["extract"]},
        ],
    )
    return factory.execution("base", run_id="base-run").id


# --- SQL injection -------------------------------------------------------------------------------


def test_sql_in_names_and_tag_keys_is_refused_naming_the_field(store, base):
    assert store.jobs.create({"name": "_"}).name == "_"  # the one payload that is an identifier
    for payload in (p for p in SQL_PAYLOADS if p != "_"):
        refused(store, lambda p=payload: store.jobs.create({"name": p}), "name")
        refused(store, lambda p=payload: store.dataclasses.create({"name": p}), "name")
        refused(
            store,
            lambda p=payload: store.components.create(
                "base", {"name": p, "component_type": "test.step"}
            ),
            "name",
        )
        refused(
            store,
            lambda p=payload: store.jobs.create(
                {"name": "j", "components": [{"name": p, "component_type": "test.step"}]}
            ),
            "components.0.name",
        )
        error = refused(
            store,
            lambda p=payload: store.jobs.create({"name": "j", "tags": {p: "v"}}),
            tag_key_field(payload),
        )
        assert error.entity == "tag"


def test_sql_in_text_and_json_is_stored_and_read_back_byte_identical(store, base):
    for index, payload in enumerate(SQL_PAYLOADS):
        document = {payload: payload, "nested": [payload, {payload: [payload, {"k": payload}]}]}
        job = f"sql_{index}"
        store.jobs.create(
            {
                "name": job,
                "description": payload,
                "tags": {"payload": payload},
                "components": [
                    {
                        "name": "step",
                        "component_type": "test.step",
                        "description": payload,
                        "configuration": document,
                    }
                ],
            }
        )
        store.dataclasses.create(
            {"name": job, "description": payload, "schema_definition": document}
        )
        run = store.executions.upsert(
            {
                "job": job,
                "orchestrator": "dagster",
                "external_run_id": payload,
                "status": "failed",
                "error": payload,
                "log_path": payload,
                "run_config": document,
            }
        )
        store.metrics.record([("step", payload, float(index))], execution_id=run.id)
        request = store.run_requests.create(
            {"job": job, "request_key": payload, "run_config": document}
        )

        found = store.jobs.get(job, with_components=True)
        assert (found.description, found.tags) == (payload, {"payload": payload})
        assert found.components[0].description == payload
        assert store.components.configuration(job, "step") == document
        assert store.dataclasses.get(job).schema_definition == document
        again = store.executions.find("dagster", payload)
        assert (again.external_run_id, again.error, again.log_path) == (payload, payload, payload)
        assert again.run_config == document
        assert [p.name for p in store.metrics.list(execution_id=run.id)] == [payload]
        assert store.run_requests.get(request.id).request_key == payload
        assert store.run_requests.run_config(request.id) == document

    counts = snapshot(store)  # every table is still there
    assert counts["job"] == len(SQL_PAYLOADS) + 1
    assert counts["metric_point"] == counts["run_request"] == len(SQL_PAYLOADS)
    assert counts["metric_name"] == len(SQL_PAYLOADS)


def test_filters_compare_sql_as_data(store, base):
    for index, payload in enumerate(SQL_PAYLOADS):
        store.jobs.create(
            {
                "name": f"f_{index}",
                "tags": {"env": payload},
                "components": [{"name": "s", "component_type": "test.step"}],
            }
        )
        run = store.executions.upsert(
            {
                "job": f"f_{index}",
                "orchestrator": "manual",
                "external_run_id": f"r{index}",
                "status": "running",
            }
        )
        store.metrics.record([("s", payload, float(index))], execution_id=run.id)
    before = snapshot(store)
    for index, payload in enumerate(SQL_PAYLOADS):
        frame = metrics_frame(store, filter=f"name = {quote(payload)}")
        assert frame["name"].tolist() == [payload] and frame["job"].tolist() == [f"f_{index}"]
        frame = metrics_frame(store, filter=f"tag.env = {quote(payload)} and value >= 0")
        assert frame["job"].tolist() == [f"f_{index}"]
    # A pattern's wildcards are wildcards, escaped ones literal: "_" and "%" in data are data.
    jobs = set(metrics_frame(store, filter="job like 'f\\_%'")["job"])
    assert jobs == {f"f_{index}" for index in range(len(SQL_PAYLOADS))}
    percent = metrics_frame(store, filter="name like '%\\%%'")["name"].tolist()
    assert sorted(percent) == sorted(p for p in SQL_PAYLOADS if "%" in p)
    for text in [
        *SQL_PAYLOADS[::2],
        "name = 'a\x00'",
        "name = 'a\ud800'",
        "name = 'x\u202e'",
        "name = 'x\x9b'",
        "\uff4e\uff41\uff4d\uff45 = 'x'",  # full-width "name"
        "n\u0430me = 'x'",  # Cyrillic а
        "name = 'a' or 1=1",
        "(" * 10_000,
    ]:
        refused(store, lambda t=text: metrics_frame(store, filter=t), "filter")
    assert snapshot(store) == before


def test_cli_filters_take_sql_as_data_or_refuse_it_in_one_line(store, store_url, base):
    store.jobs.create(
        {"name": "victim", "components": [{"name": "s", "component_type": "test.step"}]}
    )
    run = store.executions.upsert(
        {"job": "victim", "orchestrator": "manual", "external_run_id": "v1", "status": "running"}
    )
    store.metrics.record([("s", payload, 1.0) for payload in SQL_PAYLOADS], execution_id=run.id)
    before = snapshot(store)
    runner = CliRunner()

    def query(text: str):
        args = ["metrics", "query", "-f", "json", "--filter", text, "--database-url", store_url]
        return runner.invoke(app, args)

    # Every payload goes through the API above; a sample through the command line.
    for payload in SQL_PAYLOADS[::3]:
        result = query(f"name = {quote(payload)}")
        assert result.exit_code == 0, result.output
        assert [row["name"] for row in json.loads(result.stdout)] == [payload]
    for payload in [*SQL_PAYLOADS[1::3], "job = 'x'; DROP TABLE metric", "1=1 or", "name = $$x$$"]:
        result = query(payload)
        assert result.exit_code == 1, (payload, result.output)
        assert "Traceback" not in result.output and isinstance(result.exception, SystemExit)
        assert "filter" in result.stderr
    assert snapshot(store) == before


# --- control characters, NUL bytes, lone surrogates ---------------------------------------------


def text_fields(store: MetadataStore, run_id: int) -> list[tuple[Callable[[str], Any], str]]:
    """``(write a value into one text field, the field the error must name)``."""
    run = {"job": "base", "orchestrator": "dagster", "status": "running"}
    return [
        (lambda v: store.jobs.create({"name": "j", "description": v}), "description"),
        (lambda v: store.jobs.create({"name": "j", "tags": {"team": v}}), "tags.team.value"),
        (lambda v: store.jobs.update("base", {"description": v}), "description"),
        (
            lambda v: store.jobs.create(
                {
                    "name": "j",
                    "components": [{"name": "c", "component_type": "test.step", "description": v}],
                }
            ),
            "components.0.description",
        ),
        (lambda v: store.dataclasses.create({"name": "d", "description": v}), "description"),
        (lambda v: store.executions.upsert({**run, "external_run_id": v}), "external_run_id"),
        (lambda v: store.executions.upsert({**run, "external_run_id": "x", "error": v}), "error"),
        (
            lambda v: store.executions.upsert({**run, "external_run_id": "x", "log_path": v}),
            "log_path",
        ),
        (
            lambda v: store.executions.upsert(
                {**run, "external_run_id": "x"},
                steps=[{"component": "extract", "attempt": 1, "status": "failed", "error": v}],
            ),
            "steps.0.error",
        ),
        (
            lambda v: store.metrics.record([("extract", f"m{v}", 1.0)], execution_id=run_id),
            "points.0.name",
        ),
        (lambda v: store.run_requests.create({"job": "base", "request_key": v}), "request_key"),
    ]


def test_control_characters_and_surrogates_in_text_are_refused_naming_the_field(store, base):
    for write, field in text_fields(store, base):
        for bad in BAD_TEXT:
            refused(store, lambda w=write, b=bad: w(f"a{b}b"), field)


def test_tab_and_newlines_are_text(store, base):
    text = "line one\n\tline two\r\n"
    assert store.jobs.create({"name": "j", "description": text}).description == text


def json_fields(store: MetadataStore) -> list[tuple[Callable[[dict[str, Any]], Any], str]]:
    """``(write a JSON document into one field, the field the error must name)``."""
    return [
        (
            lambda d: store.components.create(
                "base", {"name": "c", "component_type": "test.step", "configuration": d}
            ),
            "configuration",
        ),
        (
            lambda d: store.components.update("base", "extract", {"configuration": d}),
            "configuration",
        ),
        (
            lambda d: store.jobs.create(
                {
                    "name": "j",
                    "components": [
                        {"name": "c", "component_type": "test.step", "configuration": d}
                    ],
                }
            ),
            "components.0.configuration",
        ),
        (
            lambda d: store.dataclasses.create({"name": "d", "schema_definition": d}),
            "schema_definition",
        ),
        (
            lambda d: store.dataclasses.create({"name": "d", "validation_rules": d}),
            "validation_rules",
        ),
        (lambda d: store.run_requests.create({"job": "base", "run_config": d}), "run_config"),
    ]


@pytest.mark.parametrize("bad", BAD_JSON, ids=["nul", "surrogate"])
def test_nul_and_surrogates_anywhere_in_json_are_refused_with_their_path(store, base, bad):
    documents = [
        ({"a": bad}, "at a"),
        ({"a": [{"b": f"x{bad}"}]}, "at a[0].b"),
        ({"a": {"b": {"c": [0, [bad]]}}}, "at a.b.c[1][0]"),
        ({f"k{bad}": 1}, f"at [{json.dumps('k' + bad)}]"),
        ({"a": [{"ok": 1, f"k{bad}": 1}]}, f"at a[0][{json.dumps('k' + bad)}]"),
    ]
    for write, field in json_fields(store):
        for document, where in documents:
            error = refused(store, lambda w=write, d=document: w(d), field)
            assert where in str(error)
            # The path names the key by its escape: no raw NUL or surrogate reaches a terminal.
            assert bad not in str(error)


def test_control_characters_in_json_values_are_data(store, base):
    document = {"delimiter": "\x01", "ansi": "\x1b[0m", "c1": "\x85", "key\ttab": ["\x7f"]}
    store.components.update("base", "extract", {"configuration": document})
    assert store.components.configuration("base", "extract") == document


# --- size, depth and numbers --------------------------------------------------------------------


def nested(levels: int) -> dict[str, Any]:
    """An object ``levels`` deep, counting its innermost scalar as a level (as the limit does)."""
    document: dict[str, Any] = {"leaf": 1}
    for _ in range(levels - 2):
        document = {"a": document}
    return document


def test_oversized_deep_and_non_finite_json_is_refused(store, base):
    limit = store.settings.max_json_bytes
    cases = [
        {"blob": "x" * limit},
        {f"k{i}": i for i in range(limit // 8)},
        nested(store.settings.max_json_depth + 1),
        nested(10_000),  # refused by depth, without exhausting the stack
        {"a": [math.nan]},
        {"a": {"b": math.inf}},
        {"a": -math.inf},
        {"a": {1, 2}},
        {"a": b"bytes"},
        {"a": {1: "int key"}},
    ]
    for write, field in json_fields(store):
        for document in cases:
            refused(store, lambda w=write, d=document: w(d), field)


def test_json_limits_follow_the_settings(store_url, tmp_path, base):
    small = isolated_settings(tmp_path, max_json_bytes=1024, max_json_depth=3)
    with MetadataStore(store_url, settings=small) as strict:
        config = lambda d: strict.components.update("base", "extract", {"configuration": d})  # noqa: E731
        assert "nested deeper than 3 levels" in str(
            refused(strict, lambda: config(nested(4)), "configuration")
        )
        assert "the limit is 1024" in str(
            refused(strict, lambda: config({"x": "y" * 1100}), "configuration")
        )
        config(nested(3))
        config({"x": "y" * 900})


def test_oversized_text_and_numbers_are_refused_naming_the_field(store, base):
    run = {"job": "base", "orchestrator": "dagster", "status": "running"}
    cases = [
        (lambda: store.jobs.create({"name": "j" * 64}), "name"),
        (lambda: store.jobs.create({"name": "j", "description": "x" * 4001}), "description"),
        (lambda: store.jobs.create({"name": "j", "tags": {"k": "v" * 256}}), "tags.k.value"),
        (
            lambda: store.jobs.create({"name": "j", "tags": {"k" * 64: "v"}}),
            "tags." + "k" * 64 + ".key",
        ),
        (lambda: store.jobs.create({"name": "j", "num_of_retries": 10**30}), "num_of_retries"),
        (lambda: store.executions.upsert({**run, "external_run_id": "r" * 256}), "external_run_id"),
        (
            lambda: store.executions.upsert({**run, "external_run_id": "x", "error": "e" * 20_001}),
            "error",
        ),
        (
            lambda: store.metrics.record([("extract", "m" * 256, 1.0)], execution_id=base),
            "points.0.name",
        ),
        (
            lambda: store.metrics.record([("extract", "m", math.nan)], execution_id=base),
            "points.0.value",
        ),
        (
            lambda: store.metrics.record([("extract", "m", -math.inf)], execution_id=base),
            "points.0.value",
        ),
        (
            lambda: store.metrics.record([("extract", "m", 1.0, 2**63)], execution_id=base),
            "points.0.step",
        ),
    ]
    for call, field in cases:
        refused(store, call, field)


def test_big_but_valid_numbers_are_stored_exactly(store, base):
    document = {"big": 10**30, "negative": -(2**63), "small": 5e-324, "fraction": 0.1}
    store.components.update("base", "extract", {"configuration": document})
    assert store.components.configuration("base", "extract") == document


# --- Unicode look-alikes ------------------------------------------------------------------------

LOOKALIKE_NAMES = [
    "j\u043eb",  # Cyrillic о
    "j\u03bfb",  # Greek omicron
    "\uff4a\uff4f\uff42",  # full-width
    "job\u200b",  # zero-width space
    "jo\u200db",  # zero-width joiner
    "job\u202e",  # right-to-left override
    "j\u00f6b",
    "job\u0301",  # combining acute accent
    "\u212aelvin",  # Kelvin sign
    "\u0131d",  # dotless i
    "job\u00a0",  # no-break space
]


def test_names_and_tag_keys_are_ascii_so_look_alikes_are_refused(store, base):
    for name in LOOKALIKE_NAMES:
        refused(store, lambda n=name: store.jobs.create({"name": n}), "name")
        refused(store, lambda n=name: store.dataclasses.create({"name": n}), "name")
        refused(
            store,
            lambda n=name: store.components.create(
                "base", {"name": n, "component_type": "test.step"}
            ),
            "name",
        )
        refused(
            store,
            lambda n=name: store.components.create("base", {"name": "c", "component_type": n}),
            "component_type",
        )
        error = refused(
            store,
            lambda n=name: store.jobs.create({"name": "j", "tags": {n: "v"}}),
            tag_key_field(name),
        )
        assert error.entity == "tag"


def test_bidi_embeddings_and_overrides_in_text_are_refused(store, base):
    for override in "\u202a\u202b\u202c\u202d\u202e":
        text = f"invoice{override}txt.exe"  # with U+202E, displays as "invoiceexe.txt"
        for write, field in text_fields(store, base):
            refused(store, lambda w=write, t=text: w(t), field)


def test_isolates_marks_and_zero_width_characters_in_text_are_data(store, base):
    # What right-to-left writers, Persian/Indic scripts and emoji legitimately need.
    text = (
        "\u05e9\u05dc\u05d5\u2067\u0645\u0631\u062d\u0628\u0627\u2069 \u200f! "  # isolate, RLM
        "\u0645\u06cc\u200c\u062e\u0648\u0627\u0647\u0645 "  # Persian with a zero-width non-joiner
        "\U0001f469\u200d\U0001f4bb \u200b"  # an emoji sequence (ZWJ), a zero-width space
    )
    job = store.jobs.create({"name": "j", "description": text, "tags": {"greeting": text}})
    assert (job.description, job.tags) == (text, {"greeting": text})
    assert store.jobs.get("j").description == text


SENSITIVE_LOOKALIKES = [
    "p\u0430ssword",  # Cyrillic а
    "\uff50\uff41\uff53\uff53\uff57\uff4f\uff52\uff44",  # full-width
    "pass\u200bword",  # zero-width space
    "pass\u2060word",  # word joiner
    "PASS\u202eWORD",  # bidi override
    "\u0440\u0430\u0455\u0455\u051d\u043erd",  # Cyrillic р а ѕ ѕ ԝ о
    # Mathematical bold 𝐩𝐚𝐬𝐬𝐰𝐨𝐫𝐝
    "\U0001d429\U0001d41a\U0001d42c\U0001d42c\U0001d430\U0001d428\U0001d42b\U0001d41d",
    "api_t\u043eken",
    "s\u0435cret",
    "p\u00e4ssword",  # an accent decorates, it does not hide
    "pass\ufe0fword",  # variation selector
    "p\u3164assword",  # Hangul filler, a letter that draws nothing
]


@pytest.mark.parametrize("key", SENSITIVE_LOOKALIKES)
def test_secret_keys_written_with_look_alikes_are_masked(key):
    assert mask_value({"outer": [{key: SECRET, "plain": "ok"}]}) == {
        "outer": [{key: MASK, "plain": "ok"}]
    }


@pytest.mark.parametrize(
    "key",
    [
        "name",
        "\u540d\u524d",
        "\u0442\u0430\u0431\u043b\u0438\u0446\u0430",
        "author",
        "\u0430uthor",
        "caf\u00e9",
    ],
)
def test_ordinary_non_ascii_keys_stay_visible(key):
    assert mask_value({key: "visible"}) == {key: "visible"}


def test_look_alike_secret_keys_are_encrypted_at_rest_and_masked_everywhere(store, base):
    configuration = {key: SECRET for key in SENSITIVE_LOOKALIKES} | {"table": "t"}
    store.components.update("base", "load", {"configuration": configuration})
    request = store.run_requests.create({"job": "base", "run_config": configuration})
    store.executions.upsert(
        {
            "job": "base",
            "orchestrator": "airflow",
            "external_run_id": "lookalike",
            "status": "running",
            "run_config": configuration,
        }
    )
    for table in ("component", "component_config", "run_request", "execution", "audit_event"):
        assert SECRET not in raw(store, table), table
    assert PREFIX in raw(store, "component_config") and PREFIX in raw(store, "run_request")
    # The code that runs the step and the sensor get every value back, keys unchanged.
    assert store.components.configuration("base", "load") == configuration
    assert store.run_requests.run_config(request.id) == configuration
    shown = store.components.get("base", "load").model_dump()["configuration"]
    assert shown == {key: MASK for key in SENSITIVE_LOOKALIKES} | {"table": "t"}
    run = store.executions.find("airflow", "lookalike")
    assert run.run_config == {key: MASK for key in SENSITIVE_LOOKALIKES} | {"table": "t"}


# --- anything at all ----------------------------------------------------------------------------

FRAGMENTS = [*SQL_PAYLOADS, *LOOKALIKE_NAMES, "\u2067", "\ufeff", "\u00a0", "", " ", "\n"]
HOSTILE_TEXT = st.one_of(
    # One character that must be refused, in otherwise plain text...
    st.sampled_from([*BAD_TEXT, "\u202e", "\x7f"]).map(lambda bad: f"plain{bad}text"),
    # ...or anything: payloads, look-alikes and random characters, surrogates included.
    st.lists(
        st.one_of(
            st.sampled_from(FRAGMENTS), st.text(st.characters(exclude_categories=()), max_size=8)
        ),
        max_size=4,
    ).map("".join),
)
#: Where the hostile text goes (every other field of the job is valid), and the field a refusal
#: must name.
TARGETS = {
    "description": "description",
    "step description": "components.0.description",
    "tag value": "tags.team.value",
    "config value": "components.0.configuration",
    "config key": "components.0.configuration",
    "tag key": "tags.{text}.key",
    "name": "name",
}


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(target=st.sampled_from(list(TARGETS)), text=HOSTILE_TEXT)
def test_any_text_is_stored_exactly_or_refused_with_a_typed_error(store, target, text):
    name = text if target == "name" else unique("job")
    tags = {text: "v"} if target == "tag key" else {"team": text if target == "tag value" else "a"}
    value = text if target == "config value" else "ok"
    configuration = {text: 1} if target == "config key" else {"k": [{"v": value}]}
    step = {"name": "c", "component_type": "test.step", "configuration": configuration}
    if target == "step description":
        step["description"] = text
    data = {
        "name": name,
        "description": text if target == "description" else None,
        "tags": tags,
        "components": [step],
    }
    before = snapshot(store)
    try:
        created = store.jobs.create(data)
    except ValidationError as error:
        assert {p.field for p in error.problems} == {
            TARGETS[target].format(text=tag_label(text))
        }, error
        assert snapshot(store) == before
        return
    except AlreadyExistsError:  # a name repeated across examples
        assert target == "name" and snapshot(store) == before
        return
    found = store.jobs.get(name, with_components=True)
    assert (found.name, found.description, found.tags) == (name, data["description"], tags)
    assert created.tags == tags
    assert found.components[0].description == step.get("description")
    assert store.components.configuration(name, "c") == configuration


# --- found by this suite, fixed in the store ------------------------------------------------------


def test_execution_run_config_is_checked_like_every_json_field(store, base):
    run = {"job": "base", "orchestrator": "dagster", "external_run_id": "x", "status": "running"}
    for document in [
        {"a": "\x00"},
        {"k\x00": 1},
        {"a": "\ud800"},
        {"a": math.nan},
        nested(10_000),
        {"a": {1, 2}},
        {"a": {1: 2}},
        {"blob": "x" * store.settings.max_json_bytes},
    ]:
        refused(
            store,
            lambda d=document: store.executions.upsert({**run, "run_config": d}),
            "run_config",
        )


@pytest.mark.parametrize("bad", ["\x00", "\ud800"], ids=["nul", "surrogate"])
def test_looking_up_a_hostile_name_is_not_found(store, base, bad):
    name = f"base{bad}"
    # Filters with a value no row can hold match nothing, identically on both backends.
    assert store.executions.find("dagster", name) is None
    assert store.jobs.list(tags={"team": name}) == []
    assert store.metrics.list(execution_id=base, name=name) == []
    for lookup in (
        lambda: store.jobs.get(name),
        lambda: store.components.get("base", name),
        lambda: store.dataclasses.get(name),
        lambda: store.executions.resolve(name),
    ):
        with pytest.raises(EtlMetaError) as caught:
            lookup()
        assert type(caught.value).__name__ == "NotFoundError"


def test_a_float_of_1e16_or_more_reads_back_as_the_same_float(store, base, backend, request):
    if backend == "postgresql":
        request.applymarker(
            pytest.mark.xfail(
                strict=True,
                reason="JSONB stores numbers as numeric and prints 1e+20 as 100000000000000000000: "
                "the float comes back an int, and 1.7976931348623157e308 a different value",
            )
        )
    document = {"large": 1.7976931348623157e308, "round": 1e20}
    store.components.update("base", "extract", {"configuration": document})
    stored = store.components.configuration("base", "extract")
    assert stored == document and isinstance(stored["round"], float)


def test_a_metric_value_too_large_for_a_float_is_refused(store, base):
    refused(
        store,
        lambda: store.metrics.record([("extract", "m", 10**400)], execution_id=base),
        "points.0.value",
    )
