"""Record every failed run to `$ODYSSEY_HOME/alerts.log` (JSON lines) and an optional webhook."""

import json
import os
from datetime import datetime, timezone
from pathlib import Path

import dagster as dg
import requests

def alerts_path() -> Path:
    from resources import odyssey_home

    return Path(os.environ.get("ODYSSEY_ALERTS_LOG", odyssey_home() / "alerts.log"))

def record_alert(alert: dict, path: Path | None = None, webhook: str | None = None) -> None:
    target = path or alerts_path()
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("a") as handle:
        handle.write(json.dumps(alert, sort_keys=True) + "\n")
    if webhook:
        requests.post(webhook, json=alert, timeout=10)

@dg.run_failure_sensor(name="run_failure_alerts", default_status=dg.DefaultSensorStatus.RUNNING,
                       description="Append failed runs to the alerts log; POST them to ODYSSEY_ALERT_WEBHOOK if set.")
def run_failure_alerts(context: dg.RunFailureSensorContext) -> None:
    run = context.dagster_run
    alert = {
        "at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "run_id": run.run_id,
        "job": run.job_name,
        "error": context.failure_event.message,
        "tags": {k: v for k, v in run.tags.items() if not k.startswith(".dagster")},
    }
    record_alert(alert, webhook=os.environ.get("ODYSSEY_ALERT_WEBHOOK") or None)
