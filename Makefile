# Odyssey: `make run` builds the whole graph headless; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python

.PHONY: install browser run test ui mlflow-ui bench clean

# The pinned dependencies of pyproject.toml; Odyssey itself runs from this folder, not installed.
$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c constraints.txt $$($(PY) -c "import tomllib; p = tomllib.load(open('pyproject.toml', 'rb'))['project']; print(' '.join(p['dependencies'] + p['optional-dependencies']['test']))")
	touch $@

install: $(VENV)/.installed

run: install
	$(PY) -m jobs.main

# The report test renders HTML in headless Chromium: Debian's package, installed when missing.
browser:
	@command -v chromium >/dev/null 2>&1 || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq chromium >/dev/null; }

test: install browser
	$(PY) -m pytest

# The UI runs on the settings' Dagster instance (paths.dagster_home), the one make run fills.
ui: install
	DAGSTER_HOME=$$($(PY) -m jobs.main --prepare-only) $(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

mlflow-ui: install
	$(VENV)/bin/mlflow ui --backend-store-uri "$$($(PY) -c 'from odyssey.settings import load_settings; print(load_settings().paths.mlflow_tracking_uri)')" --host 127.0.0.1 --port 5000

bench: install
	$(PY) bench/features.py
	$(PY) bench/forecasting.py
	$(PY) bench/portfolio.py
	$(PY) bench/ticks.py
	@if [ -d .odyssey/dagster_home ]; then $(PY) bench/lineage.py; \
	else echo "bench/lineage.py times the store that make run builds: run make run first"; fi

clean:
	rm -rf .odyssey
