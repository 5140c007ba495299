"""Issue #6 "never shown": a stored secret appears nowhere but in the component that runs.

Every test stores the same kind of definitions (see :func:`seed`): configurations whose secret
positions hold a unique sentinel (top-level ``password``, nested ``connection.credentials.token``,
a list item's ``api_key``, a key only the component type declares secret, a ``python`` step's
``kwargs``, a built-in type's declared ``connection_url``), a run request's run config, and
Dagster- and Airflow-style run config overrides recorded on executions. Each test then drives one
family of outputs into a :class:`~tests.security.sentinel.Corpus`, with every log record at DEBUG
(SQL echo on), and asserts the sentinel is absent in every encoding. Positive controls prove the
outputs were real (the plain marker stored beside the secrets shows up where configuration is
shown) and that the running component did receive the secrets.
"""

from __future__ import annotations

import inspect
import json
import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pydantic
import pytest
import sqlalchemy as sa
import yaml
from cryptography.fernet import Fernet
from sqlalchemy.engine import make_url
from typer.testing import CliRunner, Result

from etl_meta import MetadataStore, models
from etl_meta.catalog import take_snapshot
from etl_meta.cli import app
from etl_meta.components import get_component_type
from etl_meta.config import get_settings
from etl_meta.errors import EtlMetaError, StoreUnavailableError, ValidationError
from etl_meta.masking import MASK
from etl_meta.repository import rollups
from etl_meta.runtime import RunIdentity, run_component
from etl_meta.secrets import SecretDecryptError
from tests.backends import TEST_SECRET_KEY, isolated_settings
from tests.factories import T0
from tests.security.sentinel import (
    PROOF,
    Corpus,
    Sentinel,
    all_logs_at_debug,
    expected_proof,
    probe_configuration,
    sha256,
)

JOB = "sentinel_job"
OTHER_JOB = "sentinel_other"


@dataclass
class Seeded:
    """What :func:`seed` stored, for tests to refer to."""

    sentinel: Sentinel
    probe_v1: dict[str, Any]
    probe_v2: dict[str, Any]
    request_id: int
    dagster_run: str
    airflow_run: str


def seed(store: MetadataStore, sentinel: Sentinel) -> Seeded:
    """Definitions, runs, metrics and a run request, with the sentinel at every secret position."""
    probe_v1 = probe_configuration(sentinel, "v1")
    probe_v2 = probe_configuration(sentinel, "v2")
    store.dataclasses.create(
        {"name": "sentinel_rows", "schema_definition": {"columns": {"region": "string"}}}
    )
    store.jobs.create(
        {
            "name": JOB,
            "num_of_retries": 1,
            "file_logging": True,
            "tags": {"team": "security"},
            "components": [
                {
                    "name": "probe",
                    "component_type": "test.sentinel_probe",
                    "configuration": probe_v1,
                },
                {
                    "name": "call",
                    "component_type": "python",
                    "configuration": {
                        "callable": "tests.security.sentinel:probe_function",
                        "kwargs": {
                            "password": sentinel.value("python-kwargs"),
                            "region": sentinel.marker,
                        },
                    },
                    "depends_on": ["probe"],
                },
                {
                    "name": "load",
                    "component_type": "write_table",
                    "configuration": {
                        "table": "sentinel_rows",
                        # write_table declares connection_url secret; the name is on no list.
                        "connection_url": f"postgresql://etl:{sentinel.value('url')}@db/x",
                    },
                    "depends_on": ["call"],
                    "outputs": ["sentinel_rows"],
                },
            ],
        }
    )
    # A second version: history, diffs and run comparisons have a rotated secret to show.
    store.components.update(JOB, "probe", {"configuration": probe_v2})
    store.jobs.create({"name": OTHER_JOB, "components": []})
    request = store.run_requests.create(
        {
            "job": JOB,
            "request_key": "sentinel-request",
            "orchestrator": "dagster",
            # Run-time overrides may only echo a secret masked (a real one is refused, see
            # test_a_run_request_overriding_a_secret_is_refused_and_writes_nothing).
            "run_config": {"probe": {"password": MASK, "region": sentinel.marker}},
        }
    )
    versions_1 = {"probe": 1, "call": 1, "load": 1}
    versions_2 = {"probe": 2, "call": 1, "load": 1}
    steps = [
        {"component": "probe", "attempt": 1, "status": "failed", "error": "ConnectionError: x"},
        {"component": "probe", "attempt": 2, "status": "success"},
        {"component": "call", "attempt": 1, "status": "success"},
    ]
    dagster = store.executions.upsert(
        {
            "job": JOB,
            "orchestrator": "dagster",
            "external_run_id": "dagster-sentinel-run",
            "status": "success",
            "started_at": T0,
            "ended_at": T0 + timedelta(seconds=30),
            "config_versions": versions_1,
            # What Dagster reports as the run config when someone typed values in the launchpad.
            "run_config": {
                "ops": {
                    "probe": {
                        "config": {
                            "password": sentinel.value("dagster-override"),
                            "conn": sentinel.value("dagster-override-conn"),
                            "region": sentinel.marker,
                        }
                    }
                }
            },
            # Dagster run tags, as an operator might set them (a password among them).
            "tags": {
                "dagster/db_password": sentinel.value("dagster-tag"),
                "source": f"postgresql://etl:{sentinel.value('dagster-tag-url')}@db/x",
                "region": sentinel.marker,
            },
        },
        steps=steps,
    )
    airflow = store.executions.upsert(
        {
            "job": JOB,
            "orchestrator": "airflow",
            "external_run_id": "manual__sentinel",
            "status": "failed",
            "started_at": T0 + timedelta(hours=1),
            "ended_at": T0 + timedelta(hours=1, seconds=50),
            "config_versions": versions_2,
            "error": "step call failed",
            # What Airflow reports as the DAG run conf (etl-meta's override format).
            "run_config": {
                "components": {
                    "probe": {
                        "api_token": sentinel.value("airflow-override"),
                        "conn": sentinel.value("airflow-override-conn"),
                    }
                }
            },
            "tags": {"conf.api_token": sentinel.value("airflow-conf-tag")},
        },
        steps=steps,
    )
    for run in (dagster, airflow):
        store.metrics.record(
            [("probe", "probe.rows", 10.0 + run.id, 0, 2, None), ("call", "rows", 3.0, 0, 1, None)],
            execution_id=run.id,
        )
    # A reconcile's position (no secret in it: the record the sentinel test dumps must exist).
    store.sync_cursors.set("airflow.reconcile", {"updated_at_gte": "2026-01-01T00:00:00+00:00"})
    # Retention policies and a daily rollup, as the retention pass writes them (no secret in
    # them either: the rows the sentinel test dumps must exist).
    store.retention.set_default({"raw_days": 30, "rollup_days": 365})
    store.retention.set_job(JOB, {"legal_hold": True, "hold_reason": "sentinel hold"})
    with store.transaction() as session:
        rollups.roll_up_runs(session, [dagster.id])
    return Seeded(
        sentinel, probe_v1, probe_v2, request.id, dagster.external_run_id, airflow.external_run_id
    )


