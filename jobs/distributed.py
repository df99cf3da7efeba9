"""The per-ticker forecasting chain on a Dask cluster: one Dagster run of `forecasting` per ticker
partition, the runs side by side, their steps executed in the cluster's workers (dagster-dask's
executor, orchestrated step by step: jobs/dask_engine.py).

    python -m jobs.distributed [--settings FILE | --profile full|quick] [--scheduler tcp://HOST:8786]
                               [--workers N] [--tickers AAPL,SPY] [--runs N] [--log-level LEVEL]

With --scheduler, the runs use that existing cluster; without it, a local cluster of --workers
processes with one thread each, for the time of the command. Every step runs in a worker with one
XGBoost thread. The data layer must have been built (`market_features`, e.g. by `make run`).

The runs go to the settings' Dagster instance (paths.dagster_home, the one `jobs.main` and
`make ui` use); the workers open it from the instance reference the executor hands them, so each
run's events, each partition's materializations and the gate results are in that one instance.
A worker rebuilds the job from the function `forecasting_on_dask` of this module and the settings
(as JSON), both carried by the run's code pointer: it reads no settings file (the signing key and the
`{env: …}` values of the instance still come from the worker's environment).
A worker of a remote cluster therefore needs this repository at the same path with the project
installed (one image for the launcher and the workers), and the settings' stores reachable under
the same names: an instance on PostgreSQL (deploy/dagster.yaml), the storage URL, MLflow.

Exit code: 0 every run succeeded, 2 a blocking check stopped a ticker (its previous champion
stays), 1 a step failed.
"""

from __future__ import annotations

import argparse
import functools
import logging
import multiprocessing
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import dagster as dg

# graph at import: a worker imports this module through the run's code pointer, whose working
# directory (the repository) is on the path only while the module imports
from graph import build_definitions
from jobs.dask_engine import dask_executor, load_job
from jobs.main import _run_config, open_instance, prepare_shared_state, record, settings_from
from odyssey.settings import Settings
from resources import sync_ticker_partitions

REPO = Path(__file__).resolve().parent.parent
MODULE = "jobs.distributed"  # the code pointer's module, also when this file runs as __main__
JOB = "forecasting"
XGBOOST_OPS = ("walkforward", "forecast_models")


@functools.lru_cache(maxsize=4)
def forecasting_on_dask(settings_json: str) -> dg.JobDefinition:
    """The `forecasting` job of these settings with the Dask executor: what the run's process and
    every worker rebuild from the code pointer (once per process and settings)."""
    defs = build_definitions(Settings.model_validate_json(settings_json))
    return defs.resolve_job_def(JOB).with_executor_def(dask_executor)


def reconstructable_forecasting(settings: Settings) -> dg.ReconstructableJob:
    """A code pointer to `forecasting_on_dask` with the settings as its one argument."""
    return dg.build_reconstructable_job(MODULE, forecasting_on_dask.__name__, (settings.model_dump_json(),),
                                        reconstructor_working_directory=str(REPO))


def dask_run_config(address: str, log_level: str = "WARNING", xgboost: dict | None = None) -> dict:
    """Run config: the executor on the existing cluster at `address`, one XGBoost thread per step,
    and optional overrides of the XGBoost parameters (ForecastConfig fields, as in the launchpad)."""
    config = _run_config(log_level, xgb_threads=1)
    for op in XGBOOST_OPS:
        config["ops"][op]["config"] = {**(xgboost or {}), "nthread": 1}
    config["execution"] = {"config": {"cluster": {"existing": {"address": address}}}}
    return config


def run_partition(settings_json: str, partition: str, address: str, log_level: str = "WARNING",
                  xgboost: dict | None = None) -> dict:
    """One Dagster run of `forecasting` for one ticker partition, orchestrated here, its steps on
    the cluster; what the summary needs from it (jobs.main.record)."""
    settings = Settings.model_validate_json(settings_json)
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with open_instance(settings) as instance:
        with dg.execute_job(reconstructable_forecasting(settings), instance,
                            run_config=dask_run_config(address, log_level, xgboost),
                            tags={"dagster/partition": partition}) as result:
            return record(result, partition)


def run_processes():
    """How run processes start: forked from a server that imported this module once (not from the
    calling process, whose threads and OpenMP state a fork would copy), so that none imports the
    graph again. The server starts with the first run and serves the calling process's later runs."""
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload([MODULE])
    return context


