# Two entry points (see README): `make demo` and `make test`. Both install what they need.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
# The interpreter of a new .venv: the distribution's CPython 3.11 when it can make a venv (Debian and
# Ubuntu ship it as a static, optimised binary, no libpython.so: the replay ran 1.07x-1.17x as fast on it as on
# the pyenv build of 3.11.7 here (shared libpython, no PGO), bench/README.md), else the first python3.11, else python3.
PYTHON ?= $(shell for p in /usr/bin/python3.11 "$$(command -v python3.11)" "$$(command -v python3)"; do \
		[ -x "$$p" ] && "$$p" -c 'import ensurepip, venv' 2>/dev/null && { echo "$$p"; break; }; done)
PYTEST_ARGS ?= -q -rs -p no:cacheprovider
# Wall-clock cap on the whole suite: a hang that pytest-timeout cannot see (e.g. a module-scoped
# event loop stuck cancelling a task at teardown) gets SIGINT, so pytest prints where it was and
# fails well inside CI's 90 minutes instead of silently using them up.
PYTEST_WALL ?= 40m

.PHONY: demo test check install system-deps bench clean-venv

demo: install
	@echo "pmm demo: open the http://127.0.0.1:8866/?token=... URL Voilà prints below (the page needs its token)"
	PMM_VENUE=sandbox $(VENV)/bin/voila apps/control.ipynb

# `check` (ruff + mypy) runs first: a lint or type error fails `make test` before pytest starts.
test: check system-deps
	scripts/with_postgres.sh timeout --signal=INT --kill-after=60 $(PYTEST_WALL) $(PY) -m pytest $(PYTEST_ARGS)

# Lint and type checks (pinned in the [test] extra; config in pyproject.toml).
check: install
	$(VENV)/bin/ruff check pmm_widgets tests bench
	$(VENV)/bin/mypy

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(PY) || test -n "$(PYTHON)" || { echo 'make: no Python 3.11 that can make a venv (Debian: apt-get install python3.11-venv)' >&2; exit 1; }
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
