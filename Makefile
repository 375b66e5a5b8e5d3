# The two commands of this project are `make demo` (the main job) and `make test` (the whole
# suite). Both set themselves up on a fresh machine through infra/bootstrap.sh.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=

.PHONY: setup test lint schemas clean

setup:
	@infra/bootstrap.sh

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy footfall edge_agent aggregator models tests $(wildcard infra/*.py infra/*/*.py)

schemas: setup
	$(PY) -m footfall.contract.schema

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
