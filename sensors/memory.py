"""The market memory follows the market states: a new `market_states` materialization (the data
layer's run, or an ingested session) runs the `market_memory` job, which upserts what changed
into the index and asks it about the newest session."""

import dagster as dg

from sensors.cursors import newer_materialization

STATES = dg.AssetKey("market_states")


def _memory_after_states(context: dg.SensorEvaluationContext):
    newest = newer_materialization(context, STATES)
    if newest is None:
        return dg.SkipReason("no new market_states materialization")
    return dg.RunRequest(run_key=f"memory-{newest}", tags={"odyssey/trigger": "new market states"})



def memory_after_states_every(seconds: int) -> dg.SensorDefinition:
    """`memory_after_states`, ticking at most every `seconds` (settings `daemon`)."""
    return dg.sensor(name="memory_after_states",
                     job_name="market_memory",
                     minimum_interval_seconds=seconds,
                     default_status=dg.DefaultSensorStatus.STOPPED,
                     description="When market_states gets a new materialization, update the market-state index.",
                     )(_memory_after_states)


memory_after_states = memory_after_states_every(60)
