# etl-meta — a newcomer needs two targets: `make demo` and `make test`.
# Everything installs into .venv from pyproject.toml, pinned by requirements/constraints.txt.
# (`make test-core` also builds .venv-core: the core install alone, without any extra.)

PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CORE_VENV := .venv-core
CORE_STAMP := $(CORE_VENV)/.installed-stamp
EXAMPLES := examples/pipeline.yaml

.PHONY: install demo test test-core test-deployment test-distributed scale-profile lint format bench lock schema clean

$(STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "etl-meta needs Python 3.11+"'
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade "pip>=25"
	$(BIN)/python -m pip install --quiet -c requirements/constraints.txt -e '.[dev,all]'
	touch $(STAMP)

install: $(STAMP)

## demo: make sure a secret key exists (a 0600 key file under ETL_META_HOME when
## ETL_META_SECRET_KEYS is unset), migrate the store (embedded SQLite unless
## ETL_META_DATABASE_URL is set), apply the example pipeline, show its jobs and dependency graph, then run every example job through
## Dagster in-process and show what the store recorded (runs, attempts, durations, metrics).
demo: install
	$(BIN)/etl-meta secrets init
	$(BIN)/etl-meta db upgrade
	$(BIN)/etl-meta apply -f $(EXAMPLES)
	$(BIN)/etl-meta jobs list
	$(BIN)/etl-meta jobs show daily_sales
	$(BIN)/etl-meta dagster run daily_sales inventory_snapshot customer_quality_report \
	    --base-dir examples
	$(BIN)/etl-meta runs list --limit 10

## test: lint, then the whole suite (PostgreSQL too when ETL_META_TEST_POSTGRES_URL is set), in
## two worker processes: it halves the wall time on a 2-core machine (CI's), and every test keeps
## its own store, scratch databases and Airflow home, so none depends on another's order.
test: install lint
	$(BIN)/pytest -n 2

## test-core: the core install alone (no pandas, pyarrow, matplotlib, Dagster or Airflow: the
## `test` extra adds only pytest and its helpers) in .venv-core, and the tests of the core there,
## in two workers. tests/conftest.py leaves out the tests of the extras (ETL_META_CORE_ONLY) and
## refuses to run if an extra is installed after all. On SQLite only, to keep CI's budget (the
## full suite runs them on PostgreSQL), then tests/test_core_install.py on PostgreSQL too when
## ETL_META_TEST_POSTGRES_URL is set: the core install's own PostgreSQL path.
test-core: $(CORE_STAMP)
	ETL_META_CORE_ONLY=1 ETL_META_TEST_POSTGRES_URL= $(CORE_VENV)/bin/pytest -n 2
	ETL_META_CORE_ONLY=1 $(CORE_VENV)/bin/pytest tests/test_core_install.py

$(CORE_STAMP): pyproject.toml requirements/constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "etl-meta needs Python 3.11+"'
	test -x $(CORE_VENV)/bin/python || $(PYTHON) -m venv $(CORE_VENV)
	$(CORE_VENV)/bin/python -m pip install --quiet --upgrade "pip>=25"
	$(CORE_VENV)/bin/python -m pip install --quiet -c requirements/constraints.txt -e '.[test]'
	touch $(CORE_STAMP)

## test-deployment: real `dagster dev` and Airflow deployments while the store refuses, hangs or
## is locked, and kill -9 of workers (tests/deployment; docs/internals/deployment-tests.md).
## PostgreSQL too when ETL_META_TEST_POSTGRES_URL is set. Not part of `make test`.
test-deployment: install
	$(BIN)/pytest -m deployment tests/deployment

## test-distributed: the stored jobs on real distributed executors: Airflow's CeleryExecutor
## with two Celery workers, Dagster's run queue with concurrency limits and the multiprocess
## executor, and dagster-celery workers; Redis (127.0.0.1:6379) is the broker. Each run and try
## is compared with the store. Needs ETL_META_TEST_POSTGRES_URL and root (each Airflow worker
## gets a hostname of its own). Not part of `make test` or `make test-deployment`.
test-distributed: install
	$(BIN)/pytest -m distributed tests/deployment

## scale-profile: benchmarks/scale_profile.py at a small size on PostgreSQL (CI: one store of
## 300,000 points as both sizes, to keep the run short): storage per point, ingest, the analyst
## queries, retention, 8 concurrent writers. Figures never fail it; a writer losing,
## duplicating or deadlocking does (--check).
scale-profile: install
	$(BIN)/python benchmarks/scale_profile.py --check --small 300000 --large 300000 \
	    --repeats 1 --writer-runs 5 --writer-steps 5 --postgres-url $(ETL_META_TEST_POSTGRES_URL)

## lint: ruff, mypy, then the import contracts in pyproject.toml: imports only point down the
## layers (docs/internals/layers.md).
lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/lint-imports --no-cache

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: metric ingestion against the raw driver (add POSTGRES_URL=... for PostgreSQL).
bench: install
	$(BIN)/python benchmarks/metric_ingest.py $(if $(POSTGRES_URL),--postgres-url $(POSTGRES_URL))

## lock: re-resolve every dependency into requirements/constraints.txt.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install --quiet --upgrade "pip>=25"
	.lock-venv/bin/python -m pip install --quiet '.[dev,all]'
	{ echo "# Exact versions of every dependency, direct and transitive (Python 3.11, Linux x86_64)."; \
	  echo "# Regenerate with 'make lock' after changing dependencies in pyproject.toml."; \
	  .lock-venv/bin/pip freeze --exclude-editable | grep -v '^etl-meta' | sort -f; } \
	  > requirements/constraints.txt
	rm -rf .lock-venv

## schema: regenerate examples/definitions.schema.json, the JSON Schema editors use for
## definitions files (etl-meta's own component types only; tests fail when it is stale).
schema: install
	$(BIN)/etl-meta schema --builtin-only -o examples/definitions.schema.json

clean:
	rm -rf $(VENV) $(CORE_VENV) dist build .pytest_cache .ruff_cache .mypy_cache
