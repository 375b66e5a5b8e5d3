# The two commands of this project are `make demo` (the main job) and `make test` (the whole
# suite). Both set themselves up on a fresh machine through infra/bootstrap.sh.
VENV ?= .venv
PY := $(VENV)/bin/python
PYTEST_ARGS ?=
DEMO_OUT ?= out/demo

.PHONY: setup demo test lint schemas docs workbook-pages clean

setup:
	@infra/bootstrap.sh

# Sample clips come from $$FOOTFALL_SAMPLES_DIR (or are downloaded), models from
# $$FOOTFALL_MODELS_DIR (or the cache, or their upstreams). The demo needs no training tools.
demo:
	@EXTRAS=$${EXTRAS:-edge,aggregator} infra/bootstrap.sh
	$(VENV)/bin/footfall-aggregator demo --out $(DEMO_OUT)

test: setup
	$(PY) -m pytest $(PYTEST_ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy footfall edge_agent aggregator models tests $(wildcard infra/*.py infra/*/*.py)
	$(VENV)/bin/lint-imports --no-cache --no-logo

schemas: setup
	$(PY) -m footfall.contract.schema

docs: setup
	$(PY) -m infra.config_docs

# PNGs of the demo workbook's printed pages (LibreOffice headless, then pdftoppm) in docs/workbook.
workbook-pages: demo
	$(PY) -m infra.render_workbook $(DEMO_OUT)/demo-high-street.xlsx --png-dir docs/workbook

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache
