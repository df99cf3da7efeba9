# Odyssey: `make run` builds the whole graph headless; `make test` runs the tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
# deploy/dagster.yaml's PostgreSQL (make postgres-ui): its credentials, which the file reads from the
# environment (set any of them there or on the command line), its data folder and the Dagster home.
ODYSSEY_PG_USER ?= odyssey
ODYSSEY_PG_PASSWORD ?= odyssey
ODYSSEY_PG_HOST ?= 127.0.0.1
ODYSSEY_PG_PORT ?= 5433
ODYSSEY_PG_DB ?= odyssey
PG_ENV := ODYSSEY_PG_USER='$(ODYSSEY_PG_USER)' ODYSSEY_PG_PASSWORD='$(ODYSSEY_PG_PASSWORD)' \
	ODYSSEY_PG_HOST='$(ODYSSEY_PG_HOST)' ODYSSEY_PG_PORT='$(ODYSSEY_PG_PORT)' ODYSSEY_PG_DB='$(ODYSSEY_PG_DB)'
PG_DATA := .odyssey/postgres
PG_HOME := .odyssey/dagster_postgres_home

.PHONY: install browser postgres-server run test ui postgres-ui mlflow-ui bench clean

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

# The PostgreSQL server of deploy/dagster.yaml (make postgres-ui and its test): Debian's package,
# installed when missing (server binaries in /usr/lib/postgresql/<version>/bin, or ODYSSEY_PG_BIN).
postgres-server:
	@ls /usr/lib/postgresql/*/bin/pg_ctl >/dev/null 2>&1 || [ -x "$$ODYSSEY_PG_BIN/pg_ctl" ] || { \
	  SUDO=$$([ "$$(id -u)" = 0 ] || echo sudo); \
	  $$SUDO apt-get update -qq && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -qq postgresql >/dev/null; }

# Two test processes on two cores: OpenMP threads (XGBoost's, torch's) that wait for work sleep
# instead of spinning, so a process waiting on another core's work does not burn it (about a
# sixth of the suite's CPU time).
test: install browser postgres-server
	OMP_WAIT_POLICY=PASSIVE $(PY) -m pytest -n 2 --dist loadscope

# The UI runs on the settings' Dagster instance (paths.dagster_home), the one make run fills.
ui: install
	DAGSTER_HOME=$$($(PY) -m jobs.main --prepare-only) $(VENV)/bin/dagster dev -h 127.0.0.1 -p 3000 -w workspace.yaml

# The UI and dagster-daemon on the PostgreSQL instance of deploy/dagster.yaml: a local server with its
# data in .odyssey/postgres, then the daemon (it launches the queued runs under the file's limits, and
# its universe_partitions sensor adds the ticker partitions) and the webserver; Ctrl-C stops all three.
postgres-ui: install postgres-server
	@mkdir -p $(PG_HOME) && cp deploy/dagster.yaml $(PG_HOME)/dagster.yaml
	@export $(PG_ENV) DAGSTER_HOME="$(abspath $(PG_HOME))"; \
	$(PY) -m deploy.postgres start $(PG_DATA) || exit 1; \
	trap '$(PY) -m deploy.postgres stop $(PG_DATA)' EXIT; trap 'exit 130' INT TERM; \
	$(VENV)/bin/dagster-daemon run -w workspace.yaml & daemon=$$!; \
	trap 'kill $$daemon 2>/dev/null; wait $$daemon; $(PY) -m deploy.postgres stop $(PG_DATA)' EXIT; \
	$(VENV)/bin/dagster-webserver -h 127.0.0.1 -p 3000 -w workspace.yaml

mlflow-ui: install
	$(VENV)/bin/mlflow ui --backend-store-uri "$$($(PY) -c 'from odyssey.settings import load_settings; print(load_settings().paths.mlflow_tracking_uri)')" --host 127.0.0.1 --port 5000

bench: install
	$(PY) bench/features.py
	$(PY) bench/forecasting.py
	$(PY) bench/portfolio.py
	$(PY) bench/ticks.py
	$(PY) bench/replay.py
	@if [ -d .odyssey/dagster_home ]; then $(PY) bench/lineage.py; \
	else echo "bench/lineage.py times the store that make run builds: run make run first"; fi
	$(PY) bench/daemon.py

clean:
	rm -rf .odyssey
