"""The recommendations follow the forecasts: a new `forecasts` materialization (an ingested
session, or batch forecasts) runs the `advice` job, so the orders a user reads each evening are
the newest session's."""

import dagster as dg

from odyssey.settings import DaemonSettings

from sensors.cursors import after_materializations


def advise_after_forecasts_every(seconds: int) -> dg.SensorDefinition:
    return after_materializations(dg.AssetKey("forecasts"), "advise_after_forecasts", "advice", "new forecasts",
                                  "When forecasts get a new materialization, make the newest session's "
                                  "recommendations.", seconds)


advise_after_forecasts = advise_after_forecasts_every(DaemonSettings().follow_seconds)  # build_definitions uses the settings' own
