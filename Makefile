# The two commands of the README, and the steps they share.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python

.PHONY: demo test stress install web bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

install: $(PY) web
	$(PY) -m pip install --quiet -e '.[test]'

# The browser UI: web/ bundled into src/exportd/web_dist (served at /; not committed).
web:
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	npm run build --prefix web

demo: install
	$(VENV)/bin/exportd serve --demo

test: install
	npm test --prefix web
	$(PY) -m pytest

# The long proof runs (the `stress` marker): thousands of fuzzed socket messages, forced races, faults.
stress: install
	$(PY) -m pytest -m stress

bench: install
	$(PY) -m pip install --quiet -e '.[test,bench]'
	$(PY) bench/run_all.py

clean:
	rm -rf $(VENV) exportd-data .pytest_cache web/node_modules src/exportd/web_dist