@pytest.fixture(autouse=True)
def _probe_module_allowed(monkeypatch: pytest.MonkeyPatch) -> None:
    """The operator allow-lists the probe's module, as they would their project's own code."""
    monkeypatch.setenv("ETL_META_SANDBOX_CALLABLE_MODULES", "tests.security.sentinel")


@pytest.fixture
def sentinel() -> Sentinel:
    return Sentinel()


@pytest.fixture
def corpus(sentinel: Sentinel) -> Corpus:
    return Corpus(sentinel)


@pytest.fixture
def logs() -> Iterator[list[str]]:
    """Every log record of the test, at DEBUG, from every logger."""
    with all_logs_at_debug() as lines:
        yield lines


@pytest.fixture
def echo_store(store_url: str, tmp_path: Path, logs: list[str]) -> Iterator[MetadataStore]:
    """The test's store with SQL echo on: SQLAlchemy logs every statement it runs."""
    settings = isolated_settings(tmp_path, echo_sql=True)
    with MetadataStore(store_url, settings=settings) as opened:
        yield opened


@pytest.fixture
def seeded(echo_store: MetadataStore, sentinel: Sentinel) -> Seeded:
    return seed(echo_store, sentinel)


def finish(corpus: Corpus, logs: list[str], **minimums: int) -> None:
    """Add the captured log records, then fail on any leak (or on a corpus too small to count)."""
    assert any("SELECT" in line for line in logs), "SQL echo was not captured"
    for number, line in enumerate(logs):
        corpus.add(f"log record {number}", line)
    corpus.assert_clean(**minimums)


# -- the detector itself -------------------------------------------------------------------------


def test_the_corpus_check_finds_the_sentinel_in_every_encoding_and_says_where(
    sentinel: Sentinel,
) -> None:
    import base64

    secret = sentinel.value("check")
    encodings = {
        "plain": f"password={secret}",
        "upper": secret.upper(),
        "json": json.dumps({"password": secret}),
        "ascii json": json.dumps(secret, ensure_ascii=True),
        "repr": repr({"password": secret}),
        "url": sa.URL.create("postgresql", "u", secret, "h").render_as_string(False),
        "hex": secret.encode().hex(),
        **{
            f"base64 after {n} bytes": base64.b64encode(b"x" * n + secret.encode()).decode()
            for n in range(3)
        },
        **{
            f"urlsafe base64 after {n} bytes": base64.urlsafe_b64encode(
                b"user:" + b"y" * n + secret.encode()
            ).decode()
            for n in range(3)
        },
    }
    for label, text in encodings.items():
        corpus = Corpus(sentinel)
        corpus.add(f"case {label}", f"prefix {text} suffix")
        assert corpus.leaks(), f"not detected: {label}"
        with pytest.raises(AssertionError, match=f"case {label}.*<SENTINEL>"):
            corpus.assert_clean()
    clean = Corpus(sentinel)
    clean.add("ciphertext", Fernet(TEST_SECRET_KEY).encrypt(secret.encode()))
    clean.add("masked", json.dumps({"password": MASK, "region": sentinel.marker}))
    clean.assert_clean(min_items=2)
    with pytest.raises(AssertionError, match="only 2 outputs"):
        clean.assert_clean(min_items=3)


# -- the positive control ------------------------------------------------------------------------


