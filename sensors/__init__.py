"""Sensors: new files in the landing folder, the market memory after new market states, monitoring after new forecasts, retraining of drifted or
decayed tickers, run-failure alerts, and the ticker partitions following the universe."""

from sensors.alerts import run_failure_alerts
from sensors.landing import landing_sensor
from sensors.memory import memory_after_states
from sensors.monitoring import monitor_after_ingest
from sensors.retrain import retrain_on_drift
from sensors.universe import universe_partitions

ALL_SENSORS = [landing_sensor, memory_after_states, monitor_after_ingest, retrain_on_drift, run_failure_alerts, universe_partitions]

__all__ = ["ALL_SENSORS", "landing_sensor", "memory_after_states", "monitor_after_ingest", "retrain_on_drift", "run_failure_alerts",
           "universe_partitions"]
