"""Benchmark the per-ticker forecasting chain on a Dask cluster of one worker against one of two
workers (jobs/distributed.py), each measured in full in the same run, and the same runs in one
process without Dask; the last line printed is one JSON object.

The data layer (`market_features`) is built once, in process, into a temporary home. Each
measurement then starts from its own copy of that home, taken before any forecasting: its own
Dagster instance, table storage and MLflow registry. So every measurement trains and judges the
same candidates against the same (empty) registry, on the same data, with the same XGBoost
parameters and one XGBoost thread per step; the bench checks that they predicted the same.

    one worker:   a local Dask cluster of 1 process x 1 thread; one run at a time
    two workers:  2 processes x 1 thread; two runs side by side
    in process:   jobs.main.run_partitions: the same runs one after another in this process,
                  one thread (XGBoost nthread=1, OpenMP and BLAS limited to one thread as in a
                  worker): the engine's overhead as a reference

A Dask measurement's seconds run from launching the runs to the last run's end, the start of the
run processes inside. One-off costs a long-lived cluster and launcher pay once are outside and
reported on their own: the cluster's start with the workers' loading of the code, and the start
of the server the run processes fork from (jobs.distributed.run_processes), which imports the
graph once for all measurements.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
# `python bench/distributed.py` puts bench/ first on the path, where this file would stand in for
# Dask's `distributed` package; the repository root instead.
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]


def on_dask(settings, workers: int) -> dict:
    """Every ticker's forecasting run on a fresh local cluster of `workers` x 1 thread."""
    from jobs.distributed import load_code_on_workers, local_cluster, run_partitions_on_dask

    started = time.perf_counter()
    with local_cluster(workers) as cluster, cluster.get_client() as client:
        load_code_on_workers(client, settings)
        ready = time.perf_counter() - started
        client.get_task_stream()  # starts the scheduler's task record
        started = time.perf_counter()
        records = run_partitions_on_dask(settings, cluster.scheduler_address, runs=workers)
        seconds = time.perf_counter() - started
        tasks = client.get_task_stream()
    per_worker = Counter(t["worker"] for t in tasks if t["key"].startswith("forecasting."))
    return {"seconds": seconds, "start_seconds": ready, "records": records,
            "steps_per_worker": sorted(per_worker.values(), reverse=True)}


def in_process(settings) -> dict:
    from graph import build_definitions
    from jobs.main import open_instance, prepare_shared_state, run_partitions
    from resources import sync_ticker_partitions

    from threadpoolctl import threadpool_limits

    defs = build_definitions(settings)
    started = time.perf_counter()
    # one thread, as in a Dask worker (its nanny sets OMP_NUM_THREADS, MKL_NUM_THREADS and
    # OPENBLAS_NUM_THREADS to 1): scikit-learn's k-means and BLAS would otherwise use both cores
    with threadpool_limits(limits=1), open_instance(settings) as instance:
        sync_ticker_partitions(instance, list(settings.universe.tickers))
        prepare_shared_state(defs)
        records = run_partitions(defs, instance, list(settings.universe.tickers), "WARNING", xgb_threads=1,
                                 jobs=("forecasting",))
    return {"seconds": time.perf_counter() - started, "records": records}


def predictions(settings) -> dict[str, pd.DataFrame]:
    folder = Path(settings.paths.storage_url) / "tables" / "walkforward_forecasts"
    return {t: pd.read_parquet(folder / f"{t}.parquet") for t in settings.universe.tickers}


