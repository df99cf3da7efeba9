"""Record every failed run to `$ODYSSEY_HOME/alerts.log` (JSON lines) and an optional webhook."""

import json
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import requests

from resources.settings import SettingsResource


def record_alert(alert: dict, path: Path, webhook: str | None = None) -> None:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as handle:
        handle.write(json.dumps(alert, sort_keys=True) + "\n")
    if webhook:
        requests.post(webhook, json=alert, timeout=10)

@dg.run_failure_sensor(name="run_failure_alerts", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Append failed runs to the alerts log; POST them to ODYSSEY_ALERT_WEBHOOK if set.")
def run_failure_alerts(context: dg.RunFailureSensorContext, settings: SettingsResource) -> None:
    run = context.dagster_run
    alert = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run.run_id,
        "job": run.job_name,
        "error": context.failure_event.message,
        "tags": {k: v for k, v in run.tags.items() if not k.startswith(".dagster")},
    }
    record_alert(alert, Path(settings.value.paths.alerts_log), webhook=settings.alert_webhook or None)
