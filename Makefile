# Two commands on a fresh machine: `make demo` and `make test` (README, quick start).
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
DEMO_HOME := $(CURDIR)/.passport_home
DEMO_MONTH ?= 2026-10

# The demo and the UI use a git-ignored home in the checkout, unless you point elsewhere.
DEMO_ENV = PASSPORT_HOME=$${PASSPORT_HOME:-$(DEMO_HOME)} \
	DAGSTER_HOME=$${DAGSTER_HOME:-$(DEMO_HOME)/dagster}

.PHONY: install bytecode browser demo test test-internals lint dev bench clean

# pip installs uv, and uv the project: the same packages from PyPI in seconds instead of about a
# minute with pip (a clean clone's `make test` pays it each time). Compiled at install: where
# PYTHONDONTWRITEBYTECODE is set (this machine, CI) no process ever writes a .pyc, and every
# process would compile what it imports from source (a fresh clone's suite took 689 s so).
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet 'uv>=0.9,<1'
	$(BIN)/uv pip install --python $(BIN)/python --quiet --compile-bytecode -e '.[test]'
	touch $(STAMP)

install: $(STAMP) bytecode

# The checkout's own modules, compiled for the same reason (about 0.15 s of CPU per process);
# only what changed since is compiled again.
bytecode: $(STAMP)
	@$(BIN)/python -m compileall -q passport_pipeline passport_pipeline_tests bench

demo: $(STAMP) bytecode
	@$(DEMO_ENV) sh -c 'mkdir -p "$$DAGSTER_HOME" && cp dagster.yaml "$$DAGSTER_HOME/dagster.yaml" && \
		echo "Embedded home: $$PASSPORT_HOME (Dagster instance: $$DAGSTER_HOME)"'
	$(DEMO_ENV) $(BIN)/python -m passport_pipeline.demo.seed
	$(DEMO_ENV) $(BIN)/dagster job execute -m passport_pipeline.definitions \
		-j monthly_passport_covers --tags '{"dagster/partition": "$(DEMO_MONTH)"}' \
		-c passport_pipeline/demo/quiet_console.yaml
	$(DEMO_ENV) $(BIN)/python -m passport_pipeline.cli.progress --partition $(DEMO_MONTH) --covers
	@$(DEMO_ENV) sh -c 'echo "Covers: $$PASSPORT_HOME/images/covers/$(DEMO_MONTH)/"; \
		echo "Passports updated in $$PASSPORT_HOME/app.sqlite3. Open the UI with: make dev"'

# The UI test (passport_pipeline_tests/test_ui.py) drives Debian's Chromium through its
# chromium-driver; no browser is ever downloaded. Installed here when missing (as root).
browser:
	@if [ ! -x /usr/bin/chromium ] || [ ! -x /usr/bin/chromedriver ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -q --no-install-recommends chromium chromium-driver; \
		else \
			echo "The UI test needs Chromium: sudo apt-get install -y chromium chromium-driver" >&2; \
			exit 1; \
		fi; \
	fi

# Four workers on two cores: the suite keeps both cores busy (five and six were slower). The 15
# slowest tests are printed at the end.
PYTEST_WORKERS ?= 4
test: $(STAMP) bytecode browser prometheus
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/pytest -n $(PYTEST_WORKERS) --dist loadgroup --durations=15

# The tripwires of the Dagster internals we use (dagster_internals.py): run these first when the
# dagster pins move; they say by name what an upgrade broke.
test-internals: $(STAMP) bytecode
	$(BIN)/pytest -m internals

dev: $(STAMP) bytecode
	@$(DEMO_ENV) sh -c 'mkdir -p "$$DAGSTER_HOME" && cp dagster.yaml "$$DAGSTER_HOME/dagster.yaml"'
	$(DEMO_ENV) $(BIN)/dagster dev

# The monitoring tests run Debian's Prometheus (and its promtool) against the exporter;
# installed here when missing (as root), as Chromium is.
.PHONY: prometheus
prometheus:
	@if [ ! -x /usr/bin/prometheus ] || [ ! -x /usr/bin/promtool ]; then \
		if [ "$$(id -u)" = 0 ]; then \
			apt-get update -q && DEBIAN_FRONTEND=noninteractive \
				apt-get install -y -q --no-install-recommends prometheus; \
		else \
			echo "The monitoring tests need Prometheus: sudo apt-get install -y prometheus" >&2; \
			exit 1; \
		fi; \
	fi

bench: $(STAMP) bytecode
	$(BIN)/python bench/run_bench.py

clean:
	rm -rf $(VENV) $(DEMO_HOME)