def outcome(records: list[dict]) -> dict:
    checks = [c for r in records for c in r["checks"]]
    return {"runs": len(records), "materialized": sum(r["materialized"] for r in records),
            "checks_passed": sum(c["passed"] for c in checks), "checks": len(checks),
            "errors": [e for r in records for e in r["errors"]],
            "gates": sorted((r["partition"], c["check"], c["passed"]) for r in records for c in r["checks"])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", "--profile", dest="preset", default="quick", help="settings preset (settings/)")
    parser.add_argument("--no-in-process", action="store_true", help="skip the in-process reference")
    args = parser.parse_args()
    os.chdir(ROOT)

    import logging

    from graph import build_definitions
    from jobs.distributed import run_processes
    from jobs.main import open_instance
    from odyssey.settings import load_settings, preset_path
    from resources import sync_ticker_partitions

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="odyssey-bench-distributed-") as folder:
        base = load_settings(preset_path(args.preset), environ={}).updated({"paths": {"home": f"{folder}/base"}})
        tickers = list(base.universe.tickers)
        started = time.perf_counter()
        with open_instance(base) as instance:
            sync_ticker_partitions(instance, tickers)
            data = build_definitions(base).resolve_job_def("market_features").execute_in_process(
                instance=instance, raise_on_error=False,
                run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}})
        if not data.success:
            raise SystemExit("market_features failed: no data layer to forecast from")
        data_seconds = time.perf_counter() - started
        print(f"data layer of {base.name} ({len(tickers)} tickers) built in {data_seconds:.1f} s", flush=True)

        def fresh(name: str):
            shutil.copytree(f"{folder}/base", f"{folder}/{name}")
            return base.updated({"paths": {"home": f"{folder}/{name}"}})

        # the server the run processes fork from imports the graph once, for every measurement
        started = time.perf_counter()
        with ProcessPoolExecutor(1, mp_context=run_processes()) as pool:
            pool.submit(os.getpid).result()
        server_seconds = time.perf_counter() - started
        print(f"server of the run processes started in {server_seconds:.1f} s", flush=True)

        measured, homes = {}, {}
        for name, workers in (("one_worker", 1), ("two_workers", 2)):
            homes[name] = fresh(name)
            measured[name] = on_dask(homes[name], workers)
            print(f"  {name:<12} {measured[name]['seconds']:7.1f} s  (cluster start and code loading "
                  f"{measured[name]['start_seconds']:.1f} s, steps per worker {measured[name]['steps_per_worker']})",
                  flush=True)
        if not args.no_in_process:
            homes["in_process"] = fresh("in_process")
            measured["in_process"] = in_process(homes["in_process"])
            print(f"  {'in_process':<12} {measured['in_process']['seconds']:7.1f} s", flush=True)

        reference = predictions(homes["one_worker"])
        max_diff = 0.0
        for name in homes:
            for ticker, frame in predictions(homes[name]).items():
                ref = reference[ticker]
                if len(frame) != len(ref) or not (frame["date"].to_numpy() == ref["date"].to_numpy()).all():
                    raise AssertionError(f"{name} {ticker}: other out-of-sample rows than with one worker")
                max_diff = max(max_diff, float(np.abs(frame["prediction"].to_numpy() - ref["prediction"]).max()))
        outcomes = {name: outcome(m["records"]) for name, m in measured.items()}
        if len({json.dumps(o["gates"]) for o in outcomes.values()}) != 1:
            raise AssertionError(f"the measurements' gate results differ: {outcomes}")

    one, two = measured["one_worker"]["seconds"], measured["two_workers"]["seconds"]
    inproc = measured.get("in_process", {}).get("seconds")
    load = os.getloadavg()
    first = outcomes["one_worker"]
    print()
    print(f"preset {base.name}: {len(tickers)} tickers, one `forecasting` run each (walk-forward, final model, "
          f"5 gates, champion, SHAP), XGBoost nthread=1 per step; {os.cpu_count()} cores, load average "
          f"{load[0]:.1f} / {load[1]:.1f} / {load[2]:.1f} at the end")
    print(f"every measurement: {first['materialized']} materializations, {first['checks_passed']}/{first['checks']} "
          f"gates passed, errors {first['errors'] or 'none'}; predictions agree to {max_diff:.3g} (max abs difference)")
    print()
    print(f"{'measurement':<64} {'value':>10}")
    print(f"{'Dask, 1 worker x 1 thread, 1 run at a time (s)':<64} {one:>10.1f}")
    print(f"{'Dask, 2 workers x 1 thread, 2 runs side by side (s)':<64} {two:>10.1f}")
    print(f"{'speed-up, 2 workers against 1':<64} {one / two:>10.2f}")
    if inproc is not None:
        print(f"{'reference: in process, one thread, runs one after another (s)':<64} {inproc:>10.1f}")
        print(f"{'Dask 1 worker / in process':<64} {one / inproc:>10.2f}")
    print(json.dumps({
        "bench": "distributed",
        "preset": base.name,
        "tickers": len(tickers),
        "one_worker_seconds": round(one, 2),
        "two_worker_seconds": round(two, 2),
        "speedup": round(one / two, 2),
        "in_process_seconds": round(inproc, 2) if inproc is not None else None,
        "one_worker_over_in_process": round(one / inproc, 2) if inproc is not None else None,
        "cluster_start_seconds": {n: round(measured[n]["start_seconds"], 2) for n in ("one_worker", "two_workers")},
        "steps_per_worker": {n: measured[n]["steps_per_worker"] for n in ("one_worker", "two_workers")},
        "data_layer_seconds": round(data_seconds, 2),
        "run_process_server_start_seconds": round(server_seconds, 2),
        "materializations": first["materialized"],
        "checks_passed": first["checks_passed"],
        "checks": first["checks"],
        "errors": sum(len(o["errors"]) for o in outcomes.values()),
        "prediction_max_abs_diff": max_diff,
        "cores": os.cpu_count(),
        "load_average": [round(x, 2) for x in load],
    }))


if __name__ == "__main__":
    main()
