# Two entry points for a fresh machine (Python 3.11 + pip + package registries):
#   make run    set up .venv and start the dashboard on its bundled defaults
#   make test   set up .venv (with test tools), lint, and run the whole test suite
PYTHON ?= python3
VENV   ?= .venv
PY      = $(VENV)/bin/python
PORT   ?= 8501
ADDRESS ?= 127.0.0.1

# The dashboard's start command; the Dockerfile's CMD runs the same (checked by tests/test_repo.py).
APP_CMD = streamlit run dashboard/app.py --server.port $(PORT) --server.address $(ADDRESS)

.PHONY: run test lint setup setup-dev bench

$(VENV)/.stamp-run: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q -r requirements.txt
	touch $@

$(VENV)/.stamp-dev: requirements.txt requirements-dev.txt $(VENV)/.stamp-run
	$(PY) -m pip install -q -r requirements-dev.txt
	touch $@

setup: $(VENV)/.stamp-run
setup-dev: $(VENV)/.stamp-dev

run: $(VENV)/.stamp-run
	$(PY) -m $(APP_CMD)

lint: $(VENV)/.stamp-dev
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .

test: lint
	$(PY) -m pytest

bench: $(VENV)/.stamp-run
	$(PY) -m bench.rollout
