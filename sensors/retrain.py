"""Retrain exactly the tickers whose drift or live-skill check failed.

The sensor reads new evaluations of `feature_drift_check` and of `live_skill_check` (each one per
landing, for every ticker: their metadata name the tickers that drifted, or whose live skill was
lost, with their reasons) from the instance, and requests one `forecasting` run (walk-forward,
model, gates, champion) per ticker that went from passing (or unknown) to failing. Its cursor holds the
evaluations it has read (check records are numbered when a run is planned, not when the check
finishes, so a high-water mark could skip a slow run's result) and each ticker's state, so one
drift event starts one run and a ticker that did not drift is never retrained.

A drift that comes back soon after a retrain is held: a champion retrained into a new regime has
seen only weeks of it, so its first judged window drifts again. While the drift evaluation says
the ticker's current window (the sessions after its champion's training window) holds fewer than
`retrain_hold_sessions`, a drift of a ticker this sensor has retrained before waits in the
cursor; if the ticker still drifts once the window is that long, it is retrained then. A first
drift and a lost live skill are never held.
"""

import json

import dagster as dg
from dagster._core.storage.asset_check_execution_record import AssetCheckExecutionRecordStatus

from odyssey.drift import CURRENT_SESSIONS_KEY, DRIFTED_KEY
from odyssey.live_skill import LOST_KEY
from odyssey.settings import DaemonSettings, MonitoringSettings
from resources.metadata import check_reason
from sensors.cursors import sensor_every

DRIFT = dg.AssetCheckKey(dg.AssetKey("feature_drift"), "feature_drift_check")
LIVE_SKILL = dg.AssetCheckKey(dg.AssetKey("forecast_outcomes"), "live_skill_check")
FAILING_KEYS = {DRIFT: DRIFTED_KEY, LIVE_SKILL: LOST_KEY}  # each check's metadata: ticker -> why it failed
COMPLETED = {AssetCheckExecutionRecordStatus.SUCCEEDED, AssetCheckExecutionRecordStatus.FAILED}
REMEMBERED = 5000  # evaluations kept in the cursor; older ones fall out of the 1000-record history anyway


def new_evaluations(instance: dg.DagsterInstance, seen: set[int], keys: tuple) -> list:
    """Finished whole-asset evaluations of the `keys` checks not in `seen`, oldest first (an
    earlier per-ticker evaluation, without the map of failing tickers, is not read as "no ticker
    failed")."""
    records = []
    for key in keys:
        history = instance.event_log_storage.get_asset_check_execution_history(key, limit=1000, status=COMPLETED)
        records += [r for r in history if r.id not in seen and not r.partition]
    return in_order(records)


def in_order(records: list) -> list:
    return sorted(records, key=lambda r: (r.event.timestamp if r.event else r.create_timestamp, r.id))


def reason_of(record) -> str:
    return f"{record.key.name}: {check_reason(record) or 'failed'}"


def evaluation_dict(record, key: str) -> dict:
    """A JSON dict in one evaluation's metadata under `key` ({} when it has none)."""
    evaluation = record.event.asset_check_evaluation if record.event else None
    entry = evaluation.metadata.get(key) if evaluation else None
    return dict(entry.value) if entry is not None and isinstance(entry.value, dict) else {}


def verdicts(record, failing: dict[str, list[str]]) -> dict[str, tuple[bool, str]]:
    """What one evaluation says, per ticker: (failing now, reason). An evaluation speaks for every
    ticker: those it names failed, those failing before and not named have cleared."""
    named = evaluation_dict(record, FAILING_KEYS[record.key])
    before = {t for t, checks in failing.items() if record.key.name in checks}
    return {t: (t in named, f"{record.key.name}: {named.get(t, 'cleared')}") for t in sorted(before | set(named))}


def current_sessions(record) -> dict[str, int]:
    """ticker -> the sessions its current drift window held, as one drift evaluation states them
    (none in evaluations older than the statement)."""
    return evaluation_dict(record, CURRENT_SESSIONS_KEY)


def retrain_requests(context: dg.SensorEvaluationContext, hold: int):
    cursor = json.loads(context.cursor) if context.cursor else {}
    failing: dict[str, list[str]] = cursor.get("failing", {})
    seen: list[int] = cursor.get("seen", [])
    retrained: list[str] = cursor.get("retrained", [])  # tickers this sensor asked to retrain
    held: dict[str, str] = cursor.get("held", {})  # ticker -> the drift reason waiting for its window to fill
    requests: dict[str, list[str]] = {}
    records = new_evaluations(context.instance, set(seen), (DRIFT, LIVE_SKILL))
    for record in records:
        seen.append(record.id)
        check = record.key.name
        window = current_sessions(record) if check == DRIFT.name else {}
        for ticker, (now_failing, reason) in verdicts(record, failing).items():
            was_failing = check in failing.get(ticker, [])
            if now_failing and not was_failing:
                failing.setdefault(ticker, []).append(check)
                if check == DRIFT.name and ticker in retrained and window.get(ticker, hold) < hold:
                    held[ticker] = reason
                else:
                    requests.setdefault(ticker, []).append(reason)
            elif not now_failing and was_failing:
                failing[ticker].remove(check)
            if ticker in held and check == DRIFT.name:
                if not now_failing:
                    del held[ticker]  # cleared while held
                elif window.get(ticker, hold) >= hold:
                    del held[ticker]  # the drift it showed first; it asks with the one it shows now
                    requests.setdefault(ticker, []).append(
                        f"{reason} (held until {hold} sessions after the retrained champion's training had been "
                        "judged)")
    for ticker, reasons in sorted(requests.items()):
        held.pop(ticker, None)  # a retrain asked for either check ends the hold: a new champion, a new window
        retrained = sorted({*retrained, ticker})
        yield dg.RunRequest(
            run_key=f"retrain-{ticker}-{seen[-1]}",
            partition_key=ticker,
            tags={"odyssey/trigger": "drift", "odyssey/reason": "; ".join(reasons)[:1000]},
        )
    if requests:
        context.log.info(f"retraining {sorted(requests)}")
    if held and records:
        context.log.info(f"drift held after a recent retrain: {sorted(held)}")
    context.update_cursor(json.dumps({"seen": seen[-REMEMBERED:], "failing": failing, "retrained": retrained,
                                      "held": held}))


def retrain_on_drift_every(seconds: int, hold: int = MonitoringSettings().retrain_hold_sessions) -> dg.SensorDefinition:
    def _retrain_on_drift(context: dg.SensorEvaluationContext):
        yield from retrain_requests(context, hold)

    return sensor_every(_retrain_on_drift, seconds, "retrain_on_drift", "forecasting",
                        "Request a forecasting run for exactly the tickers whose drift or live-skill check "
                        f"just failed (a drift judged on fewer than {hold} sessions after a retrained champion's "
                        "training waits for them).")


retrain_on_drift = retrain_on_drift_every(DaemonSettings().follow_seconds)  # build_definitions uses the settings' own
