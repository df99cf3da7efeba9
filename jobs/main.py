"""Headless run of the whole graph on the configured defaults, ending with a short summary.

    python -m jobs.main [--profile full|quick]

Runs against the same DAGSTER_HOME as `dagster dev` (default: .odyssey/dagster_home), so the
UI shows what this materialized, with its history. Exit code: 0 all built and every check
passed, 2 a blocking check stopped part of the graph, 1 a step failed.
"""

import argparse
import os
import sys
import time
from pathlib import Path

INSTANCE_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 2
"""


def prepare_home() -> Path:
    """Make sure DAGSTER_HOME exists with Odyssey's instance settings."""
    from resources import odyssey_home

    home = Path(os.environ.setdefault("DAGSTER_HOME", str(odyssey_home() / "dagster_home")))
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists():
        config.write_text(INSTANCE_YAML)
    return home


def _run_config(log_level: str) -> dict:
    return {"loggers": {"console": {"config": {"log_level": log_level}}}}


def run_all(defs, instance, log_level: str = "WARNING") -> list:
    """market_features, then the forecasting chain once per ticker partition, then batch
    forecasts. A run stopped by a blocking check does not stop the next stage: each ticker is
    gated on its own, and batch forecasts use whichever champions exist."""
    results = [defs.resolve_job_def("market_features").execute_in_process(
        instance=instance, raise_on_error=False, run_config=_run_config(log_level))]
    if any(not e.passed for e in results[0].get_asset_check_evaluations()) or not results[0].success:
        return results
    forecasting = defs.resolve_job_def("forecasting")
    for ticker in forecasting.partitions_def.get_partition_keys():
        results.append(forecasting.execute_in_process(instance=instance, raise_on_error=False, partition_key=ticker,
                                                      run_config=_run_config(log_level)))
    results.append(defs.resolve_job_def("batch_forecasts").execute_in_process(
        instance=instance, raise_on_error=False, run_config=_run_config(log_level)))
    return results


def summarize(results: list, planned: int, started: float) -> tuple[str, int]:
    import dagster as dg

    from resources import storage_url

    built = [e for r in results for e in r.get_asset_materialization_events()]
    evaluations = [e for r in results for e in r.get_asset_check_evaluations()]
    failed_checks = [e for e in evaluations if not e.passed]
    step_failures = [e for r in results for e in r.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
                     and "blocking asset check" not in (e.event_specific_data.error.message or "")]
    lines = [
        "",
        "Odyssey run summary",
        f"  runs        {len(results)}  ({', '.join(sorted({r.job_def.name for r in results}))})",
        f"  time        {time.perf_counter() - started:.1f} s",
        f"  assets      {len(built)} materializations ({planned} asset keys x partitions planned)",
        f"  checks      {len(evaluations) - len(failed_checks)}/{len(evaluations)} passed",
    ]
    for e in failed_checks:
        partition = f"[{e.partition}]" if getattr(e, "partition", None) else ""
        reason = e.metadata.get("reason")
        lines.append(f"    FAILED    {e.asset_key.to_user_string()}{partition}:{e.check_name}"
                     + (f"  ({reason.value})" if reason is not None else ""))
    for e in step_failures:
        lines.append(f"  step error  {e.step_key}: {e.event_specific_data.error.message.strip().splitlines()[0]}")
    lines.append(f"  outputs     {storage_url()}")
    lines.append(f"  UI          make ui  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    if step_failures:
        code = 1
    elif failed_checks or built and len(built) < planned:
        lines.append("  gate        a blocking check failed: what is downstream of it was not built; the previous "
                     "good versions (and champions) stay in place")
        code = 2
    else:
        code = 0
    return "\n".join(lines), code


def planned_materializations(defs) -> int:
    forecasting = defs.resolve_job_def("forecasting")
    per_ticker = len(forecasting.asset_layer.executable_asset_keys)
    tickers = len(forecasting.partitions_def.get_partition_keys())
    data = len(defs.resolve_job_def("market_features").asset_layer.executable_asset_keys)
    return data + per_ticker * tickers + 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["full", "quick"], help="overrides ODYSSEY_PROFILE")
    parser.add_argument("--log-level", default="WARNING", help="console log level of the runs (DEBUG shows every event)")
    args = parser.parse_args(argv)
    if args.profile:
        os.environ["ODYSSEY_PROFILE"] = args.profile
    prepare_home()

    import dagster as dg

    from definitions import defs

    started = time.perf_counter()
    with dg.DagsterInstance.get() as instance:
        results = run_all(defs, instance, args.log_level)
    text, code = summarize(results, planned_materializations(defs), started)
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
