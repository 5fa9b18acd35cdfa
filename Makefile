# The two README commands: `make run` and `make test`. Everything installs into .venv.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: run test check lint install clean bench-deps

$(STAMP): requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements.txt
	touch $(STAMP)

install: $(STAMP)

run: $(STAMP)
	$(PY) manage.py migrate --no-input
	$(PY) manage.py bootstrap --url http://127.0.0.1:8000/
	$(VENV)/bin/honcho start -f Procfile

test: $(STAMP)
	$(PY) -m pytest

bench-deps: $(STAMP)
	$(PY) -m pip install --quiet --disable-pip-version-check -r bench/requirements.txt

# ruff, then the import contract (pyproject.toml [tool.importlinter]: the layers, a messenger without Django).
lint: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports

# The quick developer loop: lint, then every test that needs neither a browser nor long-running processes, with
# a quarter of the Hypothesis examples (tests/examples.py); `make test` runs everything in full.
check: lint
	$(PY) -m pytest -q -m "not slow and not browser" --hypothesis-profile=check

clean:
	rm -rf $(VENV) .pytest_cache
