"""Sensors: new files in the landing folder, the recommendations after new forecasts, the market
memory after new market states, retraining of drifted or decayed tickers (the runs that log
forecasts score them), run-failure alerts, the ticker partitions following the universe, the lineage document
after each successful run, and new tick files and tick retraining."""

import dagster as dg

from odyssey.settings import DaemonSettings, MonitoringSettings
from sensors.advice import advise_after_forecasts, advise_after_forecasts_every
from sensors.alerts import run_failure_alerts
from sensors.landing import landing_sensor, landing_sensor_every
from sensors.lineage import lineage_after_runs, lineage_after_runs_every
from sensors.memory import memory_after_states, memory_after_states_every
from sensors.retrain import retrain_on_drift, retrain_on_drift_every
from sensors.ticks import retrain_ticks_on_drift, tick_landing_sensor
from sensors.universe import universe_partitions

ALL_SENSORS = [landing_sensor, advise_after_forecasts, lineage_after_runs, memory_after_states,
               retrain_on_drift, run_failure_alerts, universe_partitions, tick_landing_sensor, retrain_ticks_on_drift]


def sensors_for(daemon: DaemonSettings, monitoring: MonitoringSettings = MonitoringSettings()
                ) -> list[dg.SensorDefinition]:
    """ALL_SENSORS with the tick intervals of the settings' `daemon` section (how soon the daemon
    reacts to a landing, and to the runs the loop follows) and the retraining sensor's hold."""
    follow = daemon.follow_seconds
    timed = {s.name: s for s in (landing_sensor_every(daemon.landing_seconds), advise_after_forecasts_every(follow),
                                 lineage_after_runs_every(follow),
                                 memory_after_states_every(follow),
                                 retrain_on_drift_every(follow, monitoring.retrain_hold_sessions))}
    return [timed.get(s.name, s) for s in ALL_SENSORS]


__all__ = ["ALL_SENSORS", "sensors_for", "advise_after_forecasts", "landing_sensor", "lineage_after_runs", "memory_after_states",
           "retrain_on_drift", "retrain_ticks_on_drift", "run_failure_alerts", "tick_landing_sensor",
           "universe_partitions"]
