"""Sensors: run-failure alerts, and retraining of the tickers whose drift or quality checks fail."""

from sensors.alerts import run_failure_alerts
from sensors.retrain import retrain_on_drift

ALL_SENSORS = [run_failure_alerts, retrain_on_drift]

__all__ = ["ALL_SENSORS", "run_failure_alerts", "retrain_on_drift"]
