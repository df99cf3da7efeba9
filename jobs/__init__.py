"""Jobs: the data layer, the per-ticker forecasting chain, monitoring, batch forecasts, the
portfolio, ingestion of new sessions, the lineage document, the tick pipeline, and everything."""

import dagster as dg
import pandas as pd

from odyssey.calendar import sessions
from resources.settings import SettingsResource

DATA_GROUPS = ("market", "features")

# Each job's executor, for runs launched from the UI, a sensor, a schedule or the CLI (`make run`
# executes in its own processes). The light jobs, and the ingest that a landing waits for, run
# their steps in the run's process: no step pays a process start and a load of the code location
# (about 2 s each, in a chain of 30). The heavy ones (the data layer, forecasting, the portfolio,
# the whole graph) use graph.STEP_PROCESSES, steps side by side in processes forked from one that
# loaded the code once.
IN_PROCESS = dg.in_process_executor

# Runs that carry this tag run one at a time per value: the instance's run queue limits it to one in
# progress per value (jobs/main.py INSTANCE_YAML, deploy/dagster.yaml).
QUEUE_TAG = "odyssey/queue"

main_job = dg.define_asset_job(
    "odyssey_main",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets("lineage"),
    description="The whole graph (for the UI); `make run` runs the jobs below in order. The lineage document "
                "follows each successful run (sensor lineage_after_runs).",
)
market_features_job = dg.define_asset_job(
    "market_features",
    selection=dg.AssetSelection.groups(*DATA_GROUPS) | dg.AssetSelection.assets("data_quality_report"),
    description="Load, clean, engineer, split, scale and export market features, and embed the market states.",
)
market_memory_job = dg.define_asset_job(
    "market_memory",
    selection=dg.AssetSelection.groups("memory"),
    description="Write the market states into the Qdrant index (incrementally) and ask it about the newest session.",
    executor_def=IN_PROCESS,
)
forecasting_job = dg.define_asset_job(
    "forecasting",
    selection=dg.AssetSelection.assets("walkforward_forecasts", "walkforward_summary", "forecast_models",
                                       "shap_importance", "deployed_models", "analog_forecasts", "analog_summary"),
    description="One ticker partition: walk-forward, final model, SHAP, deployment gates, champion; the analog "
                "forecast on the same folds.",
)
evaluation_job = dg.define_asset_job(
    "evaluation",
    selection=dg.AssetSelection.assets("walkforward_forecasts", "walkforward_summary", "analog_forecasts",
                                       "analog_summary"),
    description="One ticker partition: the walk-forward, its skill evidence, and the analog forecast on the same "
                "folds. `make run` runs it for every ticker before any `deployment`, so that each has_skill verdict "
                "sees the whole universe's evidence.",
)
deployment_job = dg.define_asset_job(
    "deployment",
    selection=dg.AssetSelection.assets("forecast_models", "shap_importance", "deployed_models"),
    description="One ticker partition, after its `evaluation`: final model, SHAP, deployment gates, champion.",
)
live_monitoring_job = dg.define_asset_job(
    "live_monitoring",
    selection=dg.AssetSelection.assets("forecast_outcomes"),
    description="Every champion's live forecasts scored against what happened, again (the ingest and the batch "
                "forecasts score them as they log them; its check feeds the retraining sensor).",
    executor_def=IN_PROCESS,
)
drift_reports_job = dg.define_asset_job(
    "drift_reports",
    selection=dg.AssetSelection.assets("feature_drift"),
    config={"ops": {"feature_drift": {"config": {"reports": "all"}}}},
    description="Every ticker's drift against its champion's training window, with Evidently's HTML and JSON reports "
                "for every ticker (a landing writes them only for the tickers that drifted).",
    executor_def=IN_PROCESS,
)
batch_forecasts_job = dg.define_asset_job(
    "batch_forecasts",
    selection=dg.AssetSelection.assets("forecasts", "forecast_log", "forecast_outcomes"),
    description="Newest-session forecasts for every ticker from the champion models, the live forecast log, and "
                "every champion's live forecasts scored against what happened.",
    executor_def=IN_PROCESS,
)
portfolio_job = dg.define_asset_job(
    "portfolio",
    selection=dg.AssetSelection.groups("portfolio"),
    description="PPO policy on out-of-sample forecasts, ONNX export, backtest against baselines, Monte Carlo, "
                "stress tests, HTML report and recommendations.",
)

