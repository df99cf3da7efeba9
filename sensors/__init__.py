"""Sensors: new files in the landing folder, retraining of drifted tickers, run-failure alerts."""

from sensors.alerts import run_failure_alerts
from sensors.landing import landing_sensor
from sensors.retrain import retrain_on_drift

ALL_SENSORS = [landing_sensor, retrain_on_drift, run_failure_alerts]

__all__ = ["ALL_SENSORS", "landing_sensor", "retrain_on_drift", "run_failure_alerts"]
