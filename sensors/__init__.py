"""Sensors: new files in the landing folder, the market memory after new market states, monitoring after new
forecasts, retraining of drifted or decayed tickers, run-failure alerts, the ticker partitions following the
universe, the lineage document after each successful run, and new tick files and tick retraining."""

from sensors.alerts import run_failure_alerts
from sensors.landing import landing_sensor
from sensors.lineage import lineage_after_runs
from sensors.memory import memory_after_states
from sensors.monitoring import monitor_after_ingest
from sensors.retrain import retrain_on_drift
from sensors.ticks import retrain_ticks_on_drift, tick_landing_sensor
from sensors.universe import universe_partitions

ALL_SENSORS = [landing_sensor, lineage_after_runs, memory_after_states, monitor_after_ingest, retrain_on_drift,
               run_failure_alerts, universe_partitions, tick_landing_sensor, retrain_ticks_on_drift]

__all__ = ["ALL_SENSORS", "landing_sensor", "lineage_after_runs", "memory_after_states", "monitor_after_ingest",
           "retrain_on_drift", "retrain_ticks_on_drift", "run_failure_alerts", "tick_landing_sensor",
           "universe_partitions"]
