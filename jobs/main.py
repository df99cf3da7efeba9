"""Headless run of the whole graph on the settings, ending with a short summary.

    python -m jobs.main [--settings FILE | --profile full|quick] [--workers N]

Settings: FILE, else the preset settings/<profile>.toml, else $ODYSSEY_SETTINGS, else odyssey.toml.
Order: `market_features` and `market_memory`; per ticker partition `evaluation` (the walk-forward), then per ticker
`deployment` (each has_skill verdict is family-wise over every ticker's walk-forward; tickers spread
over worker processes, one XGBoost thread each); `batch_forecasts` (which also scores every
champion's live forecasts in the log it writes); `drift_reports` (every ticker's drift, with
Evidently's reports); `portfolio`; the tick pipeline `ticks`; and last the `lineage` document.
Runs go to the same Dagster instance as `make ui` (settings paths.dagster_home, default
.odyssey/dagster_home), so the UI shows what this materialized, with its history. Exit code: 0
all built and every check passed, 2 a blocking check stopped part of the graph (reported,
not a crash), 1 a step failed.
"""

import argparse
import json
import logging
import multiprocessing
import subprocess
import sys
import tempfile
import time
from pathlib import Path

INSTANCE_YAML = """\
telemetry:
  enabled: false
run_coordinator:
  module: dagster._core.run_coordinator
  class: QueuedRunCoordinator
  config:
    # the daemon looks for queued runs every second (Dagster's default: 5), so a landing's ingest
    # starts as soon as its sensor asked for it
    dequeue_interval_seconds: 1
concurrency:
  runs:
    max_concurrent_runs: 2
    tag_concurrency_limits:
      # runs tagged odyssey/queue (the ingest job's): one in progress per value, so ingests never overlap
      - key: odyssey/queue
        value:
          applyLimitPerUniqueValue: true
        limit: 1
  pools:
    # every pool one step at a time: qdrant_index (one writer of the market-state index) and
    # landed_tables (one landing extends the landed tables at a time)
    default_limit: 1
"""
# What earlier versions wrote: replaced by the current settings, never a user's own file.
EARLIER_INSTANCE_YAMLS = (
    "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster._core.run_coordinator\n"
    "  class: QueuedRunCoordinator\nconcurrency:\n  runs:\n    max_concurrent_runs: 2\n    tag_concurrency_limits:\n"
    "      # runs tagged odyssey/queue (the ingest job's): one in progress per value, so ingests never overlap\n"
    "      - key: odyssey/queue\n        value:\n          applyLimitPerUniqueValue: true\n        limit: 1\n"
    "  pools:\n    # every pool one step at a time: qdrant_index (one writer of the market-state index) and\n"
    "    # landed_tables (one landing extends the landed tables at a time)\n    default_limit: 1\n",
    "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster._core.run_coordinator\n"
    "  class: QueuedRunCoordinator\n  config:\n    max_concurrent_runs: 2\n",
    "telemetry:\n  enabled: false\nrun_coordinator:\n  module: dagster._core.run_coordinator\n"
    "  class: QueuedRunCoordinator\nconcurrency:\n  runs:\n    max_concurrent_runs: 2\n  pools:\n"
    "    default_limit: 1  # the one pool, qdrant_index: one writer of the market-state index at a time\n",
)
RECORD = "ODYSSEY_RUN_RECORD "


def prepare_home(settings) -> Path:
    """Make sure the Dagster home of the settings exists with Odyssey's instance settings."""
    home = Path(settings.paths.dagster_home)
    home.mkdir(parents=True, exist_ok=True)
    config = home / "dagster.yaml"
    if not config.exists() or config.read_text() in EARLIER_INSTANCE_YAMLS:
        config.write_text(INSTANCE_YAML)
    return home


def open_instance(settings):
    import dagster as dg

    return dg.DagsterInstance.from_config(str(prepare_home(settings)))


def prepare_shared_state(defs) -> None:
    """Create what worker processes share before they start: the MLflow database (its schema
    migrations must not race) and the signing key (two workers must not each generate one)."""
    resources = defs.resources
    resources["mlflow"].tracker().experiment_id()
    resources["signer"].key()


