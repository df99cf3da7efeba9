"""Benchmark one new trading day landing (ingest -> features -> forecasts, then drift for every
ticker) against a full recomputation of the graph, in the same run; last line is JSON."""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--profile", default="full")
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="odyssey-bench-"))
    os.environ.update({"ODYSSEY_HOME": str(home), "DAGSTER_HOME": str(home / "dagster_home"),
                       "ODYSSEY_PROFILE": args.profile})
    os.environ.pop("ODYSSEY_STORAGE_URL", None)
    os.environ.pop("MLFLOW_TRACKING_URI", None)
    os.chdir(ROOT)

    from jobs.main import prepare_home, run_all, run_partitions_in_workers

    prepare_home()
    import dagster as dg

    from definitions import defs
    from odyssey.landing import synthetic_days, write_landing
    from resources import build_resources, landing_dirs
    from assets.market import last_landed_day

    with dg.DagsterInstance.get() as instance:
        started = time.perf_counter()
        records = run_all(defs, instance, workers=args.workers)
        full_seconds = time.perf_counter() - started
        assert all(not r["errors"] for r in records), [r["errors"] for r in records if r["errors"]]

        resources = build_resources()
        after = last_landed_day(resources["storage"], resources["market"], "bars")
        data = synthetic_days(resources["market"].universe(), resources["market"].synthetic_config(), after, 1)
        files = write_landing(data, landing_dirs()[0])

        started = time.perf_counter()
        ingest = defs.resolve_job_def("ingest").execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"ops": {"landed_market": {"config": {"files": [str(f) for f in files]}}}})
        ingest_seconds = time.perf_counter() - started
        assert ingest.success
        partitions = defs.resolve_job_def("drift_monitoring").partitions_def.get_partition_keys()
        drift_started = time.perf_counter()
        drift_records = run_partitions_in_workers(partitions, args.workers, "WARNING", jobs=("drift_monitoring",))
        drift_seconds = time.perf_counter() - drift_started
        incremental_seconds = time.perf_counter() - started
        assert all(not r["errors"] for r in drift_records)

    print(f"profile {args.profile}, {len(partitions)} tickers, {args.workers} workers, new day {data.prices['date'].max().date()}")
    print(f"{'step':<52} {'seconds':>8}")
    print(f"{'full recomputation (make run)':<52} {full_seconds:>8.1f}")
    print(f"{'one new day: ingest -> features -> forecasts':<52} {ingest_seconds:>8.1f}")
    print(f"{'one new day: drift for every ticker':<52} {drift_seconds:>8.1f}")
    print(json.dumps({"bench": "incremental", "incremental_seconds": round(incremental_seconds, 2),
                      "full_seconds": round(full_seconds, 2), "speedup": round(full_seconds / incremental_seconds, 2),
                      "ingest_seconds": round(ingest_seconds, 2), "drift_seconds": round(drift_seconds, 2)}))


if __name__ == "__main__":
    main()
