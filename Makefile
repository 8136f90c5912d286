# Two entry points (see README): `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
PYTHON ?= $(shell command -v python3.11 || command -v python3)
PYTEST_ARGS ?= -q -rs -p no:cacheprovider

.PHONY: demo test install system-deps bench clean-venv

demo: install
	PMM_VENUE=sandbox $(VENV)/bin/voila apps/control.ipynb

test: install system-deps
	scripts/with_postgres.sh $(PY) -m pytest $(PYTEST_ARGS)

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -e '.[test]'
	touch $@

# Debian packages the tests use: chromium (browser tests) and PostgreSQL (store tests).
system-deps:
	scripts/system_deps.sh

bench: install
	$(PY) bench/bench_writer.py

clean-venv:
	rm -rf $(VENV)
