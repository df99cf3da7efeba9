"""Headless run of the whole graph on the configured defaults, ending with a short summary.

    python -m jobs.main [--profile full|quick] [--job odyssey_main]

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


def summarize(result, job, started: float) -> tuple[str, int]:
    import dagster as dg

    from resources import storage_url

    built = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    planned = {k.to_user_string() for k in job.asset_layer.executable_asset_keys}
    evaluations = result.get_asset_check_evaluations()
    failed_checks = [e for e in evaluations if not e.passed]
    step_failures = [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE]
    lines = [
        "",
        "Odyssey run summary",
        f"  run id      {result.run_id}",
        f"  time        {time.perf_counter() - started:.1f} s",
        f"  assets      {len(built)}/{len(planned)} materialized",
        f"  checks      {len(evaluations) - len(failed_checks)}/{len(evaluations)} passed",
    ]
    for e in failed_checks:
        lines.append(f"    FAILED    {e.asset_key.to_user_string()}:{e.check_name}")
    skipped = sorted(planned - built)
    if skipped:
        lines.append(f"  not built   {', '.join(skipped)}")
    for e in step_failures:
        lines.append(f"  step error  {e.step_key}: {e.event_specific_data.error.message.strip().splitlines()[0]}")
    lines.append(f"  outputs     {storage_url()}")
    lines.append(f"  UI          make ui  (DAGSTER_HOME={os.environ['DAGSTER_HOME']})")
    if step_failures:
        code = 1
    elif failed_checks or skipped:
        lines.append("  gate        a blocking check failed: downstream assets were not built; "
                     "the previous good versions stay in place")
        code = 2
    else:
        code = 0
    return "\n".join(lines), code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--profile", choices=["full", "quick"], help="overrides ODYSSEY_PROFILE")
    parser.add_argument("--job", default="odyssey_main")
    parser.add_argument("--log-level", default="WARNING", help="console log level of the run (DEBUG shows every event)")
    args = parser.parse_args(argv)
    if args.profile:
        os.environ["ODYSSEY_PROFILE"] = args.profile
    prepare_home()

    import dagster as dg

    from definitions import defs

    started = time.perf_counter()
    job = defs.resolve_job_def(args.job)
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance, raise_on_error=False,
            run_config={"loggers": {"console": {"config": {"log_level": args.log_level}}}},
        )
    text, code = summarize(result, job, started)
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
