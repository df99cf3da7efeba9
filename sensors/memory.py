"""The market memory follows the market states: a new `market_states` materialization (the data
layer's run, or an ingested session) runs the `market_memory` job, which upserts what changed
into the index and asks it about the newest session."""

import dagster as dg

from odyssey.settings import DaemonSettings

from sensors.cursors import newer_materialization, sensor_every

STATES = dg.AssetKey("market_states")


def _memory_after_states(context: dg.SensorEvaluationContext):
    newest = newer_materialization(context, STATES)
    if newest is None:
        return dg.SkipReason("no new market_states materialization")
    return dg.RunRequest(run_key=f"memory-{newest}", tags={"odyssey/trigger": "new market states"})



def memory_after_states_every(seconds: int) -> dg.SensorDefinition:
    return sensor_every(_memory_after_states, seconds, "memory_after_states", "market_memory",
                        "When market_states gets a new materialization, update the market-state index.")


memory_after_states = memory_after_states_every(DaemonSettings().follow_seconds)  # build_definitions uses the settings' own