def test_the_running_component_alone_receives_every_secret(
    echo_store: MetadataStore, seeded: Seeded, corpus: Corpus, logs: list[str], tmp_path: Path
) -> None:
    snapshot = take_snapshot(echo_store)
    job = next(j for j in snapshot.jobs if j.name == JOB)
    corpus.add("catalog snapshot", snapshot.model_dump_json())
    components = {c.name: c for c in job.components}
    for name in ("probe", "call"):
        PROOF.pop(f"manual:{JOB}.{name}", None)
        result = run_component(
            echo_store,
            job=job,
            component=components[name],
            run=RunIdentity("manual", f"manual-{name}", config_versions=job.config_versions),
            inputs={},
            # Orchestrators echo the masked snapshot back as overrides (Airflow always, Dagster
            # by default): every masked value, list items included, means "the stored value".
            overrides=components[name].configuration,
            base_dir=tmp_path,
        )
        corpus.add(f"{name} result value", result.value)
        corpus.add(f"{name} result metrics", result.metrics)
        corpus.add(f"{name} result metadata", result.metadata)
    assert components["probe"].configuration["targets"][0]["api_key"] == MASK
    assert PROOF[f"manual:{JOB}.probe"] == expected_proof(seeded.probe_v2)
    assert PROOF[f"manual:{JOB}.call"] == {
        "password": sha256(seeded.sentinel.value("python-kwargs"))
    }
    assert seeded.sentinel.marker in corpus.text("probe result value")
    for event in echo_store.audit.list(limit=1000):  # decrypt events, if recorded: names only
        corpus.add(f"audit {event.id} {event.action}", event.model_dump_json())
    finish(corpus, logs, min_items=8)


# -- CLI -----------------------------------------------------------------------------------------


@dataclass
class Cli:
    """``etl-meta`` in this process against the test's store; every output goes to the corpus."""

    url: str
    corpus: Corpus
    runner: CliRunner
    invoked: set[str] = field(default_factory=set)

    def __call__(self, *args: str, store: bool = True, ok: bool = True) -> Result:
        argv = [*args, "--database-url", self.url] if store else list(args)
        words = [arg for arg in args if not arg.startswith("-")]
        self.invoked.update(c for c in cli_commands() if words[: len(c.split())] == c.split())
        result = self.runner.invoke(app, argv)
        where = "cli: etl-meta " + " ".join(args)
        self.corpus.add(f"{where} (stdout)", result.stdout)
        self.corpus.add(f"{where} (stderr)", result.stderr)
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            self.corpus.add_exception(f"{where} (exception)", result.exception)
        if ok:
            assert result.exit_code == 0, f"{where} failed:\n{result.output}"
        return result


def cli_commands() -> set[str]:
    """Every ``etl-meta`` command, plugins' included (``jobs show``, ``airflow export``, ...)."""
    import typer.main

    def walk(command: Any, path: tuple[str, ...]) -> Iterator[str]:
        if hasattr(command, "commands"):  # a group; the root loads plugins' groups on demand
            for name in command.list_commands(None):
                yield from walk(command.get_command(None, name), (*path, name))
        else:
            yield " ".join(path)

    return set(walk(typer.main.get_command(app), ()))


#: Commands the CLI test does not run, and why (every other command must run there).
_CLI_ELSEWHERE = {
    "db downgrade": "rewrites the shared test database's schema; prints no stored data",
    "db roles": "creates cluster-wide PostgreSQL roles (tests/security/test_db_roles.py)",
    "dagster status": "needs a running Dagster webserver (tests/dagster e2e)",
    "dagster reload": "needs a running Dagster webserver (tests/dagster e2e)",
    "dagster reconcile": "runs against a real Dagster instance in test_sentinel_orchestrators.py",
    "dagster run": "runs against a real Dagster instance in test_sentinel_orchestrators.py",
}


@pytest.fixture
def cli(
    store_url: str, corpus: Corpus, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Cli]:
    # The CLI reads its settings from the environment: SQL echo on, a private home.
    monkeypatch.setenv("ETL_META_ECHO_SQL", "true")
    monkeypatch.setenv("ETL_META_HOME", str(tmp_path / "cli_home"))
    monkeypatch.setenv("COLUMNS", "250")
    get_settings.cache_clear()
    yield Cli(store_url, corpus, CliRunner())
    get_settings.cache_clear()


def _definitions_file(path: Path, seeded: Seeded) -> Path:
    """A definitions file changing the probe's secrets (so apply has a diff to print)."""
    sentinel = seeded.sentinel
    probe_v3 = probe_configuration(sentinel, "v3")
    document = {
        "version": 1,
        "jobs": [
            {
                "name": "sentinel_applied",
                "components": [
                    {
                        "name": "probe",
                        "component_type": "test.sentinel_probe",
                        "configuration": probe_v3,
                    }
                ],
            },
            {
                "name": JOB,
                "num_of_retries": 1,
                "file_logging": True,
                "tags": {"team": "security"},
                "components": [
                    {
                        "name": "probe",
                        "component_type": "test.sentinel_probe",
                        "configuration": probe_v3,
                    }
                ],
            },
        ],
    }
    path.write_text(yaml.safe_dump(document, allow_unicode=True), encoding="utf-8")
    return path


def _broken_definitions(sentinel: Sentinel) -> dict[str, str]:
    """Definitions files that fail to load, each with a secret on (or next to) the bad line."""
    head = "version: 1\njobs:\n  - name: broken\n    components:\n      - name: c\n"
    secret = sentinel.value("broken-file")
    return {
        "yaml syntax": head
        + f"        component_type: t\n        configuration: {{password: {secret}, x: [}}\n",
        "duplicate key": head
        + "        component_type: t\n"
        + f"        configuration: {{password: {secret}, password: {secret}}}\n",
        "not an object": head + f"        component_type: t\n        configuration: [{secret}]\n",
        "bad field type": head.replace(
            "- name: broken", f"- name: broken\n    num_of_retries: {secret}"
        )
        + f"        component_type: t\n        configuration: {{token: {secret}}}\n",
    }