# the ops of each per-ticker job that train XGBoost (their thread count is set per run)
XGB_OPS = {"evaluation": ("walkforward",), "deployment": ("forecast_models",),
           "forecasting": ("walkforward", "forecast_models")}


def _run_config(log_level: str, xgb_threads: int | None = None, job: str = "forecasting") -> dict:
    config: dict = {"loggers": {"console": {"config": {"log_level": log_level}}}}
    if xgb_threads and XGB_OPS.get(job):
        config["ops"] = {op: {"config": {"nthread": xgb_threads}} for op in XGB_OPS[job]}
    return config


def error_text(error) -> str:
    """The error a person can act on: the outermost error under Dagster's wrappers (the one the
    step's code or an IO manager raised, e.g. a SourceError naming file and line, not the library
    error it wraps; NoAcceptedVersion, not the input-loading error around it), as `Class: message`."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause or error.context
    # Dagster's own errors that wrap another (step execution, loading an input, handling an
    # output, starting a resource) say where; the error under them says what
    own = [e for e in chain if not (e.cls_name.startswith("Dagster") and (e.cause or e.context))] or chain
    raised = own[0]
    message = raised.message.strip()
    head, _, rest = message.partition(": ")
    if head.rsplit(".", 1)[-1] == raised.cls_name:  # "package.module.Class: text" -> "Class: text"
        message = f"{raised.cls_name}: {rest}"
    return " ".join(message.split())[:2000]


def record(result, partition: str | None = None) -> dict:
    """What the summary needs from one run, as plain data (workers send it to the parent)."""
    import dagster as dg

    from odyssey.gates import EVALUABLE_KEY

    checks = [{"asset": e.asset_key.to_user_string(), "check": e.check_name, "passed": e.passed,
               # a blocking check that fails with severity WARN orders the run but stops nothing
               "blocking": bool(e.blocking) and e.severity == dg.AssetCheckSeverity.ERROR,
               "reason": e.metadata["reason"].value if "reason" in e.metadata else None,
               # a check with nothing to judge yet passes; the summary counts it apart
               "evaluable": bool(e.metadata[EVALUABLE_KEY].value) if EVALUABLE_KEY in e.metadata else True}
              for e in result.get_asset_check_evaluations()]
    errors = [f"{e.step_key}: {error_text(e.event_specific_data.error)}"
              for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE
              and "blocking asset check" not in (e.event_specific_data.error.message or "")]
    advice = [str(m.metadata["advice"].value) for e in result.get_asset_materialization_events()
              if (m := e.materialization).asset_key == dg.AssetKey("recommendations") and "advice" in m.metadata]
    return {"job": result.job_def.name, "partition": partition, "run_id": result.run_id,
            "materialized": len(result.get_asset_materialization_events()), "checks": checks, "errors": errors,
            "advice": advice}


# every ticker's walk-forward before any deployment: each has_skill verdict is family-wise over the
# universe's skill evidence
PER_TICKER_JOBS = ("evaluation", "deployment")


def run_partitions(defs, instance, partitions: list[str], log_level: str, xgb_threads: int | None,
                   jobs: tuple[str, ...] = PER_TICKER_JOBS) -> list[dict]:
    """Per ticker, the given partitioned jobs in order."""
    out = []
    for partition in partitions:
        for job in jobs:
            config = _run_config(log_level, xgb_threads, job)
            result = defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False,
                                                                   partition_key=partition, run_config=config)
            out.append(record(result, partition))
    return out


def run_partitions_in_workers(settings, partitions: list[str], workers: int, log_level: str,
                              jobs: tuple[str, ...] = PER_TICKER_JOBS) -> list[dict]:
    """Spread the ticker partitions over worker processes; each runs its share in process, with
    the same settings (handed over as a file)."""
    chunks = [partitions[i::workers] for i in range(workers) if partitions[i::workers]]
    records = []
    with tempfile.TemporaryDirectory(prefix="odyssey-settings-") as folder:
        shared = Path(folder) / "settings.json"
        shared.write_text(settings.model_dump_json())
        procs = [subprocess.Popen([sys.executable, "-m", "jobs.main", "--worker", ",".join(chunk), "--worker-jobs",
                                   ",".join(jobs), "--log-level", log_level, "--settings-json", str(shared)],
                                  stdout=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parent.parent)
                 for chunk in chunks]
        for proc in procs:
            out, _ = proc.communicate()
            records += [json.loads(line[len(RECORD):]) for line in out.splitlines() if line.startswith(RECORD)]
            if proc.returncode != 0:
                records.append({"job": ",".join(jobs), "partition": None, "run_id": "-", "materialized": 0,
                                "checks": [], "errors": [f"worker exited with code {proc.returncode}"]})
    return records


def run_all(settings, defs, instance, log_level: str = "WARNING", workers: int = 1) -> list[dict]:
    """market_features, market_memory, the forecasting chain per ticker, batch forecasts with every
    ticker's live skill, drift for every ticker, the portfolio, the tick pipeline and the lineage
    document. A ticker stopped by a gate does not stop the others: each is gated on its own, and
    batch forecasts use whichever champions exist."""
    from resources import sync_ticker_partitions

    partitions = list(settings.universe.tickers)
    sync_ticker_partitions(instance, partitions)
    data = defs.resolve_job_def("market_features").execute_in_process(
        instance=instance, raise_on_error=False, run_config=_run_config(log_level))
    records = [record(data)]
    if not data.success:
        return records
    memory = defs.resolve_job_def("market_memory").execute_in_process(
        instance=instance, raise_on_error=False, run_config=_run_config(log_level))
    records.append(record(memory))
    prepare_shared_state(defs)

    def per_ticker(job: str) -> list[dict]:
        if workers > 1:
            return run_partitions_in_workers(settings, partitions, workers, log_level, jobs=(job,))
        return run_partitions(defs, instance, partitions, log_level, None, jobs=(job,))

    def whole(job: str) -> dict:
        return record(defs.resolve_job_def(job).execute_in_process(instance=instance, raise_on_error=False,
                                                                   run_config=_run_config(log_level)))

    # the order of the graph: the live forecasts are scored after the new champions logged theirs
    records += per_ticker("evaluation") + per_ticker("deployment")
    records += [whole("batch_forecasts"), whole("drift_reports")]
    records += [whole("portfolio"), whole("ticks"), whole("lineage_document")]
    return records


def _by_check(checks: list[dict]) -> dict[tuple[str, str], list[dict]]:
    groups: dict[tuple[str, str], list[dict]] = {}
    for c in checks:
        groups.setdefault((c["asset"], c["check"]), []).append(c)
    return groups


def summarize(settings, records: list[dict], planned: int, started: float) -> tuple[str, int]:
    from odyssey.gates import NOT_EVALUABLE

    built = sum(r["materialized"] for r in records)
    checks = [dict(c, partition=r["partition"]) for r in records for c in r["checks"]]
    failed = [c for c in checks if not c["passed"]]
    waiting = [c for c in checks if c["passed"] and not c.get("evaluable", True)]
    gates = [c for c in failed if c["blocking"]]
    errors = [e for r in records for e in r["errors"]]
    lines = [
        "",
        "Odyssey run summary",
        f"  runs        {len(records)}  ({', '.join(sorted({r['job'] for r in records}))})",
        f"  time        {time.perf_counter() - started:.1f} s",
        f"  assets      {built}/{planned} materializations (asset x ticker partition)",
        f"  checks      {len(checks) - len(failed) - len(waiting)}/{len(checks)} passed, {len(waiting)} not yet "
        f"evaluable (nothing to judge yet), {len(failed)} failed",
    ]
    for (asset, check), group in _by_check(waiting).items():
        where = f"[{', '.join(c['partition'] for c in group)}]" if group[0]["partition"] else ""
        reason = " ".join(str(group[0]["reason"]).split())[:300] if group[0]["reason"] else NOT_EVALUABLE
        lines.append(f"    WAITING   {asset}{where}:{check}  ({reason}{', ...' if len(group) > 1 else ''})")
    for c in failed:
        where = f"[{c['partition']}]" if c["partition"] else ""
        label = "FAILED   " if c["blocking"] else "WARNING  "
        reason = " ".join(str(c["reason"]).split())[:1500] if c["reason"] else "no reason recorded: see the check in the UI"
        lines.append(f"    {label} {c['asset']}{where}:{c['check']}  ({reason})")
    lines += [f"  step error  {e}" for e in errors]
    lines += [f"  advice      recommendations from {a}" for r in records for a in r.get("advice", [])]
    lines.append(f"  settings    {settings.name}: {len(settings.universe.tickers)} tickers, {settings.dates.start} .. "
                 f"{settings.dates.end}, source {settings.source.kind}")
    lines.append(f"  outputs     {settings.paths.storage_url}")
    lines.append(f"  lineage     {settings.paths.storage_url}/reports/lineage.md;  verify: python -m jobs.lineage --verify")
    lines.append(f"  UI          make ui  (DAGSTER_HOME={settings.paths.dagster_home});  MLflow: make mlflow-ui")
    if errors:
        code = 1
    elif gates or built < planned:
        lines.append("  gate        a blocking check failed: what is downstream of it was not built; downstream "
                     "assets read the last versions that passed (and the champions stay): "
                     "python -m jobs.restore ASSET --list")
        code = 2
    else:
        code = 0
    return "\n".join(lines), code


def planned_materializations(defs, tickers: int) -> int:
    def size(job: str) -> int:
        return len(defs.resolve_job_def(job).asset_layer.executable_asset_keys)

    per_ticker = size("evaluation") + size("deployment")
    return (size("market_features") + size("market_memory") + per_ticker * tickers + size("batch_forecasts")
            + size("drift_reports")
            + size("portfolio") + size("ticks") + size("lineage_document"))


def settings_from(args):
    from odyssey.settings import Settings, load_settings, preset_path

    if args.settings_json:
        return Settings.model_validate_json(Path(args.settings_json).read_text())
    if args.settings:
        return load_settings(args.settings)
    if args.profile:
        return load_settings(preset_path(args.profile))
    return load_settings()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--settings", help="a settings file (default: $ODYSSEY_SETTINGS, else odyssey.toml)")
    parser.add_argument("--profile", help="a preset in settings/ (full, quick) instead of a settings file")
    parser.add_argument("--workers", type=int, default=min(2, multiprocessing.cpu_count()),
                        help="processes for the ticker partitions (default: up to 2)")
    parser.add_argument("--log-level", default="WARNING", help="console log level of the runs (DEBUG shows every event)")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run these partitions, print records
    parser.add_argument("--worker-jobs", default=",".join(PER_TICKER_JOBS), help=argparse.SUPPRESS)
    parser.add_argument("--settings-json", help=argparse.SUPPRESS)  # internal: the parent's settings
    parser.add_argument("--prepare-only", action="store_true",
                        help="create the Dagster home and the ticker partitions and print the home, run nothing "
                             "(make ui)")
    args = parser.parse_args(argv)
    settings = settings_from(args)
    # MLflow logs its database migrations at INFO on the first run; nothing a user acts on.
    logging.getLogger("mlflow").setLevel(logging.WARNING)
    if args.prepare_only:
        from resources import sync_ticker_partitions

        with open_instance(settings) as instance:
            sync_ticker_partitions(instance, list(settings.universe.tickers))
        print(settings.paths.dagster_home)  # for DAGSTER_HOME=$(python -m jobs.main --prepare-only) dagster dev
        return 0

    from graph import build_definitions

    defs = build_definitions(settings)
    if args.worker:
        with open_instance(settings) as instance:
            for rec in run_partitions(defs, instance, args.worker.split(","), args.log_level, xgb_threads=1,
                                      jobs=tuple(args.worker_jobs.split(","))):
                print(RECORD + json.dumps(rec), flush=True)
        return 0

    started = time.perf_counter()
    with open_instance(settings) as instance:
        records = run_all(settings, defs, instance, args.log_level, args.workers)
    text, code = summarize(settings, records, planned_materializations(defs, len(settings.universe.tickers)), started)
    print(text)
    return code


if __name__ == "__main__":
    sys.exit(main())
