"""After new sessions reach the forecast log, monitor every ticker: drift against the champion's
training window and the live forecasts scored against what happened. Their checks feed the
retraining sensor, which closes the loop."""

import dagster as dg

from resources.settings import SettingsResource
from sensors.cursors import newer_materialization

LOG = dg.AssetKey("forecast_log")


@dg.sensor(job_name="drift_monitoring", minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.STOPPED,
           description="When forecast_log gets a new materialization, run drift monitoring for every ticker.")
def monitor_after_ingest(context: dg.SensorEvaluationContext, settings: SettingsResource):
    newest = newer_materialization(context, LOG)
    if newest is None:
        return dg.SkipReason("no new forecast_log materialization")
    return [dg.RunRequest(run_key=f"monitor-{ticker}-{newest}", partition_key=ticker,
                          tags={"odyssey/trigger": "new forecasts"})
            for ticker in settings.value.universe.tickers]