@pytest.mark.extra("analytics")  # metrics query and runs compare among the commands
def test_no_cli_command_or_format_shows_a_secret(
    cli: Cli, seeded: Seeded, corpus: Corpus, logs: list[str], tmp_path: Path
) -> None:
    import pandas as pd

    out = tmp_path / "out"
    out.mkdir()
    for fmt in ("table", "json"):
        cli("jobs", "list", "--format", fmt)
        cli("-v", "jobs", "show", JOB, "--format", fmt)
        cli("runs", "list", "--format", fmt)
        cli("runs", "show", seeded.dagster_run, "--format", fmt)
        cli("runs", "show", seeded.airflow_run, "--format", fmt)
        cli("runs", "compare", seeded.dagster_run, seeded.airflow_run, "--format", fmt)
        cli("runs", "compare", "--since-last-success", seeded.airflow_run, "--format", fmt)
        cli("runs", "tag", seeded.dagster_run, f"reviewed={fmt}", "--format", fmt)
        cli("airflow", "export", "--dags-folder", str(tmp_path / f"dags_{fmt}"), "--format", fmt)
        cli("airflow", "status", "--dags-folder", str(tmp_path / f"dags_{fmt}"), "--format", fmt)
    for fmt in ("table", "csv", "json"):
        cli("metrics", "query", "--format", fmt)
        cli("metrics", "query", "--format", fmt, "--agg", "mean,max", "--every", "none")
    for fmt in ("csv", "json"):
        cli("metrics", "query", "--format", fmt, "-o", str(out / f"metrics.{fmt}"))
        cli("metrics", "query", "--format", fmt, "--agg", "p50", "-o", str(out / f"agg.{fmt}"))
    cli("metrics", "query", "--format", "parquet", "-o", str(out / "metrics.parquet"))
    cli("metrics", "query", "--run", seeded.dagster_run, "--attempts", "all")
    cli("metrics", "plot", "-o", str(out / "chart.svg"))
    cli("metrics", "plot", "-o", str(out / "chart_agg.svg"), "--agg", "mean")
    overrides = tmp_path / "overrides.yaml"
    overrides.write_text(
        yaml.safe_dump({"probe": {"password": seeded.sentinel.value("cli-request")}}),
        encoding="utf-8",
    )
    # A secret in run-time overrides is refused (naming the field, never the value).
    refused = cli("runs", "request", JOB, "--config", str(overrides), "--key", "k1", ok=False)
    assert refused.exit_code != 0 and "run_config.probe.password" in refused.output
    overrides.write_text(
        yaml.safe_dump({"probe": {"password": MASK, "region": seeded.sentinel.marker}}),
        encoding="utf-8",
    )
    cli("runs", "request", JOB, "--config", str(overrides), "--key", "k1", "--format", "json")
    cli("runs", "request", JOB, "--config", str(overrides), "--key", "k2")
    definitions = _definitions_file(tmp_path / "definitions.yaml", seeded)
    cli("apply", "-f", str(definitions), "--dry-run")
    cli("apply", "-f", str(definitions), "--dry-run", "--format", "json")
    cli("-v", "apply", "-f", str(definitions))
    cli("apply", "-f", str(definitions), "--format", "json")  # unchanged the second time
    cli("jobs", "show", "sentinel_applied", "--format", "json")
    cli("jobs", "archive", "sentinel_applied")
    cli("jobs", "restore", "sentinel_applied", "--format", "json")
    cli("schema", "-o", str(out / "definitions.schema.json"), store=False)
    for name, text in _broken_definitions(seeded.sentinel).items():
        broken = tmp_path / f"broken_{name}.yaml"
        broken.write_text(text, encoding="utf-8")
        assert cli("apply", "-f", str(broken), "--dry-run", ok=False).exit_code != 0
    broken_overrides = tmp_path / "broken_overrides.yaml"
    broken_overrides.write_text(
        f"probe: {{password: {seeded.sentinel.value('broken-overrides')}, x: [}}\n",
        encoding="utf-8",
    )
    assert cli("runs", "request", JOB, "--config", str(broken_overrides), ok=False).exit_code
    cli("db", "upgrade")
    cli("db", "current")
    cli("db", "check")
    cli("db", "history", store=False)
    cli("db", "partitions", "--ensure")
    cli("secrets", "generate-key", store=False)
    cli("secrets", "init", store=False)
    cli("airflow", "clean", "--older-than", "7d", store=False)
    # Airflow's API unreachable, its password the sentinel: the one-line error must not show it.
    reconcile = cli(
        "airflow",
        "reconcile",
        "--url",
        "http://127.0.0.1:1",
        "--username",
        "etl",
        "--password",
        seeded.sentinel.value("airflow-api-password"),
        ok=False,
    )
    assert reconcile.exit_code != 0
    for fmt in ("table", "json"):
        cli("audit", "list", "--limit", "1000", "--format", fmt)
        cli("audit", "list", "--entity", "execution", "--format", fmt)
    cli("secrets", "rotate", "--batch-size", "2")
    cli("gc", "--older-than", "1d", "--dry-run")
    cli("retention", "show")
    cli("gc", "--policy", "--dry-run")
    cli("gc", "--older-than", "1d", "--archive", str(out / "archive"))
    cli("runs", "list", "--format", "json")
    # A tag holding a secret is refused, and the refusal does not quote it.
    secret_tag = f"api_token={seeded.sentinel.value('cli-run-tag')}"
    assert cli("runs", "tag", seeded.dagster_run, secret_tag, ok=False).exit_code == 1
    # A store URL whose password is the sentinel, to a port nothing listens on.
    bad_url = sa.URL.create(
        "postgresql+psycopg",
        username="etl",
        password=seeded.sentinel.value("url-password"),
        host="127.0.0.1",
        port=1,
        database="nowhere",
    ).render_as_string(hide_password=False)
    for command in (("db", "current"), ("jobs", "list"), ("-v", "runs", "list")):
        result = cli(*command, "--database-url", bad_url, store=False, ok=False)
        assert result.exit_code != 0

    missing = cli_commands() - cli.invoked - set(_CLI_ELSEWHERE)
    assert not missing, f"etl-meta commands the sentinel test does not run: {sorted(missing)}"
    files = sorted(p for p in out.rglob("*") if p.is_file())
    assert {p.suffix for p in files} >= {".parquet", ".csv", ".json", ".svg"}
    assert any("archive" in str(p) for p in files), "gc archived nothing"
    for path in files:
        corpus.add_file("cli output file", path)
        if path.suffix == ".parquet":
            frame = pd.read_parquet(path)
            corpus.add(f"cli parquet via pandas {path.name}", frame.to_csv())
    for folder in tmp_path.glob("dags_*"):
        corpus.add_tree("airflow export", folder)
    # Positive: configuration was shown (masked) where it is shown, and the plain marker with it.
    shown = corpus.text("cli: etl-meta -v jobs show")
    assert MASK in shown and seeded.sentinel.marker in shown
    assert MASK in corpus.text("cli: etl-meta runs show")
    # The run tags are shown (masked), the plain one in clear.
    assert seeded.sentinel.marker in corpus.text("cli: etl-meta runs show")
    assert "***" in corpus.text("cli: etl-meta runs compare")
    assert seeded.sentinel.marker in corpus.text("airflow export")
    finish(corpus, logs, min_items=150, min_chars=50_000)


