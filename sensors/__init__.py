"""Sensors: new files in the landing folder, monitoring after new forecasts, retraining of drifted or
decayed tickers, run-failure alerts, and the ticker partitions following the universe."""

from sensors.alerts import run_failure_alerts
from sensors.landing import landing_sensor
from sensors.monitoring import monitor_after_ingest
from sensors.retrain import retrain_on_drift
from sensors.universe import universe_partitions

ALL_SENSORS = [landing_sensor, monitor_after_ingest, retrain_on_drift, run_failure_alerts, universe_partitions]

__all__ = ["ALL_SENSORS", "landing_sensor", "monitor_after_ingest", "retrain_on_drift", "run_failure_alerts",
           "universe_partitions"]
