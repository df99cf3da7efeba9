"""Benchmark one new trading day landing against a full recomputation of the graph, in the same
run; the last line printed is one JSON object.

The new day's path is the ingest run: landing files -> raw -> clean -> features -> exports ->
forecasts and the forecast log -> every ticker's live skill and drift decision
(`incremental_seconds`, with the drift step and its check as `drift_seconds` and the live-skill
scoring of every ticker with its check as `live_seconds`).

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
    from jobs.main import open_instance, run_all
    from odyssey.drift import DRIFTED_KEY
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
        incremental_seconds = time.perf_counter() - started
        assert ingest.success, "the ingest run failed"
        steps = step_seconds(instance, ingest.run_id)
        drift_seconds = sum(v for k, v in steps.items() if k.startswith("feature_drift"))
        drifted = [e.metadata[DRIFTED_KEY].value for e in ingest.get_asset_check_evaluations()
                   if e.check_name == "feature_drift_check"][0]
        live_seconds = sum(v for k, v in steps.items() if k.startswith("forecast_outcomes"))

    print(f"preset {settings.name}, {len(tickers)} tickers, {args.workers} workers, new day "
          f"{data.prices['date'].max().date()}, state in {home}")
    print(f"full run: {sum(bool(c['passed']) for c in checks)}/{len(checks)} checks passed"
          + (f"; blocking checks failed: {', '.join(blocked)}" if blocked else ""))
    print(f"{'step':<56} {'seconds':>8}")
    print(f"{'full recomputation (jobs.main run_all, as make run)':<56} {full_seconds:>8.1f}")
    print(f"{'one new day: ingest -> features -> forecasts -> live skill, drift':<56} {incremental_seconds:>8.1f}")
    print(f"{'  of which drift for every ticker (step and check)':<56} {drift_seconds:>8.1f}")
    print(f"{'  of which live skill for every ticker (step and check)':<56} {live_seconds:>8.1f}")
    print(f"drifted on the new day: {', '.join(sorted(drifted)) or 'none'}")
    print(json.dumps({"bench": "incremental", "incremental_seconds": round(incremental_seconds, 2),
                      "full_seconds": round(full_seconds, 2), "speedup": round(full_seconds / incremental_seconds, 2),
                      "drift_seconds": round(drift_seconds, 2), "live_seconds": round(live_seconds, 2),
                      "drifted": sorted(drifted), "tickers": len(tickers), "workers": args.workers}))


def step_seconds(instance, run_id: str) -> dict[str, float]:
    """Each step's seconds from its start to its end, as the run's event log recorded them."""
    import dagster as dg

    starts, out = {}, {}
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_START:
            starts[event.step_key] = entry.timestamp
        elif event.event_type in (dg.DagsterEventType.STEP_SUCCESS, dg.DagsterEventType.STEP_FAILURE):
            out[event.step_key] = entry.timestamp - starts[event.step_key]
    return out

if __name__ == "__main__":
    main()
