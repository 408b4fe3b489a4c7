# The two commands of the README, and the steps they share.
#
# Each step runs only when what it depends on changed, so a second `make demo` starts in
# seconds: the Python install when pyproject.toml did (the package itself is installed
# editable, so source changes need no reinstall), `npm ci` when web/package*.json did, and
# the bundle when anything under web/src or web/build.mjs did.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
HOST ?= 127.0.0.1
PORT ?= 8000

INSTALLED := $(VENV)/.installed
NODE_MODULES := web/node_modules/.installed
BUNDLE := src/exportd/web_dist/app.js
WEB_SOURCES := web/build.mjs $(shell find web/src -type f 2>/dev/null)

.PHONY: demo test stress install web bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(INSTALLED): pyproject.toml | $(PY)
	$(PY) -m pip install --quiet -e '.[test]'
	touch $@

install: $(INSTALLED) web

# The browser UI: web/ bundled into src/exportd/web_dist (served at /; not committed).
web: $(BUNDLE)

$(NODE_MODULES): web/package.json web/package-lock.json
	npm ci --prefix web --no-audit --no-fund --loglevel=error
	touch $@

$(BUNDLE): $(NODE_MODULES) $(WEB_SOURCES)
	npm run build --prefix web

demo: install
	$(VENV)/bin/exportd serve --demo --host $(HOST) --port $(PORT)

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