# -- models --------------------------------------------------------------------------------------


def _model_classes() -> dict[str, type[models.EtlModel]]:
    return {
        name: cls
        for name in models.__all__
        if inspect.isclass(cls := getattr(models, name)) and issubclass(cls, models.EtlModel)
    }


#: Exported model classes that hold no configuration-like data and are built from no row here.
_NOT_APPLICABLE = {
    "EtlModel": "abstract root",
    "PublicModel": "abstract root of the Public models",
    "ComponentBase": "abstract contract (ComponentPublic/Component are covered)",
    "DataclassesBase": "abstract contract (Dataclass/DataclassPublic are covered)",
    "JobBase": "abstract contract (Job/JobPublic are covered)",
}

#: Input schemas without any configuration-like field (checked to stay so): nothing to mask.
_PLAIN_INPUTS = {
    "JobCreate",
    "JobUpdate",
    "DataclassCreate",
    "DataclassUpdate",
    "MetricPoint",
    "StepAttemptUpsert",
    "MetricLatest",
}


def _dump_model(corpus: Corpus, where: str, model: Any) -> None:
    corpus.add(f"{where} repr", repr(model))
    corpus.add(f"{where} str", str(model))
    if isinstance(model, pydantic.BaseModel):
        corpus.add(f"{where} model_dump", model.model_dump())
        corpus.add(f"{where} model_dump(json)", model.model_dump(mode="json"))
        corpus.add(f"{where} model_dump_json", model.model_dump_json())


def test_no_model_repr_str_or_dump_shows_a_secret(
    echo_store: MetadataStore, seeded: Seeded, corpus: Corpus, logs: list[str]
) -> None:
    store, sentinel = echo_store, seeded.sentinel
    covered: set[str] = set()

    def dump(model: Any) -> None:
        covered.add(type(model).__name__)
        _dump_model(corpus, f"model {type(model).__name__}", model)

    # Table models, straight from their rows.
    with store.transaction(readonly=True) as session:
        for name, cls in _model_classes().items():
            if getattr(cls, "__table__", None) is None:
                continue
            rows = session.scalars(sa.select(cls)).all()
            assert rows, f"seed stored no {name} row"
            for row in rows:
                dump(row)
    # Public models, from every read the store offers.
    job = store.jobs.get(JOB, with_components=True)
    dump(job)
    for public in (*store.jobs.list(), *store.components.list(JOB)):
        dump(public)
    for history in store.components.config_history(JOB, "probe"):
        dump(history)
    for run in store.executions.list(job=JOB):
        dump(store.executions.get(run.id, with_steps=True))
        for attempt in store.executions.attempts(run.id):
            dump(attempt)
        for metric in store.metrics.list(execution_id=run.id):
            dump(metric)
    dump(store.run_requests.get(seeded.request_id))
    for event in store.audit.list(limit=1000):
        dump(event)
    dump(store.dataclasses.get("sentinel_rows"))
    for cursor in store.sync_cursors.list():
        dump(cursor)
    for policy in store.retention.list():
        dump(policy)
    # Input models holding the sentinel: what a caller passes (repr and str are masked).
    inputs: list[Any] = [
        models.ComponentCreate.model_validate(
            {"name": "x", "component_type": "test.sentinel_probe", "configuration": seeded.probe_v1}
        ),
        models.ComponentUpdate.model_validate({"configuration": seeded.probe_v1}),
        models.ExecutionUpsert.model_validate(
            {
                "job": JOB,
                "orchestrator": "dagster",
                "external_run_id": "r",
                "status": "running",
                "run_config": {"ops": {"probe": {"config": {"password": sentinel.value("u")}}}},
            }
        ),
        models.RunRequestCreate.model_validate(
            {"job": JOB, "run_config": {"probe": {"token": sentinel.value("rc")}}}
        ),
    ]
    for model in inputs:
        covered.add(type(model).__name__)
        corpus.add(f"input {type(model).__name__} repr", repr(model))
        corpus.add(f"input {type(model).__name__} str", str(model))
    # The values really are there (input models dump them for the store to encrypt).
    assert sentinel.core in json.dumps(inputs[0].model_dump())
    # Every exported model was built here, or is abstract, or has no configuration-like field.
    uncovered = set(_model_classes()) - covered - set(_NOT_APPLICABLE)
    for name in sorted(uncovered & _PLAIN_INPUTS):
        assert not getattr(_model_classes()[name], "_masked_fields", ()), name
    assert not uncovered - _PLAIN_INPUTS, f"models not checked: {uncovered - _PLAIN_INPUTS}"
    assert MASK in corpus.text("model ComponentPublic")
    assert sentinel.marker in corpus.text("model ComponentPublic")
    finish(corpus, logs, min_items=100)


