"""After new sessions reach the forecast log, score every ticker's live forecasts against what
happened (the ingest run itself decided every ticker's drift). The live-skill checks feed the
retraining sensor, which closes the loop."""

import dagster as dg

from odyssey.settings import DaemonSettings

from resources.settings import SettingsResource
from sensors.cursors import newer_materialization, sensor_every

LOG = dg.AssetKey("forecast_log")


def _monitor_after_ingest(context: dg.SensorEvaluationContext, settings: SettingsResource):
    newest = newer_materialization(context, LOG)
    if newest is None:
        return dg.SkipReason("no new forecast_log materialization")
    return [dg.RunRequest(run_key=f"monitor-{ticker}-{newest}", partition_key=ticker,
                          tags={"odyssey/trigger": "new forecasts"})
            for ticker in settings.value.universe.tickers]



def monitor_after_ingest_every(seconds: int) -> dg.SensorDefinition:
    return sensor_every(_monitor_after_ingest, seconds, "monitor_after_ingest", "live_monitoring",
                        "When forecast_log gets a new materialization, score the live forecasts of every "
                        "ticker.")


monitor_after_ingest = monitor_after_ingest_every(DaemonSettings().follow_seconds)  # build_definitions uses the settings' own