def run_partitions_on_dask(settings: Settings, address: str, partitions: list[str] | None = None,
                           runs: int = 2, log_level: str = "WARNING", xgboost: dict | None = None) -> list[dict]:
    """A run of `forecasting` per ticker partition (default: the universe), `runs` at a time: each
    run is orchestrated in one of `runs` run processes while its steps run on the cluster at
    `address`. Records in the order of `partitions`."""
    partitions = list(settings.universe.tickers) if partitions is None else list(partitions)
    with open_instance(settings) as instance:
        sync_ticker_partitions(instance, list(settings.universe.tickers))
    prepare_shared_state(build_definitions(settings))
    document = settings.model_dump_json()
    records = []
    with ProcessPoolExecutor(max(1, min(runs, len(partitions))), mp_context=run_processes()) as pool:
        futures = [pool.submit(run_partition, document, p, address, log_level, xgboost) for p in partitions]
        for partition, future in zip(partitions, futures):
            try:
                records.append(future.result())
            except Exception as error:  # the run's process died or could not start the run
                records.append({"job": JOB, "partition": partition, "run_id": "-", "materialized": 0, "checks": [],
                                "errors": [f"run process: {type(error).__name__}: {error}"], "advice": []})
    return records


def load_code_on_workers(client, settings: Settings) -> dict[str, int]:
    """Rebuild the job in every worker before the runs, through the code pointer the steps use (a
    worker that cannot import the repository fails here, once, not in every step); worker address
    -> pid."""
    return client.run(load_job, reconstructable_forecasting(settings))


def local_cluster(workers: int, dashboard: bool = False):
    """A Dask cluster on this machine: `workers` processes with one thread each."""
    from dask.distributed import LocalCluster

    return LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                        dashboard_address=":0" if dashboard else None)


def summarize(records: list[dict], seconds: float) -> tuple[str, int]:
    lines = [f"forecasting on Dask: {len(records)} runs in {seconds:.1f} s"]
    for r in records:
        passed = sum(c["passed"] for c in r["checks"])
        lines.append(f"  {r['partition']:<8} run {r['run_id']}  {r['materialized']} materializations, "
                     f"{passed}/{len(r['checks'])} checks passed")
    gates = [(r["partition"], c) for r in records for c in r["checks"] if c["blocking"] and not c["passed"]]
    lines += [f"  FAILED    {c['asset']}[{p}]:{c['check']}" + (f"  ({c['reason']})" if c["reason"] else "")
              for p, c in gates]
    errors = [f"[{r['partition']}] {e}" for r in records for e in r["errors"]]
    lines += [f"  step error  {e}" for e in errors]
    return "\n".join(lines), 1 if errors else 2 if gates else 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", help="a settings file (default: $ODYSSEY_SETTINGS, else odyssey.toml)")
    parser.add_argument("--profile", help="a preset in settings/ (full, quick) instead of a settings file")
    parser.add_argument("--settings-json", help=argparse.SUPPRESS)
    parser.add_argument("--scheduler", help="address of an existing Dask scheduler, e.g. tcp://10.0.0.5:8786 "
                                            "(default: a local cluster of --workers processes)")
    parser.add_argument("--workers", type=int, default=min(2, multiprocessing.cpu_count()),
                        help="processes of the local cluster, one thread each (default: up to 2)")
    parser.add_argument("--tickers", help="comma-separated ticker partitions (default: the universe)")
    parser.add_argument("--runs", type=int, help="runs side by side (default: the cluster's worker threads)")
    parser.add_argument("--log-level", default="WARNING", help="console log level of the runs")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    partitions = args.tickers.split(",") if args.tickers else list(settings.universe.tickers)
    unknown = sorted(set(partitions) - set(settings.universe.tickers))
    if unknown:
        parser.error(f"--tickers: {unknown} not in the universe {list(settings.universe.tickers)}")
    logging.getLogger("mlflow").setLevel(logging.WARNING)

    from dask.distributed import Client

    cluster = None if args.scheduler else local_cluster(args.workers, dashboard=True)
    try:
        address = args.scheduler or cluster.scheduler_address
        with Client(address) as client:
            workers = load_code_on_workers(client, settings)
            threads = sum(w["nthreads"] for w in client.scheduler_info()["workers"].values())
            print(f"Dask scheduler {address}: {len(workers)} workers, {threads} threads; dashboard "
                  f"{client.dashboard_link}", flush=True)
        started = time.perf_counter()
        records = run_partitions_on_dask(settings, address, partitions, runs=args.runs or threads,
                                         log_level=args.log_level)
        seconds = time.perf_counter() - started
    finally:
        if cluster is not None:
            cluster.close()
    text, code = summarize(records, seconds)
    print(text)
    print(f"  instance    DAGSTER_HOME={settings.paths.dagster_home}  (make ui)")
    return code


if __name__ == "__main__":
    # The run processes unpickle the functions of `jobs.distributed`, which their server imported
    # beforehand; they re-create this __main__ from its file, not by importing that module anew.
    sys.modules["__main__"].__spec__ = None
    from jobs.distributed import main as module_main

    sys.exit(module_main())