advice_job = dg.define_asset_job(
    "advice",
    selection=dg.AssetSelection.assets("recommendations", "recommendation_files"),
    description="The newest session's recommendations (from the strategy strategy_selection chose, else the "
                "baseline), from the holdings file when the settings name one, and their published files.",
    executor_def=IN_PROCESS,
)

lineage_job = dg.define_asset_job(
    "lineage_document",
    selection=dg.AssetSelection.assets("lineage"),
    description="The lineage document from the catalog: reports/lineage.md and reports/lineage.json.",
    executor_def=IN_PROCESS,
)

ingest_job = dg.define_asset_job(
    "ingest",
    selection=(dg.AssetSelection.groups(*DATA_GROUPS)
               | dg.AssetSelection.assets("data_quality_report", "forecasts", "forecast_log", "forecast_outcomes",
                                          "feature_drift")),
    description="New sessions: landing files or the source -> raw -> clean -> features -> exports, forecasts from "
                "the champions, their live skill scored, and every ticker's drift (both checks feed the retraining "
                "sensor). One run at a time (run queue limit on the tag odyssey/queue).",
    tags={QUEUE_TAG: "ingest"},
    executor_def=IN_PROCESS,
)


@dg.schedule(job=ingest_job, cron_schedule="0 22 * * 1-5", execution_timezone="America/New_York",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="After each session's close: fetch the new session (settings dates.end = today) or ingest "
                         "landed files -> features -> forecasts -> every ticker's drift. Skips days the exchange is "
                         "closed.")
def daily_ingest(context: dg.ScheduleEvaluationContext, settings: SettingsResource):
    return _session_or_skip(context, settings, "ingest")


def _session_or_skip(context: dg.ScheduleEvaluationContext, settings: SettingsResource, key: str):
    """A run request for the scheduled day, or why there is none: the exchange was closed."""
    day = pd.Timestamp(context.scheduled_execution_time).tz_localize(None).normalize()
    exchange = settings.value.universe.exchange
    if len(sessions(day, day, exchange)) == 0:
        return dg.SkipReason(f"{day.date()} is not a {exchange} session: nothing new to run on")
    return dg.RunRequest(run_key=f"{key}-{day.date()}", tags={"odyssey/session": str(day.date())})


@dg.schedule(job=drift_reports_job, cron_schedule="30 23 * * 1-5", execution_timezone="America/New_York",
             default_status=dg.DefaultScheduleStatus.STOPPED,
             description="Once a day after the ingest: Evidently's drift reports for every ticker (a landing writes "
                         "them only for the tickers that drifted). Skips days the exchange is closed.")
def daily_drift_reports(context: dg.ScheduleEvaluationContext, settings: SettingsResource):
    return _session_or_skip(context, settings, "drift-reports")


ticks_job = dg.define_asset_job(
    "ticks",
    selection=dg.AssetSelection.groups("ticks"),
    description="The tick pipeline: raw ticks -> features -> honest labels -> models (gated candidate) -> champion "
                "-> drift.",
)
tick_ingest_job = dg.define_asset_job(
    "tick_ingest",
    selection=dg.AssetSelection.assets("raw_ticks", "tick_features", "tick_labels", "tick_drift"),
    description="New tick files: raw ticks -> features -> labels -> drift against the champion's window (its check "
                "feeds the tick retraining sensor).",
    executor_def=IN_PROCESS,
)
tick_training_job = dg.define_asset_job(
    "tick_training",
    selection=dg.AssetSelection.assets("tick_models", "tick_champion"),
    description="Train and judge the tick models; promote the candidate when every tick gate passed.",
)

ALL_JOBS = [main_job, market_features_job, market_memory_job, forecasting_job, evaluation_job, deployment_job,
            live_monitoring_job, drift_reports_job,
            batch_forecasts_job, portfolio_job, advice_job, ingest_job, lineage_job, ticks_job, tick_ingest_job,
            tick_training_job]
ALL_SCHEDULES = [daily_ingest, daily_drift_reports]
