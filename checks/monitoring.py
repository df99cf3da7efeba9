"""Drift and live-skill checks (not blocking: they signal; the retraining sensor acts on them)."""

import dagster as dg
import pandas as pd

from odyssey.drift import CURRENT_SESSIONS_KEY, DRIFTED_KEY
from odyssey.gates import EVALUABLE_KEY, NOT_EVALUABLE
from odyssey.live_skill import LOST_KEY, SCORING_ERROR
from resources.metadata import present


def _shown(value: float) -> float | str | None:
    """A z-score for metadata: inf (a window that did not move) as text."""
    return "inf" if value == float("inf") else float(value)


@dg.asset_check(asset="feature_drift",
                description="for every ticker, the share of drifted features (window-mean z above the threshold), "
                            "the forward target's size (window-mean z of its absolute value) and its volatility "
                            "relative to the benchmark's (window z of the log ratio of mean absolute returns) are "
                            "under their thresholds; metadata `drifted` maps the tickers that are not to their "
                            "reasons (the retraining sensor reads it)")
def feature_drift_check(feature_drift: pd.DataFrame) -> dg.AssetCheckResult:
    tickers = feature_drift.groupby("ticker", sort=True).agg(
        drifted=("ticker_drifted", "first"), reason=("ticker_reason", "first"), share=("drifted", "mean"),
        target_z=("target_z", "first"), relative_vol_z=("relative_vol_z", "first"),
        evaluable=("ticker_evaluable", "first"), sessions=("current_sessions", "first"))
    reasons = {t: r.reason for t, r in tickers[tickers["drifted"]].iterrows()}
    waiting = {t: r.reason for t, r in tickers[~tickers["evaluable"].astype(bool)].iterrows()}
    judged = int(tickers["evaluable"].astype(bool).sum())
    reason = "; ".join(f"{t}: {r}" for t, r in reasons.items()) or f"none of {judged} evaluable tickers drifted"
    if waiting:
        reason += f"; {NOT_EVALUABLE}: " + ", ".join(waiting)
    evaluated = tickers[tickers["evaluable"].astype(bool)]
    return dg.AssetCheckResult(passed=not reasons, metadata={
        DRIFTED_KEY: dg.MetadataValue.json(reasons), "reason": reason[:4000], EVALUABLE_KEY: judged > 0,
        "not_yet_evaluable": dg.MetadataValue.json(waiting),
        CURRENT_SESSIONS_KEY: dg.MetadataValue.json({t: int(n) for t, n in tickers["sessions"].items()}),
        **({"max_share_drifted": float(evaluated["share"].max()),
            "max_target_z": float(evaluated["target_z"].max()),
            **present({"max_relative_vol_z": _shown(evaluated["relative_vol_z"].max())})} if judged else {}),
        "tickers": len(tickers), "evaluable_tickers": judged})


@dg.asset_check(asset="forecast_outcomes",
                description="no champion's live-skill monitor has alarmed: per ticker a one-sided CUSUM on the daily "
                            "contributions of its realised live forecasts, fitted on its walk-forward, which a "
                            "healthy champion crosses in at most gates.live_false_alarm of live_window-session "
                            "spans; a ticker fails from the alarm on (its champion is demoted) and is not yet "
                            "evaluable below gates.live_min_days realised forecasts; metadata `lost` maps the "
                            "tickers that failed to their reasons (the retraining sensor reads it)")
def live_skill_check(forecast_outcomes: dict) -> dg.AssetCheckResult:
    status = {t: o.get("live_status", NOT_EVALUABLE) for t, o in forecast_outcomes.items()}
    why = {t: o.get("live_reason") or f"{NOT_EVALUABLE}: {o['reason']}" for t, o in forecast_outcomes.items()}
    lost = {t: why[t] for t, s in status.items() if s == "failed"}
    broken = {t: why[t] for t, s in status.items() if s == SCORING_ERROR}  # fail the check, retrain nothing
    waiting = {t: why[t] for t, s in status.items() if s == NOT_EVALUABLE}
    judged = len(status) - len(waiting) - len(broken)
    reason = "; ".join(f"{t}: {r}" for t, r in {**lost, **broken}.items()) \
        or f"no live skill lost among {judged} evaluable tickers"
    if waiting:
        reason += f"; {NOT_EVALUABLE}: " + ", ".join(f"{t} ({r.removeprefix(NOT_EVALUABLE + ': ')})"
                                                      for t, r in waiting.items())
    monitors = {t: present({k: o.get(k) for k in ("champion", "live_status", "cusum", "cusum_threshold", "alarm_date",
                                                  "walkforward_skill", "live_skill", "monitored_days", "ic",
                                                  "walkforward_ic")})
                for t, o in forecast_outcomes.items()}
    return dg.AssetCheckResult(passed=not lost and not broken, metadata={
        LOST_KEY: dg.MetadataValue.json(lost), "reason": reason[:4000], EVALUABLE_KEY: judged > 0,
        "not_yet_evaluable": dg.MetadataValue.json(waiting), "not_scored": dg.MetadataValue.json(broken),
        "monitors": dg.MetadataValue.json(monitors),
        "tickers": len(status), "evaluable_tickers": judged})


MONITORING_CHECKS = [feature_drift_check, live_skill_check]
