"""Keep the ticker partitions equal to the settings' universe: adding or removing a ticker is a
settings-file edit, and after the code location reloads this sensor adds or deletes its partition."""

import dagster as dg

from resources.settings import TICKER_PARTITIONS, SettingsResource, partition_changes


@dg.sensor(minimum_interval_seconds=60, default_status=dg.DefaultSensorStatus.RUNNING,
           description="Add and delete ticker partitions so they match the settings' universe.")
def universe_partitions(context: dg.SensorEvaluationContext, settings: SettingsResource):
    wanted = list(settings.value.universe.tickers)
    added, removed = partition_changes(context.instance, wanted)
    if not added and not removed:
        return dg.SkipReason(f"ticker partitions match the universe ({len(wanted)} tickers)")
    requests = []
    if added:
        requests.append(dg.AddDynamicPartitionsRequest(TICKER_PARTITIONS, added))
    if removed:
        requests.append(dg.DeleteDynamicPartitionsRequest(TICKER_PARTITIONS, removed))
    context.log.info(f"ticker partitions: added {added}, removed {removed}")
    return dg.SensorResult(dynamic_partitions_requests=requests)
