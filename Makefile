# One entry point per job. `make test` is what README and .ci/run call.
PY ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: install install-integration test lint typecheck unit run demo package deploy bench clean

$(STAMP): requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -r requirements-dev.txt
	$(BIN)/python -m pip install -q --no-deps -e .
	touch $(STAMP)

install: $(STAMP)

# The real-HiveServer2 suite also needs pyspark (a 455 MB sdist) and a JDK; .ci/run installs both.
install-integration: $(STAMP)
	$(BIN)/python -m pip install -q -r requirements-integration.txt

lint: $(STAMP)
	$(BIN)/ruff check monitor checks recover tests bench deploy

typecheck: $(STAMP)
	$(BIN)/mypy
	$(BIN)/mypy deploy

# Lint, types, then every test (unit, functional on moto, integration on 127.0.0.1 servers).
test: lint typecheck
	$(BIN)/python -m pytest $(PYTEST_ARGS)

unit: $(STAMP)
	$(BIN)/python -m pytest tests/unit $(PYTEST_ARGS)

# Run the main job once on the embedded demo (moto account + local HiveServer2 server).
run demo: $(STAMP)
	$(BIN)/sentinel sandbox

bench: $(STAMP)
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache .mypy_cache .ruff_cache

# make package | deploy ENV=... | deploy-cfn | config-upload | iam-check | iam-write
include deploy/deploy.mk