def test_validation_errors_for_bad_input_never_quote_it(
    echo_store: MetadataStore, seeded: Seeded, corpus: Corpus, logs: list[str]
) -> None:
    sentinel = seeded.sentinel
    secret = sentinel.value("bad-input")
    bad: dict[str, Callable[[], Any]] = {
        "ComponentCreate bad status": lambda: models.ComponentCreate.model_validate(
            {
                "name": "x",
                "component_type": "t",
                "configuration": {"password": secret},
                "status": secret,
            }
        ),
        "ComponentCreate configuration not an object": lambda: (
            models.ComponentCreate.model_validate(
                {"name": "x", "component_type": "t", "configuration": [secret]}
            )
        ),
        "ExecutionUpsert bad run config": lambda: models.ExecutionUpsert.model_validate(
            {
                "job": JOB,
                "orchestrator": "dagster",
                "external_run_id": "r",
                "status": secret,
                "run_config": {"password": secret},
            }
        ),
        "RunRequestCreate run config not an object": lambda: models.RunRequestCreate.model_validate(
            {"job": JOB, "run_config": secret}
        ),
        "probe parse_config extra key": lambda: get_component_type(
            "test.sentinel_probe"
        ).parse_config({"password": 1, "tokenish": secret, "region": [secret]}),
        "store.jobs.create invalid component": lambda: echo_store.jobs.create(
            {
                "name": "bad_job",
                "components": [
                    {
                        "name": "not valid!",
                        "component_type": "t",
                        "configuration": {"password": secret},
                    }
                ],
            }
        ),
        "store.components.update bad status": lambda: echo_store.components.update(
            JOB, "probe", {"configuration": {"password": secret}, "status": secret}
        ),
        "store.run_requests.create unknown job": lambda: echo_store.run_requests.create(
            {"job": "no_such_job", "run_config": {"probe": {"password": secret}}}
        ),
        "too deep configuration": lambda: echo_store.components.create(
            JOB,
            {
                "name": "deep",
                "component_type": "t",
                "configuration": {"password": secret, "a": _deep(40, secret)},
            },
        ),
    }
    for where, call in bad.items():
        with pytest.raises((pydantic.ValidationError, EtlMetaError)) as caught:
            call()
        corpus.add_exception(where, caught.value)
    finish(corpus, logs, min_items=len(bad) * 5)


def _deep(depth: int, leaf: str) -> dict[str, Any]:
    value: Any = {"token": leaf}
    for _ in range(depth):
        value = {"n": value}
    return value


# -- analytics and SQL ---------------------------------------------------------------------------


@pytest.mark.extra("analytics")
def test_no_dataframe_view_or_base_table_shows_a_secret(
    echo_store: MetadataStore, seeded: Seeded, corpus: Corpus, logs: list[str]
) -> None:
    from etl_meta import analytics

    store = echo_store
    run_ids = [run.id for run in store.executions.list(job=JOB)]
    calls: dict[str, Callable[[], Any]] = {
        "metrics_frame": lambda: analytics.metrics_frame(store),
        "aggregate_metrics": lambda: analytics.aggregate_metrics(store, every="1d"),
        "latest_metrics": lambda: analytics.latest_metrics(store, JOB),
        "run_history": lambda: analytics.run_history(store),
        "step_attempts": lambda: analytics.step_attempts(store, run_ids=run_ids),
        "success_rate": lambda: analytics.success_rate(store),
        "compare_runs": lambda: analytics.compare_runs(
            store, seeded.dagster_run, seeded.airflow_run
        ),
        "changes_since_last_success": lambda: analytics.changes_since_last_success(
            store, seeded.airflow_run
        ),
        "last_success_before": lambda: analytics.last_success_before(store, seeded.airflow_run),
        "metrics_page": lambda: analytics.metrics_page(store, limit=2),
        "metric_count": lambda: analytics.metric_count(store),
        "metric_batches": lambda: _batches_frame(analytics.metric_batches(store)),
        "metrics_daily_frame": lambda: analytics.metrics_daily_frame(store),
        "runs_page": lambda: analytics.runs_page(store, limit=1),
        "parse_filter": lambda: analytics.parse_filter("value > 0 and job = 'sentinel_job'"),
    }
    public = {name for name in analytics.__all__ if inspect.isfunction(getattr(analytics, name))}
    assert public == set(calls), f"analytics functions not called: {public - set(calls)}"
    for name, call in calls.items():
        _add_analytics(corpus, f"analytics.{name}", call())
    comparison = calls["compare_runs"]()
    assert comparison.config_changes, "the seeded runs used different probe versions"
    assert MASK in corpus.text("analytics.compare_runs")

    with store.engine.connect() as connection:
        inspector = sa.inspect(connection)
        views = inspector.get_view_names()
        assert {"v_run", "v_step_attempt", "v_metric", "v_metric_daily", "v_job"} <= set(views)
        tables = inspector.get_table_names()
        for name in [*views, *tables]:
            rows = connection.execute(sa.text(f'SELECT * FROM "{name}"')).mappings().all()
            corpus.add(f"SELECT * FROM {name}", [dict(row) for row in rows])
    # The base tables hold ciphertext where the secrets are, and the plain values in clear.
    stored = corpus.text("SELECT * FROM component")
    assert "etlmeta:enc:v1:" in stored and seeded.sentinel.marker in stored
    finish(corpus, logs, min_items=20)


def _batches_frame(batches: Any) -> Any:
    """What an export writes: every Arrow table of ``metric_batches``, as one DataFrame."""
    import pandas as pd

    with batches as tables:
        return pd.concat([table.to_pandas() for table in tables], ignore_index=True)


def _add_analytics(corpus: Corpus, where: str, value: Any) -> None:
    import pandas as pd

    if isinstance(value, pd.DataFrame):
        corpus.add(f"{where} to_string", value.to_string())
        corpus.add(f"{where} to_csv", value.to_csv())
        corpus.add(f"{where} to_json", value.to_json(date_format="iso", default_handler=str))
        return
    for attribute in ("frame", "metrics"):
        inner = getattr(value, attribute, None)
        if isinstance(inner, pd.DataFrame):
            _add_analytics(corpus, f"{where}.{attribute}", inner)
    if hasattr(value, "config_frame"):
        _add_analytics(corpus, f"{where}.config_frame", value.config_frame())
    corpus.add(f"{where} repr", repr(value))
    corpus.add(f"{where} str", str(value))


def test_the_raw_database_holds_ciphertext_only(
    echo_store: MetadataStore,
    seeded: Seeded,
    corpus: Corpus,
    logs: list[str],
    store_url: str,
    tmp_path: Path,
) -> None:
    store = echo_store
    # Rotation to a new key decrypts and rewrites every secret, row by row: nothing of it may
    # reach the database (or the SQL log) in clear.
    keys = f"{Fernet.generate_key().decode()},{TEST_SECRET_KEY}"
    rotating = isolated_settings(tmp_path / "rotate", secret_keys=keys, echo_sql=True)
    with MetadataStore(store_url, settings=rotating) as rotator:
        assert rotator.secrets.rotate(batch_size=1).total > 0
    if store.dialect == "sqlite":
        store.close()  # flush the WAL into the file as far as SQLite does on close
        database = Path(make_url(store_url).database or "")
        for path in database.parent.glob(database.name + "*"):
            corpus.add_file("sqlite file", path)
        corpus.add_sqlite("sqlite rows", database)
        assert corpus.size > 10_000
    elif shutil.which("pg_dump"):
        url = make_url(store_url)
        dump = subprocess.run(
            ["pg_dump", "--no-owner", "--data-only", "--dbname", _libpq(url)],
            capture_output=True,
            check=True,
            timeout=60,
        )
        corpus.add("pg_dump", dump.stdout)
        corpus.add("pg_dump stderr", dump.stderr)
        assert b"COPY public.component " in dump.stdout
    else:
        with store.engine.connect() as connection:
            for table in sa.inspect(connection).get_table_names():
                rows = connection.execute(sa.text(f'SELECT row_to_json(t) FROM "{table}" t'))
                corpus.add(f"row_to_json {table}", [row[0] for row in rows])
    stored = "\n".join(text for _, text in corpus.items)
    assert "etlmeta:enc:v1:" in stored and seeded.sentinel.marker in stored
    finish(corpus, logs, min_items=2)


def _libpq(url: sa.URL) -> str:
    return url.set(drivername="postgresql").render_as_string(hide_password=False)


def test_audit_rows_never_hold_a_secret(
    echo_store: MetadataStore, seeded: Seeded, corpus: Corpus, logs: list[str]
) -> None:
    store = echo_store
    # The running path reads the secrets (and may audit that it did): its events count too.
    store.components.configuration(JOB, "probe")
    store.components.configuration(JOB, "probe", version=1)
    store.run_requests.run_config(seeded.request_id)
    store.components.update(JOB, "probe", {"configuration": seeded.probe_v1})
    store.components.archive(JOB, "load")
    events = store.audit.list(limit=1000)
    assert {"create", "update"} <= {e.action for e in events}
    for event in events:
        corpus.add(
            f"audit.list {event.id} {event.action} {event.entity_key}", event.model_dump_json()
        )
        corpus.add(f"audit.list {event.id} repr", repr(event))
    with store.engine.connect() as connection:
        rows = connection.execute(sa.text("SELECT * FROM audit_event")).all()
    corpus.add("raw audit_event", [tuple(row) for row in rows])
    assert MASK in corpus.text("raw audit_event")
    finish(corpus, logs, min_items=len(events) * 2)


# -- failed writes -------------------------------------------------------------------------------


