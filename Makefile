# Odyssey: `make run` builds the whole graph headless; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export DAGSTER_HOME ?= $(CURDIR)/.odyssey/dagster_home

.PHONY: install run test ui mlflow-ui bench clean

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt -e ".[test]"
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m jobs.main

test: install
	$(PY) -m pytest

ui: install
	$(PY) -c "from jobs.main import prepare_home; prepare_home()"
	$(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

mlflow-ui: install
	$(VENV)/bin/mlflow ui --backend-store-uri sqlite:///$(CURDIR)/.odyssey/mlflow/mlflow.db --host 127.0.0.1 --port 5000

bench: install
	$(PY) bench/features.py
	$(PY) bench/forecasting.py

clean:
	rm -rf .odyssey
