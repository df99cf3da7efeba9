"""Jobs: the data layer, the per-ticker forecasting chain, batch forecasts, and everything."""

import dagster as dg

DATA_GROUPS = ("market", "features")

main_job = dg.define_asset_job(
    "odyssey_main",
    selection=dg.AssetSelection.all(),
    description="The whole graph (for the UI); `make run` runs the jobs below in order.",
)
market_features_job = dg.define_asset_job(
    "market_features",
    selection=dg.AssetSelection.groups(*DATA_GROUPS) | dg.AssetSelection.assets("data_quality_report"),
    description="Load, clean, engineer, split, scale and export market features.",
)
forecasting_job = dg.define_asset_job(
    "forecasting",
    selection=dg.AssetSelection.assets("walkforward_forecasts", "walkforward_summary", "forecast_models",
                                       "shap_importance", "deployed_models"),
    description="One ticker partition: walk-forward, final model, SHAP, deployment gates, champion.",
)
drift_monitoring_job = dg.define_asset_job(
    "drift_monitoring",
    selection=dg.AssetSelection.assets("feature_drift", "forecast_quality"),
    description="One ticker partition: Evidently feature drift and forecast-quality decay (their checks feed "
                "the retraining sensor).",
)
batch_forecasts_job = dg.define_asset_job(
    "batch_forecasts",
    selection=dg.AssetSelection.assets("forecasts"),
    description="Latest-date forecasts for every ticker from the champion models.",
)
portfolio_job = dg.define_asset_job(
    "portfolio",
    selection=dg.AssetSelection.groups("portfolio"),
    description="PPO policy on out-of-sample forecasts, ONNX export, backtest against baselines, Monte Carlo, "
                "stress tests, HTML report and recommendations.",
)

ingest_job = dg.define_asset_job(
    "ingest",
    selection=dg.AssetSelection.groups(*DATA_GROUPS) | dg.AssetSelection.assets("data_quality_report", "forecasts"),
    description="New days: landing files -> raw -> clean -> features -> exports, and forecasts from the champions.",
)
daily_ingest = dg.ScheduleDefinition(
    name="daily_ingest", job=ingest_job, cron_schedule="0 22 * * 1-5", execution_timezone="America/New_York",
    default_status=dg.DefaultScheduleStatus.STOPPED,
    description="Weekdays after the US close: ingestion -> features -> forecasts.",
)

ALL_JOBS = [main_job, market_features_job, forecasting_job, drift_monitoring_job, batch_forecasts_job, portfolio_job, ingest_job]
ALL_SCHEDULES = [daily_ingest]