def test_failed_writes_never_quote_a_secret(
    echo_store: MetadataStore,
    seeded: Seeded,
    corpus: Corpus,
    logs: list[str],
    store_url: str,
    tmp_path: Path,
) -> None:
    store, sentinel = echo_store, seeded.sentinel
    secret = sentinel.value("failed-write")
    failures: list[tuple[str, Callable[[], Any], type[BaseException]]] = [
        (
            "duplicate component",
            lambda: store.components.create(
                JOB,
                {
                    "name": "probe",
                    "component_type": "test.sentinel_probe",
                    "configuration": {"password": secret},
                },
            ),
            EtlMetaError,
        ),
        (
            "duplicate job",
            lambda: store.jobs.create(
                {
                    "name": JOB,
                    "components": [
                        {"name": "p", "component_type": "t", "configuration": {"token": secret}}
                    ],
                }
            ),
            EtlMetaError,
        ),
        ("unique violation in the database", lambda: _raw_duplicate(store, secret), EtlMetaError),
        ("check violation in the database", lambda: _raw_check(store, secret), EtlMetaError),
        (
            "validation failure",
            lambda: store.components.update(
                JOB, "probe", {"configuration": {"password": secret}, "depends_on": ["nope"]}
            ),
            EtlMetaError,
        ),
        (
            "unreachable server",
            lambda: MetadataStore(_unreachable(secret, "127.0.0.1"), settings=store.settings),
            StoreUnavailableError,
        ),
        (
            "unknown host",
            lambda: MetadataStore(
                _unreachable(secret, "no-such-host.invalid"), settings=store.settings
            ),
            StoreUnavailableError,
        ),
    ]
    for where, call, expected in failures:
        with pytest.raises(expected) as caught:
            call()
        corpus.add_exception(where, caught.value)
    # A wrong key: the runner fails clearly, the display path warns; neither quotes a value.
    other = isolated_settings(tmp_path / "other", secret_keys=Fernet.generate_key().decode())
    with MetadataStore(store_url, settings=other) as wrong_key:
        with pytest.raises(SecretDecryptError) as caught:
            wrong_key.components.configuration(JOB, "probe")
        corpus.add_exception("failed decrypt", caught.value)
        lenient = wrong_key.components.configuration(JOB, "probe", strict=False)
        corpus.add("failed decrypt, lenient", lenient)
        assert lenient["password"] == MASK and lenient["region"] == sentinel.marker
        with pytest.raises(SecretDecryptError) as caught:
            wrong_key.run_requests.run_config(seeded.request_id)
        corpus.add_exception("failed decrypt run config", caught.value)
    assert any("failed decrypt" in line or "cannot decrypt" in line for line in logs)
    finish(corpus, logs, min_items=len(failures) * 5)


def _raw_duplicate(store: MetadataStore, secret: str) -> None:
    """A second ``(job_id, name)`` written past the store's own check: the database refuses it.

    The statement carries the plaintext (nothing encrypted it): what the driver error, the
    translated error and the logs could quote if they quoted parameters or the failing row.
    """
    with store.transaction() as session:
        job = session.scalars(sa.select(models.Job).where(models.Job.name == JOB)).one()
        session.add(
            models.Component(
                job_id=job.id,
                name="probe",
                component_type="test.sentinel_probe",
                configuration={"password": secret, "note": secret},
            )
        )
        session.flush()


def _raw_check(store: MetadataStore, secret: str) -> None:
    """A row breaking ``ck_component_current_version_positive``, plaintext in its parameters."""
    with store.transaction() as session:
        job = session.scalars(sa.select(models.Job).where(models.Job.name == JOB)).one()
        session.add(
            models.Component(
                job_id=job.id,
                name="broken",
                component_type="t",
                configuration={"password": secret, "note": secret},
                config_version=0,
            )
        )
        session.flush()


def _unreachable(secret: str, host: str) -> str:
    return sa.URL.create(
        "postgresql+psycopg", username="etl", password=secret, host=host, port=1, database="x"
    ).render_as_string(hide_password=False)


def test_a_secret_only_the_type_declares_cannot_be_overridden_by_a_run_request(
    store: MetadataStore, sentinel: Sentinel, corpus: Corpus
) -> None:
    stored_url = f"postgresql://etl:{sentinel.value('url')}@warehouse/db"
    store.jobs.create(
        {
            "name": JOB,
            "components": [
                {
                    "name": "load",
                    "component_type": "write_table",
                    "configuration": {"table": "t", "connection_url": stored_url},
                },
                {
                    "name": "probe",
                    "component_type": "test.sentinel_probe",
                    "configuration": {"password": sentinel.value("p")},
                },
            ],
        }
    )
    # A new secret, or the stored password sent to another host: refused, nothing written ...
    with pytest.raises(ValidationError) as caught:
        store.run_requests.create(
            {
                "job": JOB,
                "run_config": {
                    "load": {"connection_url": "postgresql://etl:***@elsewhere/db"},
                    "probe": {"conn": sentinel.value("request-conn")},
                },
            }
        )
    assert {p.field for p in caught.value.problems} == {
        "run_config.load.connection_url",
        "run_config.probe.conn",
    }
    corpus.add("refusal", str(caught.value))
    assert store.run_requests.list() == []
    # ... the masked echoes (what Dagster's Launchpad shows) are accepted, shown masked ...
    echo = {
        "load": {"connection_url": "postgresql://etl:***@warehouse/db"},
        "probe": {"conn": MASK, "region": sentinel.marker},
    }
    request = store.run_requests.create({"job": JOB, "run_config": echo})
    shown = store.run_requests.get(request.id).model_dump_json()
    assert "postgresql://etl:***@warehouse/db" in shown and sentinel.core not in shown
    # ... stored encrypted (rotation finds nothing left in clear) ...
    assert store.secrets.rotate().total == 0
    with store.engine.connect() as connection:
        corpus.add(
            "run_request row", connection.execute(sa.text("SELECT * FROM run_request")).all()
        )
    corpus.assert_clean()
    # ... and the sensor gets the echoes back, which the op resolves to the stored values.
    assert store.run_requests.run_config(request.id) == echo
