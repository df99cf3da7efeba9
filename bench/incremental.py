"""Benchmark one new trading day landing (ingest -> features -> forecasts, then drift for every
ticker) against a full recomputation of the graph, in the same run; the last line printed is one
JSON object.

The run's state (storage, landing folder, Dagster home, MLflow) lives in a temporary folder:
the preset's settings with `paths.home` pointed there.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", "--profile", dest="preset", default="full", help="settings preset (settings/)")
    parser.add_argument("--workers", type=int, default=2, help="processes for the ticker partitions")
    args = parser.parse_args()
    os.chdir(ROOT)  # the worker processes of jobs.main run from the repository root

    from graph import build_definitions
    from jobs.main import open_instance, run_all, run_partitions, run_partitions_in_workers
    from odyssey.landing import synthetic_days, write_landing
    from odyssey.settings import load_settings, preset_path
    from resources.storage import last_landed_day

    home = Path(tempfile.mkdtemp(prefix="odyssey-bench-"))
    # environ={}: no ODYSSEY_* / MLFLOW_* variable of the caller redirects the run's state
    settings = load_settings(preset_path(args.preset), environ={}).updated({"paths": {"home": str(home)}})
    if settings.source.kind != "synthetic":
        raise SystemExit("the incremental benchmark lands synthetic days: it needs source.kind = 'synthetic'")
    profile = settings.profile()
    tickers = list(settings.universe.tickers)
    defs = build_definitions(settings)

    with open_instance(settings) as instance:
        started = time.perf_counter()
        records = run_all(settings, defs, instance, workers=args.workers)
        full_seconds = time.perf_counter() - started
        errors = [e for r in records for e in r["errors"]]
        assert not errors, errors
        checks = [c for r in records for c in r["checks"]]
        blocked = sorted({f"{c['check']}[{r['partition']}]" for r in records for c in r["checks"]
                          if c["blocking"] and not c["passed"]})

        after = last_landed_day(defs.resources["storage"], profile.end, "bars")
        data = synthetic_days(profile, settings.source.synthetic, after, 1)
        files = write_landing(data, settings.paths.landing_dirs[0])

        started = time.perf_counter()
        ingest = defs.resolve_job_def("ingest").execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}},
                        "ops": {"landed_market": {"config": {"files": [str(f) for f in files]}}}})
        ingest_seconds = time.perf_counter() - started
        assert ingest.success, "the ingest run failed"
        drift_started = time.perf_counter()
        if args.workers > 1:
            drift_records = run_partitions_in_workers(settings, tickers, args.workers, "WARNING",
                                                      jobs=("drift_monitoring",))
        else:
            drift_records = run_partitions(defs, instance, tickers, "WARNING", None, jobs=("drift_monitoring",))
        drift_seconds = time.perf_counter() - drift_started
        incremental_seconds = time.perf_counter() - started
        errors = [e for r in drift_records for e in r["errors"]]
        assert not errors, errors

    print(f"preset {settings.name}, {len(tickers)} tickers, {args.workers} workers, new day "
          f"{data.prices['date'].max().date()}, state in {home}")
    print(f"full run: {sum(bool(c['passed']) for c in checks)}/{len(checks)} checks passed"
          + (f"; blocking checks failed: {', '.join(blocked)}" if blocked else ""))
    print(f"{'step':<52} {'seconds':>8}")
    print(f"{'full recomputation (jobs.main run_all, as make run)':<52} {full_seconds:>8.1f}")
    print(f"{'one new day: ingest -> features -> forecasts':<52} {ingest_seconds:>8.1f}")
    print(f"{'one new day: drift for every ticker':<52} {drift_seconds:>8.1f}")
    print(f"{'one new day: total':<52} {incremental_seconds:>8.1f}")
    print(json.dumps({"bench": "incremental", "incremental_seconds": round(incremental_seconds, 2),
                      "full_seconds": round(full_seconds, 2), "speedup": round(full_seconds / incremental_seconds, 2),
                      "ingest_seconds": round(ingest_seconds, 2), "drift_seconds": round(drift_seconds, 2),
                      "tickers": len(tickers), "workers": args.workers}))


if __name__ == "__main__":
    main()
