"""Sensors: run failures are written to an alerts log (and posted to a webhook if configured)."""

from sensors.alerts import run_failure_alerts

ALL_SENSORS = [run_failure_alerts]

__all__ = ["ALL_SENSORS", "run_failure_alerts"]
