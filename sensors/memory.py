"""The market memory follows the market states: a new `market_states` materialization (the data
layer's run, or an ingested session) runs the `market_memory` job, which upserts what changed
into the index and asks it about the newest session."""

import dagster as dg

from odyssey.settings import DaemonSettings

from sensors.cursors import after_materializations


def memory_after_states_every(seconds: int) -> dg.SensorDefinition:
    return after_materializations(dg.AssetKey("market_states"), "memory_after_states", "market_memory",
                                  "new market states", "When market_states gets a new materialization, update the "
                                  "market-state index.", seconds)


memory_after_states = memory_after_states_every(DaemonSettings().follow_seconds)  # build_definitions uses the settings' own
